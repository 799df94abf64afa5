//! herald-sqlx against the paths it replaces, side by side in one run on one nats-server:
//!
//! - the outbox relay (enqueue committed beforehand, relay until the table is empty) against
//!   `publish_batch` of the same events (target: relay ≥ 0.8×);
//! - consuming with the checkpoint committed in the application's transaction (one
//!   transaction per batch of messages) against consuming with the file checkpoint.
//!
//! On SQLite always; on PostgreSQL when `DATABASE_URL=postgres://…` is set.
//!
//! ```text
//! cargo bench -p herald-sqlx --bench sqlx
//! ```

#[path = "../../../tests/support/nats_server.rs"]
mod nats_server;

use std::time::{Duration, Instant};

use herald::{Coordinator, FileCheckpointStore, StartPosition};
use herald_sqlx::{Db, SqlxCheckpoints, SqlxOutbox};
use sqlx::Pool;

const EVENTS: usize = 20_000;
const ROUNDS: usize = 3;
const TX_BATCH: usize = 100;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

async fn coordinator(url: &str, stream: &str) -> Result<Coordinator> {
    Ok(Coordinator::builder()
        .nats(url)
        .stream(stream)
        .connect()
        .await?)
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

async fn publish_batch(url: &str, round: usize) -> Result<f64> {
    let c = coordinator(url, &format!("BATCH{round}")).await?;
    let start = Instant::now();
    for chunk in 0..EVENTS / 256 + 1 {
        let lo = chunk * 256;
        let hi = (lo + 256).min(EVENTS);
        c.publish_batch((lo..hi).map(|i| (format!("alerts.{}", i % 100), vec![b'x'; 128])))
            .await?;
    }
    let r = rate(EVENTS, start.elapsed());
    c.shutdown().await;
    Ok(r)
}

macro_rules! fill {
    ($pool:expr, $outbox:expr) => {{
        let mut tx = $pool.begin().await?;
        for i in 0..EVENTS {
            $outbox
                .enqueue(&mut tx, &format!("alerts.{}", i % 100), &[b'x'; 128])
                .await?;
        }
        tx.commit().await?;
    }};
}

async fn relay<DB: Db>(url: &str, outbox: &SqlxOutbox<DB>, round: usize) -> Result<f64> {
    let c = coordinator(url, &format!("RELAY{}{round}", outbox.table())).await?;
    let start = Instant::now();
    let relay = outbox.relay(c.clone());
    while outbox.pending().await? > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let r = rate(EVENTS, start.elapsed());
    relay.shutdown().await;
    c.shutdown().await;
    Ok(r)
}

/// Consumes `EVENTS` messages of `stream`, committing each batch of `TX_BATCH` with its
/// checkpoint in one transaction (`Some`) or acknowledging into a file checkpoint (`None`).
macro_rules! consume {
    ($url:expr, $stream:expr, $checkpoints:expr, $pool:expr) => {{
        let c = coordinator($url, $stream).await?;
        let sub = c.subscribe(">").durable("bench").start(StartPosition::All);
        let dir = tempfile::tempdir()?;
        let start = Instant::now();
        match $checkpoints {
            Some(checkpoints) => {
                let checkpoints: &SqlxCheckpoints<_> = checkpoints;
                let mut sub = sub.checkpoint_store(checkpoints.clone()).await?;
                let mut tx = $pool.begin().await?;
                for i in 1..=EVENTS {
                    let message = sub.next().await.ok_or("ended")??;
                    if i % TX_BATCH == 0 || i == EVENTS {
                        checkpoints.commit(tx, &message).await?;
                        tx = $pool.begin().await?;
                    }
                }
                drop(tx);
            }
            None => {
                let mut sub = sub
                    .checkpoint_store(FileCheckpointStore::new(dir.path()))
                    .await?;
                for _ in 1..=EVENTS {
                    sub.next().await.ok_or("ended")??.ack();
                }
            }
        }
        let r = rate(EVENTS, start.elapsed());
        c.shutdown().await;
        r
    }};
}

macro_rules! bench_db {
    ($name:literal, $pool:expr, $url:expr) => {{
        let pool = $pool;
        let url: &str = $url;
        let mut ratios = Vec::new();
        let mut tx_ratios = Vec::new();
        for round in 0..ROUNDS {
            let outbox = SqlxOutbox::with_table(pool.clone(), &format!("bench_outbox_{round}")).await?;
            fill!(pool, outbox);
            let baseline = publish_batch(url, round).await?;
            let relayed = relay(url, &outbox, round).await?;
            ratios.push(relayed / baseline);
            println!("{}: round {round}: publish_batch {:.1}k/s, relay {:.1}k/s, ratio {:.2}", $name, baseline / 1e3, relayed / 1e3, relayed / baseline);

            let stream = format!("CONSUME{}{round}", $name);
            let c = coordinator(url, &stream).await?;
            c.publish_batch((0..EVENTS).map(|i| (format!("alerts.{}", i % 100), vec![b'x'; 128]))).await?;
            c.shutdown().await;
            let checkpoints = SqlxCheckpoints::with_table(pool.clone(), &format!("bench_checkpoints_{round}")).await?;
            let file = consume!(url, &stream, None::<&SqlxCheckpoints<_>>, pool);
            let transactional = consume!(url, &stream, Some(&checkpoints), pool);
            tx_ratios.push(transactional / file);
            println!("{}: round {round}: consume file {:.1}k/s, transactional (1 tx per {TX_BATCH}) {:.1}k/s, ratio {:.2}", $name, file / 1e3, transactional / 1e3, transactional / file);
        }
        ratios.sort_by(f64::total_cmp);
        tx_ratios.sort_by(f64::total_cmp);
        println!("{}: relay / publish_batch median {:.2} (target ≥ 0.80); transactional / file consume median {:.2}", $name, ratios[ROUNDS / 2], tx_ratios[ROUNDS / 2]);
    }};
}

#[tokio::main]
async fn main() -> Result {
    let server = nats_server::NatsServer::start();
    let url = server.url();
    let dir = tempfile::tempdir()?;
    // WAL, as applications that write much run SQLite.
    let sqlite = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let sqlite: sqlx::sqlite::SqliteConnectOptions = sqlite.parse()?;
    let sqlite = sqlite
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
    bench_db!(
        "sqlite",
        sqlx::SqlitePool::connect_with(sqlite).await?,
        &url
    );
    if let Ok(pg) = std::env::var("DATABASE_URL") {
        bench_db!("postgres", sqlx::PgPool::connect(&pg).await?, &url);
    }
    let _: Option<Pool<sqlx::Sqlite>> = None;
    Ok(())
}
