//! The process-kill scenarios, on SQLite and PostgreSQL, against a real nats-server that is
//! itself SIGKILLed and restarted:
//!
//! - `producer_killed`: a producer (two writers, each transaction writes 1 to 4 events to its
//!   own table and to the outbox; the relay publishes) is SIGKILLed 10 times at random points,
//!   and nats-server 6 times (under the relay, and between two producers): the stream holds
//!   every committed event exactly once, and none that was not committed;
//! - `consumer_killed`: a consumer (each event inserted into its own table, the checkpoint
//!   committed in the same transaction) is SIGKILLed 10 times, nats-server once under it: each
//!   event applied exactly once;
//! - `end_to_end`: producer -> outbox -> stream -> consumer, each SIGKILLed 5 times and
//!   nats-server once: the consumer's table equals the producer's.
//!
//! `stream_identity_survives_two_server_restarts` restarts it twice under a resuming consumer.
//!
//! The processes are this test binary run again (`--exact child`) with `HERALD_SQLX_ROLE`
//! saying which role to play. `HERALD_SQLX_EVENTS` changes the number of events (10,000),
//! `HERALD_SQLX_SEED` repeats a run's random kill points.

mod support;

#[path = "crash/roles.rs"]
mod roles;
#[path = "crash/run.rs"]
mod run;

use std::time::Duration;

use herald_sqlx::SqlxCheckpoints;

use roles::{consume, nats_coordinator, produce, subscribe};
use run::Run;
use support::nats::NatsServer;
use support::{on_both, App, TestDb};

const ROLE: &str = "HERALD_SQLX_ROLE";
const DB_KIND: &str = "HERALD_SQLX_DB_KIND";
const DB_URL: &str = "HERALD_SQLX_DB_URL";
const NATS_URL: &str = "HERALD_SQLX_NATS_URL";
const EVENTS: &str = "HERALD_SQLX_EVENTS";
/// SIGKILLs of each scenario.
const KILLS: usize = 10;
/// How long a process may take to make progress or to finish.
const SLOW: Duration = Duration::from_secs(120);

const TABLES: &str = "CREATE TABLE produced (id BIGINT PRIMARY KEY, token BIGINT NOT NULL);
    CREATE TABLE applied (id BIGINT NOT NULL, token BIGINT NOT NULL, seq BIGINT NOT NULL)";

on_both!(producer_killed, consumer_killed, end_to_end);

