//! herald-sqlx on SQLite and PostgreSQL, with the embedded backend: the checkpoint store, the
//! checkpoint committed in the application's transaction, and the outbox with its relay. Every
//! scenario runs on both databases (`sqlite::<name>` and `postgres::<name>`); the process-kill
//! scenarios against a real nats-server are in `tests/crash.rs`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use herald::{
    Checkpoint, CheckpointKey, CheckpointStore, Coordinator, CoordinatorEvent, ErrorKind,
    MemoryServer, Message, Reporter, StartPosition, Subscription,
};
use herald_sqlx::{SqlxCheckpoints, SqlxOutbox};
use sqlx::Pool;

use support::{wait_until, App, TestDb, DEADLINE};

/// Each named scenario as a test on SQLite and one on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name::<sqlx::Sqlite>(&super::TestDb::sqlite()).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name::<sqlx::Postgres>(&super::TestDb::postgres()).await;
            })*
        }
    };
}

on_both!(
    checkpoints_round_trip_with_stream_identity,
    commit_applies_the_effect_and_the_checkpoint_together,
    outbox_publishes_committed_rows_once_in_order,
    relay_retries_until_the_database_is_back,
    bad_configuration_is_refused_clearly,
);

/// Every event the coordinator reported.
type Events = Arc<Mutex<Vec<CoordinatorEvent>>>;

/// A coordinator of stream `EVENTS` on `server` that records every event.
async fn connect(server: &MemoryServer) -> (Coordinator<impl Reporter>, Events) {
    let events = Events::default();
    let sink = events.clone();
    let coordinator = Coordinator::builder()
        .memory_server(server.clone())
        .stream("EVENTS")
        .reporter(herald::reporter::from_fn(move |e| {
            sink.lock().unwrap().push(e.clone())
        }))
        .connect()
        .await
        .expect("connect");
    (coordinator, events)
}

