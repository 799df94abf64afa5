//! The checkpoint store, and the checkpoint committed in the application's transaction.

use std::time::{Duration, UNIX_EPOCH};

use herald::{
    Checkpoint, CheckpointKey, CheckpointStore, CoordinatorEvent, ErrorKind, MemoryServer, Message,
};
use herald_sqlx::SqlxCheckpoints;
use sqlx::Pool;

use crate::support::{on_both, App, TestDb};
use crate::{connect, int, next, payload, resume};

on_both!(
    checkpoints_round_trip_with_stream_identity,
    commit_applies_the_effect_and_the_checkpoint_together,
);

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
    let stored = DB::rows(
        &pool,
        "SELECT seq, stream_created_ns FROM herald_checkpoints",
    )
    .await;
    assert_eq!(stored, vec![vec![42, 1_700_000_000_123_456_789]]);

    // Never backwards within one stream; forwards as usual.
    store
        .save(&key, Checkpoint::new(7, Some(created)))
        .await
        .expect("save");
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
    assert_eq!(
        store.get(&key).await.expect("get"),
        Some(recreated),
        "moved back"
    );

    // Other keys are independent; an unknown identity is kept as unknown.
    assert_eq!(store.get(&other).await.expect("get"), None);
    store
        .save(&other, Checkpoint::new(9, None))
        .await
        .expect("save");
    assert_eq!(
        store.get(&other).await.expect("get"),
        Some(Checkpoint::new(9, None))
    );
    assert_eq!(store.get(&key).await.expect("get"), Some(recreated));

    // A store made again on the table sees the same; a store on another table does not.
    let again = SqlxCheckpoints::new(pool.clone())
        .await
        .expect("store again");
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
    let mut sub = resume(&coordinator, "plain", &store).await;
    for _ in 1..=3 {
        next(&mut sub).await.ack();
    }
    let key = next(&mut sub).await.checkpoint_key().clone(); // 4: not acknowledged
    sub.close().await;
    assert_eq!(store.get(&key).await.expect("get").map(|c| c.seq), Some(3));
    coordinator.shutdown().await;
    let (coordinator, _) = connect(&server).await;
    let mut sub = resume(&coordinator, "plain", &store).await;
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
    DB::exec(&mut tx, sql, &[id, int(message.seq)])
        .await
        .expect("apply");
    store.commit(tx, message).await
}

async fn commit_applies_the_effect_and_the_checkpoint_together<DB: App>(db: &TestDb) {
    let pool = DB::connect(&db.url).await;
    DB::run(
        &pool,
        "CREATE TABLE applied (id BIGINT NOT NULL, seq BIGINT NOT NULL)",
    )
    .await;
    let server = MemoryServer::new();
    let (coordinator, events) = connect(&server).await;
    let store = SqlxCheckpoints::new(pool.clone())
        .await
        .expect("store")
        .reporting_to(&coordinator);
    let items = (1..=10).map(|i| (format!("ev.{i}"), i.to_string()));
    coordinator.publish_batch(items).await.expect("publish");
    let applied = || DB::rows(&pool, "SELECT id FROM applied ORDER BY seq");
    let checkpoint = |key: CheckpointKey| {
        let store = store.clone();
        async move { store.get(&key).await.expect("get").map(|c| c.seq) }
    };

    let mut sub = resume(&coordinator, "apply", &store).await;
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
    assert!(
        last.checkpoint().stream_created.is_some(),
        "no stream identity"
    );
    assert_eq!(sub.last_acked(), 4, "commit acknowledges");

    // 5 is applied in a transaction that rolls back: neither its effect nor its checkpoint.
    let fifth = next(&mut sub).await;
    let mut tx = pool.begin().await.expect("begin");
    DB::exec(&mut tx, "INSERT INTO applied (id, seq) VALUES (5, 5)", &[])
        .await
        .expect("apply");
    tx.rollback().await.expect("rollback");
    assert_eq!(fifth.seq, 5);
    assert_eq!(checkpoint(key.clone()).await, Some(4));
    // The process dies: a new coordinator on the store resumes right after 4.
    drop(sub);
    drop(coordinator);
    let (coordinator, _) = connect(&server).await;
    let mut sub = resume(&coordinator, "apply", &store).await;
    let fifth = next(&mut sub).await;
    assert_eq!(
        fifth.seq, 5,
        "did not resume after the last committed message"
    );
    apply(&store, &pool, &fifth).await.expect("commit");

    // Writing 6's checkpoint fails: its transaction's effect is not applied either.
    DB::fail_checkpoint_at(&pool, "herald_checkpoints", 6).await;
    let sixth = next(&mut sub).await;
    let error = apply(&store, &pool, &sixth)
        .await
        .expect_err("a failed commit");
    assert_eq!(error.kind(), ErrorKind::Database);
    let text = error.to_string();
    assert!(text.contains("could not commit the checkpoint 6"), "{text}");
    assert!(
        text.contains("injected checkpoint failure"),
        "no cause: {text}"
    );
    assert_eq!(applied().await, vec![[1], [2], [3], [4], [5]]);
    assert_eq!(checkpoint(key.clone()).await, Some(5));
    assert_eq!(sub.last_acked(), 5, "a failed commit acknowledged");
    DB::heal_checkpoints(&pool, "herald_checkpoints").await;
    drop(sub);
    drop(coordinator);

    let (coordinator, _) = connect(&server).await;
    let mut sub = resume(&coordinator, "apply", &store).await;
    for seq in 6..=10 {
        let message = next(&mut sub).await;
        assert_eq!(
            message.seq, seq,
            "did not resume after the last committed message"
        );
        apply(&store, &pool, &message).await.expect("commit");
    }
    let expected: Vec<Vec<i64>> = (1..=10).map(|i| vec![i]).collect();
    assert_eq!(
        applied().await,
        expected,
        "every effect exactly once, in order"
    );
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
