//! The outbox and its relay, and what they refuse.

use std::time::Duration;

use herald::{CoordinatorEvent, ErrorKind, MemoryServer, StartPosition};
use herald_sqlx::{RelayOptions, SqlxCheckpoints, SqlxOutbox};

use crate::support::{on_both, wait_until, App, TestDb, DEADLINE};
use crate::{connect, pairs, take};

on_both!(
    outbox_publishes_committed_rows_once_in_order,
    relay_retries_until_the_database_is_back,
    bad_configuration_is_refused_clearly,
);

async fn outbox_publishes_committed_rows_once_in_order<DB: App>(db: &TestDb) {
    let pool = DB::connect(&db.url).await;
    let outbox = SqlxOutbox::new(pool.clone()).await.expect("outbox");
    assert_eq!(outbox.table(), "herald_outbox");
    DB::run(&pool, "CREATE TABLE alerts (id BIGINT PRIMARY KEY)").await;

    // Written while no relay runs: committed, rolled back, dropped, committed.
    let mut tx = pool.begin().await.expect("begin");
    DB::exec(&mut tx, "INSERT INTO alerts (id) VALUES (1)", &[])
        .await
        .expect("insert");
    let first = outbox
        .enqueue(&mut tx, "alerts.1", b"one")
        .await
        .expect("enqueue");
    outbox
        .enqueue(&mut tx, "alerts.2", b"two")
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    let mut tx = pool.begin().await.expect("begin");
    outbox
        .enqueue(&mut tx, "alerts.3", b"rolled back")
        .await
        .expect("enqueue");
    tx.rollback().await.expect("rollback");
    let mut tx = pool.begin().await.expect("begin");
    outbox
        .enqueue(&mut tx, "alerts.4", b"dropped")
        .await
        .expect("enqueue");
    drop(tx);
    let mut tx = pool.begin().await.expect("begin");
    for bad in ["", "a b", "alerts.*", "alerts.>", "a..b"] {
        let error = outbox.enqueue(&mut tx, bad, b"x").await.expect_err(bad);
        assert_eq!(error.kind(), ErrorKind::InvalidSubject, "{bad:?}");
    }
    outbox
        .enqueue(&mut tx, "alerts.5", b"five")
        .await
        .expect("enqueue");
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
    let mut sub = coordinator
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    // Two rows at a time: the three waiting rows go out in two batches.
    let options = RelayOptions {
        batch: 2,
        ..RelayOptions::default()
    };
    let relay = outbox.relay_with(coordinator.clone(), options);
    let expected = pairs(&[
        ("alerts.1", "one"),
        ("alerts.2", "two"),
        ("alerts.5", "five"),
    ]);
    assert_eq!(take(&mut sub, 3).await, expected);
    let drained = || async { outbox.pending().await.expect("pending") == 0 };
    wait_until(DEADLINE, drained, || {
        "relayed rows stay in the outbox".into()
    })
    .await;

    // Committed while the relay runs (PostgreSQL wakes it through NOTIFY).
    let mut tx = pool.begin().await.expect("begin");
    outbox
        .enqueue(&mut tx, "alerts.6", b"six")
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    assert_eq!(take(&mut sub, 1).await, pairs(&[("alerts.6", "six")]));
    relay.shutdown().await;

    // Each message carries the outbox's id for the row: publishing it again stores nothing.
    let id = outbox.message_id(first);
    let again = coordinator
        .publish_idempotent("alerts.1", "one", &id)
        .await
        .expect("publish");
    assert!(again.duplicate && again.seq == 1, "{again:?}");

    // A new relay publishes only the new rows.
    let relay = outbox.relay(coordinator.clone());
    let mut tx = pool.begin().await.expect("begin");
    outbox
        .enqueue(&mut tx, "alerts.7", b"seven")
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    coordinator.publish("end", "end").await.expect("publish");
    let rest = take(&mut sub, 2).await;
    let end_last = rest == pairs(&[("alerts.7", "seven"), ("end", "end")]);
    let end_first = rest == pairs(&[("end", "end"), ("alerts.7", "seven")]);
    assert!(end_last || end_first, "published again or lost: {rest:?}");
    if end_first {
        coordinator.publish("end", "end").await.expect("publish");
        assert_eq!(take(&mut sub, 1).await, pairs(&[("end", "end")]), "a copy");
    }
    wait_until(DEADLINE, drained, || {
        "relayed rows stay in the outbox".into()
    })
    .await;
    relay.shutdown().await;

    let events = events.lock().unwrap().clone();
    let relayed: Vec<(u64, u64, bool)> = events
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::OutboxRelayed {
                outbox,
                row,
                seq,
                duplicate,
                ..
            } => {
                assert_eq!(&**outbox, "herald_outbox");
                Some((*row, *seq, *duplicate))
            }
            _ => None,
        })
        .collect();
    assert_eq!(relayed.len(), 5, "{relayed:?}");
    assert_eq!(relayed[0], (u64::try_from(first).expect("id"), 1, false));
    assert!(
        relayed
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
        "{relayed:?}"
    );
    // What was left after each batch: one row after the first (of two rows), none after the
    // last. (In between, a row committed meanwhile may be counted.)
    let backlog: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::OutboxBacklog { pending, .. } => Some(*pending),
            _ => None,
        })
        .collect();
    assert_eq!(backlog.len(), 4, "one per batch: {backlog:?}");
    assert_eq!((backlog[0], backlog[3]), (1, 0), "{backlog:?}");
}