fn events() -> i64 {
    std::env::var(EVENTS)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

async fn producer_killed<DB: App>(db: &TestDb) {
    let mut run = Run::<DB>::start(db, "producer_killed").await;
    for round in 0..KILLS {
        let mut producer = run.spawn("producer");
        run.progress("produced", &mut [&mut producer]).await;
        if round % 3 == 1 {
            // NATS dies under the relay; the application goes on committing.
            run.nats.kill();
            run.progress("produced", &mut [&mut producer]).await;
            run.nats.restart();
        }
        producer.kill();
        if round % 3 == 2 {
            run.nats.kill();
            run.nats.restart();
        }
    }
    run.spawn("producer").finish().await;
    let produced = DB::rows(&run.pool, "SELECT id, token FROM produced ORDER BY id").await;
    assert_eq!(produced.last().map(|r| r[0]), Some(run.events));
    assert_exactly_once("the stream", run.read_stream().await, &produced);
}

async fn consumer_killed<DB: App>(db: &TestDb) {
    let mut run = Run::<DB>::start(db, "consumer_killed").await;
    let publisher = run.coordinator().await;
    let ids: Vec<i64> = (1..=run.events).collect();
    for chunk in ids.chunks(500) {
        let items = chunk
            .iter()
            .map(|id| (format!("ev.{id}"), format!("{id}:0")));
        publisher.publish_batch(items).await.expect("publish");
    }
    publisher.publish("end", "end").await.expect("publish");
    publisher.shutdown().await;
    for round in 0..KILLS {
        let mut consumer = run.spawn("consumer");
        run.progress("applied", &mut [&mut consumer]).await;
        if round == KILLS / 2 {
            // NATS dies under the consumer, which goes on once it is back. Once only: see
            // `stream_identity_survives_two_server_restarts`.
            run.nats.kill();
            run.nats.restart();
            run.progress("applied", &mut [&mut consumer]).await;
        }
        consumer.kill();
    }
    run.spawn("consumer").finish().await;
    let published: Vec<Vec<i64>> = ids.iter().map(|id| vec![*id, 0]).collect();
    assert_exactly_once("the consumer's table", run.applied().await, &published);
}

async fn end_to_end<DB: App>(db: &TestDb) {
    let mut run = Run::<DB>::start(db, "end_to_end").await;
    let mut producer = run.spawn("producer");
    let mut consumer = run.spawn("consumer");
    for round in 0..KILLS {
        run.progress("produced", &mut [&mut producer, &mut consumer])
            .await;
        if round % 2 == 0 {
            producer.kill();
            producer = run.spawn("producer");
        } else {
            run.progress("applied", &mut [&mut producer, &mut consumer])
                .await;
            consumer.kill();
            consumer = run.spawn("consumer");
        }
        if round == KILLS / 2 {
            run.nats.kill(); // once only, as in `consumer_killed`
            run.nats.restart();
        }
    }
    producer.finish().await;
    let publisher = run.coordinator().await;
    publisher.publish("end", "end").await.expect("publish");
    publisher.shutdown().await;
    consumer.finish().await;
    let produced = DB::rows(&run.pool, "SELECT id, token FROM produced ORDER BY id").await;
    assert_eq!(produced.last().map(|r| r[0]), Some(run.events));
    assert_exactly_once("the stream", run.read_stream().await, &produced);
    assert_exactly_once("the consumer's table", run.applied().await, &produced);
}

/// `found` (pairs of id and token, in any order) holds each of `expected` (sorted by id)
/// exactly once, and nothing else.
fn assert_exactly_once(what: &str, mut found: Vec<Vec<i64>>, expected: &[Vec<i64>]) {
    found.sort();
    let copies: Vec<_> = found.windows(2).filter(|w| w[0][0] == w[1][0]).collect();
    assert!(
        copies.is_empty(),
        "{what} holds copies: {:?}",
        &copies[..copies.len().min(10)]
    );
    let missing: Vec<_> = expected
        .iter()
        .filter(|e| found.binary_search(e).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{what} misses {} committed events: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let extra: Vec<_> = found
        .iter()
        .filter(|f| expected.binary_search(f).is_err())
        .collect();
    assert!(
        extra.is_empty(),
        "{what} holds {} events never committed: {:?}",
        extra.len(),
        &extra[..extra.len().min(10)]
    );
    eprintln!("{what}: {} events, each exactly once", found.len());
}

/// Not a test on its own: the body of the processes the scenarios start (nothing without
/// `HERALD_SQLX_ROLE`).
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (url, nats) = (var(DB_URL), var(NATS_URL));
    let events: i64 = var(EVENTS).parse().expect("a number of events");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        match (var(DB_KIND).as_str(), role.as_str()) {
            ("sqlite", "producer") => produce::<sqlx::Sqlite>(&url, &nats, events).await,
            ("postgres", "producer") => produce::<sqlx::Postgres>(&url, &nats, events).await,
            ("sqlite", "consumer") => consume::<sqlx::Sqlite>(&url, &nats).await,
            ("postgres", "consumer") => consume::<sqlx::Postgres>(&url, &nats).await,
            other => panic!("no such role: {other:?}"),
        }
    });
}

/// A stream keeps its identity (its creation time) across restarts of the server: a
/// subscription resumes after its committed checkpoint, not at the stream's start.
///
/// Fails with nats-server 2.9.10 (Debian's): after a restart, an update of the stream (Herald
/// updates it at every `connect`) stores the restart time as the creation time, which the next
/// restart reports (nats-io/nats-server#8470, fixed by #8471). Herald takes that for another
/// stream (`StreamReset`) and delivers every message again: committed effects are applied a
/// second time. Why the other scenarios restart the server once only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_identity_survives_two_server_restarts() {
    let db = TestDb::sqlite();
    let pool = <sqlx::Sqlite as App>::connect(&db.url).await;
    let store = SqlxCheckpoints::new(pool.clone())
        .await
        .expect("checkpoints");
    let mut nats = NatsServer::start();
    let coordinator = nats_coordinator(&nats.url(), "test").await;
    let items = (1..=5).map(|i| (format!("ev.{i}"), format!("{i}:0")));
    coordinator.publish_batch(items).await.expect("publish");
    let mut sub = subscribe(&coordinator, &store).await;
    let first = sub.next().await.expect("open").expect("a message");
    store
        .commit(pool.begin().await.expect("begin"), &first)
        .await
        .expect("commit");
    drop(sub);
    coordinator.shutdown().await;
    for _ in 0..2 {
        nats.restart(); // SIGKILL, then start on the same store
        nats_coordinator(&nats.url(), "test").await.shutdown().await;
    }
    let coordinator = nats_coordinator(&nats.url(), "test").await;
    let mut sub = subscribe(&coordinator, &store).await;
    let next = sub.next().await.expect("open").expect("a message");
    assert_eq!(next.seq, 2, "the committed message 1 is delivered again");
}