/// The next message, within the deadline.
async fn next<R: Reporter>(sub: &mut Subscription<R>) -> Message {
    match tokio::time::timeout(DEADLINE, sub.next()).await {
        Ok(Some(Ok(message))) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn payload(message: &Message) -> String {
    String::from_utf8(message.payload.to_vec()).expect("UTF-8 payload")
}

fn int(n: u64) -> i64 {
    i64::try_from(n).expect("small")
}

async fn checkpoints_round_trip_with_stream_identity<DB: App>(db: &TestDb) {
    let pool = DB::connect(&db.url).await;
    let store = SqlxCheckpoints::new(pool.clone()).await.expect("store");
    assert_eq!(store.table(), "herald_checkpoints");
    let key = CheckpointKey {
        stream: "ALERTS".into(),
        durable: "apply".into(),
        filter: "ALERTS.>".into(),
    };
    let other = CheckpointKey {
        durable: "audit".into(),
        ..key.clone()
    };
    assert_eq!(store.load(&key).await.expect("load"), None);

    // Nanoseconds survive the round trip.
    let created = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
    let at = Checkpoint::new(42, Some(created));
    store.save(&key, at).await.expect("save");
    assert_eq!(store.load(&key).await.expect("load"), Some(at));
    assert_eq!(store.get(&key).await.expect("get"), Some(at));
    let stored = DB::rows(&pool, "SELECT seq, stream_created_ns FROM herald_checkpoints").await;
    assert_eq!(stored, vec![vec![42, 1_700_000_000_123_456_789]]);

    // Never backwards within one stream; forwards as usual.
    store.save(&key, Checkpoint::new(7, Some(created))).await.expect("save");
    assert_eq!(store.get(&key).await.expect("get"), Some(at), "moved back");
    let later = Checkpoint::new(50, Some(created));
    store.save(&key, later).await.expect("save");
    assert_eq!(store.get(&key).await.expect("get"), Some(later));

    // Another stream of the same name (deleted, created again) replaces it, even lower.
    let recreated = Checkpoint::new(3, Some(created + Duration::from_secs(60)));
    store.save(&key, recreated).await.expect("save");
    assert_eq!(store.get(&key).await.expect("get"), Some(recreated));
    store
        .save(&key, Checkpoint::new(2, recreated.stream_created))
        .await
        .expect("save");
    assert_eq!(store.get(&key).await.expect("get"), Some(recreated), "moved back");

    // Other keys are independent; an unknown identity is kept as unknown.
    assert_eq!(store.get(&other).await.expect("get"), None);
    store.save(&other, Checkpoint::new(9, None)).await.expect("save");
    assert_eq!(store.get(&other).await.expect("get"), Some(Checkpoint::new(9, None)));
    assert_eq!(store.get(&key).await.expect("get"), Some(recreated));

    // A store made again on the table sees the same; a store on another table does not.
    let again = SqlxCheckpoints::new(pool.clone()).await.expect("store again");
    assert_eq!(again.get(&key).await.expect("get"), Some(recreated));
    let elsewhere = SqlxCheckpoints::with_table(pool.clone(), "other_checkpoints")
        .await
        .expect("store on another table");
    assert_eq!(elsewhere.table(), "other_checkpoints");
    assert_eq!(elsewhere.get(&key).await.expect("get"), None);

    // As a subscription's plain store: acknowledged messages are saved (at the latest on
    // close), and a new coordinator resumes after them.
    let server = MemoryServer::new();
    let (coordinator, _) = connect(&server).await;
    let items = (1..=5).map(|i| (format!("ev.{i}"), i.to_string()));
    coordinator.publish_batch(items).await.expect("publish");
    let subscribe = |c: &Coordinator<_>| {
        c.subscribe(">")
            .durable("plain")
            .start(StartPosition::LastProcessed)
            .checkpoint_store(store.clone())
    };
    let mut sub = subscribe(&coordinator).await.expect("subscribe");
    for _ in 1..=3 {
        next(&mut sub).await.ack();
    }
    let key = next(&mut sub).await.checkpoint_key().clone(); // 4: not acknowledged
    sub.close().await;
    assert_eq!(store.get(&key).await.expect("get").map(|c| c.seq), Some(3));
    coordinator.shutdown().await;
    let (coordinator, _) = connect(&server).await;
    let mut sub = subscribe(&coordinator).await.expect("subscribe again");
    assert_eq!(next(&mut sub).await.seq, 4);
}

/// Applies `message` (inserts its id into `applied`) and commits it with its checkpoint.
async fn apply<DB: App>(
    store: &SqlxCheckpoints<DB>,
    pool: &Pool<DB>,
    message: &Message,
) -> herald::Result<()> {
    let mut tx = pool.begin().await.expect("begin");
    let id: i64 = payload(message).parse().expect("an id");
    let sql = "INSERT INTO applied (id, seq) VALUES ($1, $2)";
    DB::exec(&mut tx, sql, &[id, int(message.seq)]).await.expect("apply");
    store.commit(tx, message).await
}

async fn commit_applies_the_effect_and_the_checkpoint_together<DB: App>(db: &TestDb) {
    let pool = DB::connect(&db.url).await;
    DB::run(&pool, "CREATE TABLE applied (id BIGINT NOT NULL, seq BIGINT NOT NULL)").await;
    let server = MemoryServer::new();
    let (coordinator, events) = connect(&server).await;
    let store = SqlxCheckpoints::new(pool.clone())
        .await
        .expect("store")
        .reporting_to(&coordinator);
    let items = (1..=10).map(|i| (format!("ev.{i}"), i.to_string()));
    coordinator.publish_batch(items).await.expect("publish");
    let subscribe = |c: &Coordinator<_>| {
        c.subscribe(">")
            .durable("apply")
            .start(StartPosition::LastProcessed)
            .checkpoint_store(store.clone())
    };
    let applied = || DB::rows(&pool, "SELECT id FROM applied ORDER BY seq");
    let checkpoint = |key: CheckpointKey| {
        let store = store.clone();
        async move { store.get(&key).await.expect("get").map(|c| c.seq) }
    };

    let mut sub = subscribe(&coordinator).await.expect("subscribe");
    let mut last = None;
    for seq in 1..=4 {
        let message = next(&mut sub).await;
        assert_eq!(message.seq, seq);
        apply(&store, &pool, &message).await.expect("commit");
        last = Some(message);
    }
    let last = last.expect("a message");
    let key = last.checkpoint_key().clone();
    assert_eq!(store.get(&key).await.expect("get"), Some(last.checkpoint()));
    assert!(last.checkpoint().stream_created.is_some(), "no stream identity");
    assert_eq!(sub.last_acked(), 4, "commit acknowledges");

    // 5 is applied in a transaction that rolls back: neither its effect nor its checkpoint.
    let fifth = next(&mut sub).await;
    let mut tx = pool.begin().await.expect("begin");
    DB::exec(&mut tx, "INSERT INTO applied (id, seq) VALUES (5, 5)", &[]).await.expect("apply");
    tx.rollback().await.expect("rollback");
    assert_eq!(fifth.seq, 5);
    assert_eq!(checkpoint(key.clone()).await, Some(4));
    // The process dies: a new coordinator on the store resumes right after 4.
    drop(sub);
    drop(coordinator);
    let (coordinator, _) = connect(&server).await;
    let mut sub = subscribe(&coordinator).await.expect("subscribe again");
    let fifth = next(&mut sub).await;
    assert_eq!(fifth.seq, 5, "did not resume after the last committed message");
    apply(&store, &pool, &fifth).await.expect("commit");

    // Writing 6's checkpoint fails: its transaction's effect is not applied either.
    DB::fail_checkpoint_at(&pool, "herald_checkpoints", 6).await;
    let sixth = next(&mut sub).await;
    let error = apply(&store, &pool, &sixth).await.expect_err("a failed commit");
    assert_eq!(error.kind(), ErrorKind::Database);
    let text = error.to_string();
    assert!(text.contains("could not commit the checkpoint 6"), "{text}");
    assert!(text.contains("injected checkpoint failure"), "no cause: {text}");
    assert_eq!(applied().await, vec![[1], [2], [3], [4], [5]]);
    assert_eq!(checkpoint(key.clone()).await, Some(5));
    assert_eq!(sub.last_acked(), 5, "a failed commit acknowledged");
    DB::heal_checkpoints(&pool, "herald_checkpoints").await;
    drop(sub);
    drop(coordinator);

    let (coordinator, _) = connect(&server).await;
    let mut sub = subscribe(&coordinator).await.expect("subscribe again");
    for seq in 6..=10 {
        let message = next(&mut sub).await;
        assert_eq!(message.seq, seq, "did not resume after the last committed message");
        apply(&store, &pool, &message).await.expect("commit");
    }
    let expected: Vec<Vec<i64>> = (1..=10).map(|i| vec![i]).collect();
    assert_eq!(applied().await, expected, "every effect exactly once, in order");
    assert_eq!(checkpoint(key).await, Some(10));

    // The first coordinator's reporter saw the commits and the failure.
    let events = events.lock().unwrap().clone();
    let committed: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::CheckpointCommitted { seq, consumer, .. } => {
                assert_eq!(&**consumer, "apply");
                Some(*seq)
            }
            _ => None,
        })
        .collect();
    assert_eq!(committed, (1..=10).collect::<Vec<_>>());
    let failed = events.iter().find_map(|e| match e {
        CoordinatorEvent::CheckpointCommitFailed { seq, error, .. } => Some((*seq, error.clone())),
        _ => None,
    });
    let (seq, error) = failed.expect("CheckpointCommitFailed");
    assert_eq!(seq, 6);
    assert!(error.contains("injected checkpoint failure"), "{error}");
}