async fn relay_retries_until_the_database_is_back<DB: App>(db: &TestDb) {
    let pool = DB::connect(&db.url).await;
    let outbox = SqlxOutbox::new(pool.clone()).await.expect("outbox");
    let server = MemoryServer::new();
    let (coordinator, events) = connect(&server).await;
    let mut sub = coordinator
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    let relay = outbox.relay(coordinator.clone());

    // The table goes away under the relay: it reports and retries, with growing delays.
    DB::run(&pool, "DROP TABLE herald_outbox").await;
    let failures = || {
        let events = events.lock().unwrap();
        let failed = events.iter().filter_map(|e| match e {
            CoordinatorEvent::OutboxRelayFailed {
                attempt,
                delay,
                error,
                ..
            } => Some((*attempt, *delay, error.clone())),
            _ => None,
        });
        failed.collect::<Vec<_>>()
    };
    let retried = || async { failures().len() >= 3 };
    wait_until(DEADLINE, retried, || {
        "the relay did not report failures".into()
    })
    .await;
    let failed = failures();
    assert_eq!(
        failed.iter().map(|f| f.0).take(3).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(failed[1].1 > failed[0].1, "no backoff: {failed:?}");
    assert!(
        failed[0]
            .2
            .contains("could not read the outbox herald_outbox"),
        "{failed:?}"
    );
    assert!(!relay.is_finished());

    // Back: a row committed now is published.
    let outbox = SqlxOutbox::new(pool.clone()).await.expect("outbox again");
    let mut tx = pool.begin().await.expect("begin");
    outbox
        .enqueue(&mut tx, "alerts.1", b"back")
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
    assert_eq!(take(&mut sub, 1).await, pairs(&[("alerts.1", "back")]));
    relay.shutdown().await;
}

async fn bad_configuration_is_refused_clearly<DB: App>(db: &TestDb) {
    let pool = DB::connect(&db.url).await;
    for bad in [
        "",
        "2x",
        "a-b",
        "x;drop table y",
        "herald outbox",
        &"x".repeat(55),
    ] {
        let error = SqlxOutbox::with_table(pool.clone(), bad)
            .await
            .expect_err(bad);
        assert_eq!(error.kind(), ErrorKind::InvalidConfig, "{bad:?}");
        assert!(error.to_string().contains("is not allowed"), "{error}");
        let error = SqlxCheckpoints::with_table(pool.clone(), bad)
            .await
            .expect_err(bad);
        assert_eq!(error.kind(), ErrorKind::InvalidConfig, "{bad:?}");
    }
    let outbox = SqlxOutbox::with_table(pool.clone(), &"x".repeat(54))
        .await
        .expect("54 bytes");
    assert_eq!(outbox.pending().await.expect("pending"), 0);

    // A database that cannot be reached: the error says what was being done, and why.
    let unreachable = DB::unreachable();
    let error = SqlxOutbox::new(unreachable.clone())
        .await
        .expect_err("no database");
    assert_eq!(error.kind(), ErrorKind::Database);
    let text = error.to_string();
    assert!(
        text.starts_with("could not create the outbox table herald_outbox: "),
        "{text}"
    );
    assert!(
        std::error::Error::source(&error).is_some(),
        "no cause: {error:?}"
    );
    let error = SqlxCheckpoints::new(unreachable)
        .await
        .expect_err("no database");
    assert_eq!(error.kind(), ErrorKind::Database);
    let text = error.to_string();
    assert!(
        text.starts_with("could not create the checkpoint table herald_checkpoints: "),
        "{text}"
    );
}

/// `Relay::is_finished` says whether "its coordinator was" shut down: a relay stops with its
/// coordinator. It does not while its outbox is empty: it learns of the shutdown only from a
/// publish that fails, so it goes on reading the table every `poll_interval` (and holds a
/// PostgreSQL connection for `LISTEN`) until a row is committed.
#[tokio::test]
async fn relay_stops_with_its_coordinator() {
    let db = TestDb::sqlite();
    let pool = <sqlx::Sqlite as App>::connect(&db.url).await;
    let outbox = SqlxOutbox::new(pool).await.expect("outbox");
    let (coordinator, _) = connect(&MemoryServer::new()).await;
    let relay = outbox.relay(coordinator.clone());
    coordinator.shutdown().await;
    let finished = || std::future::ready(relay.is_finished());
    let stopped = Duration::from_secs(5);
    wait_until(stopped, finished, || "the relay still runs".into()).await;
}

/// Two services, each with its own database and its outbox in the default table, publish to
/// one stream (Herald's model: every node publishes cluster-wide events): every row of both is
/// published. Were the message ids only `<table>:<row id>` (the same in both databases), the
/// stream would take the second service's rows for copies of the first's within the duplicate
/// window, and its relay would delete them as relayed: lost. Each outbox's instance token
/// keeps the ids apart.
#[tokio::test]
async fn outboxes_of_two_databases_publish_every_row() {
    let (a, b) = (TestDb::sqlite(), TestDb::sqlite());
    let (coordinator, _) = connect(&MemoryServer::new()).await;
    let mut sub = coordinator
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    let mut relays = Vec::new();
    for (db, key) in [(&a, "alerts.a"), (&b, "alerts.b")] {
        let pool = <sqlx::Sqlite as App>::connect(&db.url).await;
        let outbox = SqlxOutbox::new(pool.clone()).await.expect("outbox");
        let mut tx = pool.begin().await.expect("begin");
        outbox.enqueue(&mut tx, key, b"x").await.expect("enqueue");
        tx.commit().await.expect("commit");
        relays.push(outbox.relay(coordinator.clone()));
        let drained = || async { outbox.pending().await.expect("pending") == 0 };
        wait_until(DEADLINE, drained, || "not relayed".into()).await;
    }
    coordinator.publish("end", "end").await.expect("publish");
    let mut keys = Vec::new();
    while keys.last().is_none_or(|k| k != "end") {
        keys.push(crate::next(&mut sub).await.key().to_owned());
    }
    assert_eq!(
        keys,
        ["alerts.a", "alerts.b", "end"],
        "a service's row was lost"
    );
}
