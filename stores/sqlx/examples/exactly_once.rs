//! Exactly-once effect, end to end: a producer changes alerts and writes their events in the
//! same transaction (the outbox); the relay publishes them; a consumer applies each event to
//! its own table with the checkpoint in the same transaction — and survives a crash between
//! applying and committing without applying anything twice.
//!
//! ```text
//! cargo run -p herald-sqlx --example exactly_once                    # SQLite, embedded backend
//! DATABASE_URL=postgres://user@127.0.0.1/db cargo run -p herald-sqlx --example exactly_once
//! NATS_URL=nats://127.0.0.1:4222 cargo run -p herald-sqlx --example exactly_once
//! ```

use std::time::Duration;

use herald::{Coordinator, MemoryServer, StartPosition};
use herald_sqlx::{SqlxCheckpoints, SqlxOutbox};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The same story on either database: sqlx's pools are typed by their database, so the
/// application's few statements are written once and expanded for each.
macro_rules! story {
    ($pool:expr, $connect:expr) => {{
        let pool = $pool;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS alerts (id BIGINT PRIMARY KEY, state TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS alert_cache (id BIGINT PRIMARY KEY, state TEXT NOT NULL, applied BIGINT NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&pool).await?;
        }
        sqlx::query("DELETE FROM alerts").execute(&pool).await?;
        sqlx::query("DELETE FROM alert_cache").execute(&pool).await?;

        // The producer: each alert and its event commit together.
        let outbox = SqlxOutbox::with_table(pool.clone(), "example_outbox").await?;
        for (id, state) in [(42i64, "firing"), (7, "firing"), (42, "resolved"), (9, "firing")] {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO alerts (id, state) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            )
            .bind(id)
            .bind(state)
            .execute(&mut *tx)
            .await?;
            outbox
                .enqueue(&mut tx, &format!("alerts.{id}"), state.as_bytes())
                .await?;
            tx.commit().await?;
            println!("producer  alert {id} is {state} (row and event committed together)");
        }
        let mut tx = pool.begin().await?;
        outbox.enqueue(&mut tx, "alerts.13", b"firing").await?;
        drop(tx); // rolled back: its event is never published
        println!("producer  alert 13 rolled back: its event is never published");

        let producer: Coordinator = $connect.await?;
        let relay = outbox.relay(producer.clone());
        while outbox.pending().await? > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!("relay     published every committed event, each with a message id of its row");
        relay.shutdown().await;

        // The consumer: the effect and the checkpoint commit in one transaction.
        let checkpoints = SqlxCheckpoints::with_table(pool.clone(), "example_checkpoints").await?;
        let mut crashed = false;
        let mut applied = 0;
        loop {
            let consumer: Coordinator = $connect.await?;
            let mut sub = consumer
                .subscribe("alerts.>")
                .durable("cache")
                .start(StartPosition::LastProcessed)
                .checkpoint_store(checkpoints.clone())
                .await?;
            let mut crashed_now = false;
            while applied < 4 {
                let Some(message) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await.ok().flatten() else {
                    break;
                };
                let message = message?;
                let id: i64 = message.key().trim_start_matches("alerts.").parse()?;
                let state = String::from_utf8_lossy(&message.payload).into_owned();
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO alert_cache (id, state, applied) VALUES ($1, $2, 1)
                     ON CONFLICT (id) DO UPDATE SET state = excluded.state, applied = alert_cache.applied + 1",
                )
                .bind(id)
                .bind(&state)
                .execute(&mut *tx)
                .await?;
                if message.seq == 3 && !crashed {
                    // Applied, not committed: the process dies here.
                    println!("consumer  applied #{} (alert {id} {state}) -- CRASH before commit", message.seq);
                    (crashed, crashed_now) = (true, true);
                    drop(tx);
                    break;
                }
                checkpoints.commit(tx, &message).await?;
                println!("consumer  applied #{} (alert {id} {state}) and its checkpoint in one commit", message.seq);
                applied += 1;
            }
            drop(sub);
            consumer.shutdown().await;
            if !crashed_now {
                break;
            }
            println!("consumer  restarts: resumes right after the last committed message");
        }

        // The consumer's table equals the producer's, and nothing was applied twice.
        let alerts: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, state FROM alerts ORDER BY id").fetch_all(&pool).await?;
        let cache: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, state FROM alert_cache ORDER BY id").fetch_all(&pool).await?;
        let applied: Vec<(i64, i64)> =
            sqlx::query_as("SELECT id, applied FROM alert_cache ORDER BY id").fetch_all(&pool).await?;
        println!("alerts    {alerts:?}");
        println!("cache     {cache:?}");
        println!("applied   {applied:?} (alert 42 changed twice; each event applied once)");
        assert_eq!(alerts, cache, "the consumer's table equals the producer's");
        assert_eq!(applied.iter().map(|(_, n)| n).sum::<i64>(), 4, "four events, each applied once");
        producer.shutdown().await;
    }};
}

#[tokio::main]
async fn main() -> Result {
    // One embedded server plays NATS for both processes of the story, unless NATS_URL is set.
    let server = MemoryServer::new();
    let connect = || {
        let builder = Coordinator::builder().stream("EXACTLY_ONCE");
        let builder = match std::env::var("NATS_URL") {
            Ok(url) => builder.nats(url),
            Err(_) => builder.memory_server(server.clone()),
        };
        builder.connect()
    };
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            println!("database  PostgreSQL");
            story!(sqlx::PgPool::connect(&url).await?, connect());
        }
        _ => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
            println!("database  SQLite ({url})");
            story!(sqlx::SqlitePool::connect(&url).await?, connect());
        }
    }
    Ok(())
}