/// The keys and payloads of the next `n` messages.
async fn take<R: Reporter>(sub: &mut Subscription<R>, n: usize) -> Vec<(String, String)> {
    let mut taken = Vec::new();
    for _ in 0..n {
        let message = next(sub).await;
        taken.push((message.key().to_owned(), payload(&message)));
    }
    taken
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, p)| ((*k).to_owned(), (*p).to_owned())).collect()
}

async fn outbox_publishes_committed_rows_once_in_order<DB: App>(db: &TestDb) {
    let pool = DB::connect(&db.url).await;
    let outbox = SqlxOutbox::new(pool.clone()).await.expect("outbox");
    assert_eq!(outbox.table(), "herald_outbox");
    DB::run(&pool, "CREATE TABLE alerts (id BIGINT PRIMARY KEY)").await;

    // Written while no relay runs: committed, rolled back, dropped, committed.
    let mut tx = pool.begin().await.expect("begin");
    DB::exec(&mut tx, "INSERT INTO alerts (id) VALUES (1)", &[]).await.expect("insert");
    let first = outbox.enqueue(&mut tx, "alerts.1", b"one").await.expect("enqueue");
    outbox.enqueue(&mut tx, "alerts.2", b"two").await.expect("enqueue");
    tx.commit().await.expect("commit");
    let mut tx = pool.begin().await.expect("begin");
    outbox.enqueue(&mut tx, "alerts.3", b"rolled back").await.expect("enqueue");
    tx.rollback().await.expect("rollback");
    let mut tx = pool.begin().await.expect("begin");
    outbox.enqueue(&mut tx, "alerts.4", b"dropped").await.expect("enqueue");
    drop(tx);
    let mut tx = pool.begin().await.expect("begin");
    for bad in ["", "a b", "alerts.*", "alerts.>", "a..b"] {
        let error = outbox.enqueue(&mut tx, bad, b"x").await.expect_err(bad);
        assert_eq!(error.kind(), ErrorKind::InvalidSubject, "{bad:?}");
    }
    outbox.enqueue(&mut tx, "alerts.5", b"five").await.expect("enqueue");
    tx.commit().await.expect("commit");
    assert_eq!(outbox.pending().await.expect("pending"), 3);

    // The process restarts: the committed rows waited in the table.
    drop(outbox);
    pool.close().await;
    let pool = DB::connect(&db.url).await;
    let outbox = SqlxOutbox::new(pool.clone()).await.expect("outbox again");
    assert_eq!(outbox.pending().await.expect("pending"), 3);

    let server = MemoryServer::new();
    let (coordinator, events) = connect(&server).await;
    let mut sub = coordinator.subscribe(">").start(StartPosition::All).await.expect("subscribe");
    let relay = outbox.relay(coordinator.clone());
    let expected = pairs(&[("alerts.1", "one"), ("alerts.2", "two"), ("alerts.5", "five")]);
    assert_eq!(take(&mut sub, 3).await, expected);
    let drained = || async { outbox.pending().await.expect("pending") == 0 };
    wait_until(DEADLINE, drained, || "relayed rows stay in the outbox".into()).await;

    // Committed while the relay runs (PostgreSQL wakes it through NOTIFY).
    let mut tx = pool.begin().await.expect("begin");
    outbox.enqueue(&mut tx, "alerts.6", b"six").await.expect("enqueue");
    tx.commit().await.expect("commit");
    assert_eq!(take(&mut sub, 1).await, pairs(&[("alerts.6", "six")]));
    relay.shutdown().await;

    // Each message carries the id `<table>:<row id>`: publishing it again stores nothing.
    let id = format!("herald_outbox:{first}");
    let again = coordinator.publish_idempotent("alerts.1", "one", &id).await.expect("publish");
    assert!(again.duplicate && again.seq == 1, "{again:?}");

    // A new relay publishes only the new rows.
    let relay = outbox.relay(coordinator.clone());
    let mut tx = pool.begin().await.expect("begin");
    outbox.enqueue(&mut tx, "alerts.7", b"seven").await.expect("enqueue");
    tx.commit().await.expect("commit");
    coordinator.publish("end", "end").await.ok();
    let rest = take(&mut sub, 2).await;
    let end_last = rest == pairs(&[("alerts.7", "seven"), ("end", "end")]);
    let end_first = rest == pairs(&[("end", "end"), ("alerts.7", "seven")]);
    assert!(end_last || end_first, "published again or lost: {rest:?}");
    if end_first {
        coordinator.publish("end", "end").await.expect("publish");
        assert_eq!(take(&mut sub, 1).await, pairs(&[("end", "end")]), "a copy");
    }
    wait_until(DEADLINE, drained, || "relayed rows stay in the outbox".into()).await;
    relay.shutdown().await;

    let events = events.lock().unwrap().clone();
    let relayed: Vec<(u64, u64, bool)> = events
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::OutboxRelayed { outbox, row, seq, duplicate, .. } => {
                assert_eq!(&**outbox, "herald_outbox");
                Some((*row, *seq, *duplicate))
            }
            _ => None,
        })
        .collect();
    assert_eq!(relayed.len(), 5, "{relayed:?}");
    assert_eq!(relayed[0], (u64::try_from(first).expect("id"), 1, false));
    assert!(relayed.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{relayed:?}");
    let backlog = events.iter().find_map(|e| match e {
        CoordinatorEvent::OutboxBacklog { pending, .. } => Some(*pending),
        _ => None,
    });
    assert_eq!(backlog, Some(3), "the first batch's backlog");
}

async fn relay_retries_until_the_database_is_back<DB: App>(db: &TestDb) {
    let pool = DB::connect(&db.url).await;
    let outbox = SqlxOutbox::new(pool.clone()).await.expect("outbox");
    let server = MemoryServer::new();
    let (coordinator, events) = connect(&server).await;
    let mut sub = coordinator.subscribe(">").start(StartPosition::All).await.expect("subscribe");
    let relay = outbox.relay(coordinator.clone());

    // The table goes away under the relay: it reports and retries, with growing delays.
    DB::run(&pool, "DROP TABLE herald_outbox").await;
    let failures = || {
        let events = events.lock().unwrap();
        let failed = events.iter().filter_map(|e| match e {
            CoordinatorEvent::OutboxRelayFailed { attempt, delay, error, .. } => {
                Some((*attempt, *delay, error.clone()))
            }
            _ => None,
        });
        failed.collect::<Vec<_>>()
    };
    let retried = || async { failures().len() >= 3 };
    wait_until(DEADLINE, retried, || "the relay did not report failures".into()).await;
    let failed = failures();
    assert_eq!(failed.iter().map(|f| f.0).take(3).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(failed[1].1 > failed[0].1, "no backoff: {failed:?}");
    assert!(failed[0].2.contains("could not read the outbox herald_outbox"), "{failed:?}");
    assert!(!relay.is_finished());

    // Back: a row committed now is published.
    let outbox = SqlxOutbox::new(pool.clone()).await.expect("outbox again");
    let mut tx = pool.begin().await.expect("begin");
    outbox.enqueue(&mut tx, "alerts.1", b"back").await.expect("enqueue");
    tx.commit().await.expect("commit");
    assert_eq!(take(&mut sub, 1).await, pairs(&[("alerts.1", "back")]));
    relay.shutdown().await;
}

async fn bad_configuration_is_refused_clearly<DB: App>(db: &TestDb) {
    let pool = DB::connect(&db.url).await;
    for bad in ["", "2x", "a-b", "x;drop table y", "herald outbox", &"x".repeat(64)] {
        let error = SqlxOutbox::with_table(pool.clone(), bad).await.expect_err(bad);
        assert_eq!(error.kind(), ErrorKind::InvalidConfig, "{bad:?}");
        assert!(error.to_string().contains("is not allowed"), "{error}");
        let error = SqlxCheckpoints::with_table(pool.clone(), bad).await.expect_err(bad);
        assert_eq!(error.kind(), ErrorKind::InvalidConfig, "{bad:?}");
    }
    let outbox = SqlxOutbox::with_table(pool.clone(), &"x".repeat(63)).await.expect("63 bytes");
    assert_eq!(outbox.pending().await.expect("pending"), 0);

    // A database that cannot be reached: the error says what was being done, and why.
    let unreachable = DB::unreachable(&db.url);
    let error = SqlxOutbox::new(unreachable.clone()).await.expect_err("no database");
    assert_eq!(error.kind(), ErrorKind::Database);
    let text = error.to_string();
    assert!(text.starts_with("could not create the outbox table herald_outbox: "), "{text}");
    assert!(std::error::Error::source(&error).is_some(), "no cause: {error:?}");
    let error = SqlxCheckpoints::new(unreachable).await.expect_err("no database");
    assert_eq!(error.kind(), ErrorKind::Database);
    let text = error.to_string();
    assert!(text.starts_with("could not create the checkpoint table herald_checkpoints: "), "{text}");
}
