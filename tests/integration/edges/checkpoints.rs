//! Checkpoints and the subscription's life: the crash window holds under a slow store and a
//! failing one never stops delivery (finding 5), a dropped subscription hands its
//! acknowledgements to the next (6), a cancelled subscribe gives its name back (10), a zero
//! interval and a panicking store are refused and reported (12), and acknowledgements are
//! cumulative (14).

use std::sync::Arc;
use std::time::Duration;

use herald::testing::RecordingReporter;
use herald::{
    CheckpointPolicy, Coordinator, CoordinatorEvent, ErrorKind, EventKind, MemoryCheckpointStore,
    NullReporter, StartPosition, Subscribe,
};

use super::next;
use crate::support::stores::{Quirk, TestStore};
use crate::support::{
    connect, on_both_backends, publish_and_take, publish_n, recorded, subscribe_all, take_seqs,
    wait_until, Target, DEADLINE,
};

// Finding 5 -------------------------------------------------------------------------------------

async fn the_crash_window_holds_under_a_slow_store(target: Target) {
    const EVERY: u64 = 10;
    fn crashing(c: &Coordinator, store: Arc<TestStore>) -> Subscribe<'_> {
        let policy = CheckpointPolicy {
            every: EVERY,
            interval: Duration::from_secs(1),
        };
        let crash = c.subscribe(">").durable("crash").checkpoint_store(store);
        crash.checkpoint_policy(policy)
    }
    let durable = MemoryCheckpointStore::new();
    let node = || target.builder().stream("CRASH").node_id("node-a");
    let c = connect(node(), NullReporter).await;
    let batch = c.publish_batch((1..=500).map(|i| (format!("k.{i}"), "x")));
    batch.await.expect("batch");
    let store = TestStore::over(durable.clone(), Duration::from_millis(30));
    let mut sub = crashing(&c, store.clone()).await.expect("subscribe");
    let mut widest = 0;
    for want in 1..=500 {
        let message = next(&mut sub).await;
        assert_eq!(message.seq, want);
        widest = widest.max(message.seq - store.last_saved());
        message.ack();
    }
    assert!(
        widest <= EVERY,
        "{widest} sequences past the saved checkpoint"
    );

    // The process dies: nothing more is saved, nothing is closed.
    store.crash();
    drop((sub, c));
    let c = connect(node(), NullReporter).await;
    let again = crashing(&c, TestStore::over(durable, Duration::ZERO));
    let mut sub = again.await.expect("subscribe again");
    assert_eq!(c.publish("k.after", "x").await.expect("publish"), 501);
    let mut redelivered = Vec::new();
    while let seq @ ..=500 = next(&mut sub).await.seq {
        redelivered.push(seq);
    }
    let from = redelivered.first().copied().unwrap_or(501);
    assert_eq!(redelivered, (from..=500).collect::<Vec<_>>());
    assert!(redelivered.len() as u64 <= EVERY, "{redelivered:?} again");
}
on_both_backends!(the_crash_window_holds_under_a_slow_store);

#[tokio::test]
async fn a_failing_checkpoint_store_is_reported_and_never_stops_delivery() {
    let rec = RecordingReporter::new();
    let c = connect(Coordinator::builder(), rec.clone()).await;
    let store = TestStore::over(MemoryCheckpointStore::new(), Duration::from_millis(5));
    store.set_failing(true);
    let policy = CheckpointPolicy {
        every: 10,
        interval: Duration::from_secs(1),
    };
    let all = c.subscribe(">").start(StartPosition::All);
    let all = all
        .checkpoint_store(store.clone())
        .checkpoint_policy(policy);
    let mut sub = all.await.expect("subscribe");
    let taken = publish_and_take(&c, &mut sub, 100).await;
    assert_eq!(taken, (1..=100).collect::<Vec<_>>());
    rec.wait_for(EventKind::CheckpointFailed).await;
    assert_eq!((store.saves(), sub.last_saved()), (vec![], 0));

    // The store recovers: the next save catches up with every acknowledgement.
    store.set_failing(false);
    let saved = || sub.last_saved();
    wait_until(DEADLINE, async || saved() == 100, &saved).await;
    assert_eq!(store.last_saved(), 100);
}

// Finding 6 -------------------------------------------------------------------------------------

async fn a_dropped_subscription_hands_its_acknowledgements_to_the_next(target: Target) {
    let c = target.connect("HANDOFF").await;
    publish_n(&c, 60).await;
    // The default policy saves nothing before the drop, and the save then takes a while.
    let store = TestStore::over(MemoryCheckpointStore::new(), Duration::from_millis(30));
    let cache = || {
        c.subscribe(">")
            .durable("cache")
            .checkpoint_store(store.clone())
    };
    let mut sub = cache().await.expect("subscribe");
    assert_eq!(take_seqs(&mut sub, 50).await, (1..=50).collect::<Vec<_>>());
    drop(sub);
    let again = cache().start(StartPosition::LastProcessed);
    let mut sub = again.await.expect("subscribe again");
    assert_eq!(take_seqs(&mut sub, 10).await, (51..=60).collect::<Vec<_>>());
}
on_both_backends!(a_dropped_subscription_hands_its_acknowledgements_to_the_next);

// Finding 10 ------------------------------------------------------------------------------------

async fn a_cancelled_subscribe_gives_its_name_back(target: Target) {
    let c = target.connect("CANCEL").await;
    let cache = || c.subscribe(">").durable("cache").start(StartPosition::All);
    // Dropped at its first wait (on NATS, a request to the server)...
    let _ = tokio::time::timeout(Duration::ZERO, cache()).await;
    // ... and while its checkpoint loads, forever.
    let hanging = cache().checkpoint_store(TestStore::with(Quirk::HangingLoads));
    let cancelled = tokio::time::timeout(Duration::from_millis(50), hanging);
    assert!(cancelled.await.is_err(), "the load never returns");

    let mut sub = cache().await.expect("the name is free");
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![1]);
    let consumers = target.consumer_names("CANCEL").await;
    assert_eq!(consumers, vec![sub.consumer_name().to_string()]);
}
on_both_backends!(a_cancelled_subscribe_gives_its_name_back);

// Finding 12 ------------------------------------------------------------------------------------

#[tokio::test]
async fn a_zero_checkpoint_interval_is_refused_at_subscribe() {
    let c = Coordinator::builder().connect().await.expect("connect");
    let policy = CheckpointPolicy {
        every: 10,
        interval: Duration::ZERO,
    };
    let err = c
        .subscribe(">")
        .checkpoint_policy(policy)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(err.to_string().contains("checkpoint interval"), "{err}");
}

#[tokio::test]
async fn a_panicking_checkpoint_store_is_reported_and_delivery_goes_on() {
    let rec = RecordingReporter::new();
    let c = connect(Coordinator::builder(), rec.clone()).await;
    let policy = CheckpointPolicy {
        every: 10,
        interval: Duration::from_secs(1),
    };
    let all = c.subscribe(">").start(StartPosition::All);
    let all = all.checkpoint_store(TestStore::with(Quirk::PanickingSaves));
    let mut sub = all.checkpoint_policy(policy).await.expect("subscribe");
    let taken = publish_and_take(&c, &mut sub, 30).await;
    assert_eq!(taken, (1..=30).collect::<Vec<_>>());
    rec.wait_for(EventKind::CheckpointFailed).await;
    let failed = recorded!(rec, CoordinatorEvent::CheckpointFailed { error, .. } => error.clone());
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("panicked"), "{failed:?}");
}

// Finding 14 ------------------------------------------------------------------------------------

#[cfg(debug_assertions)]
#[tokio::test]
#[should_panic(expected = "cumulative")]
async fn acknowledging_an_earlier_message_after_a_later_one_panics_in_debug_builds() {
    let c = Coordinator::builder().connect().await.expect("connect");
    let mut sub = subscribe_all(&c, ">").await;
    publish_n(&c, 7).await;
    let mut messages = Vec::new();
    for _ in 0..7 {
        messages.push(next(&mut sub).await);
    }
    messages[6].ack();
    messages[4].ack();
}

// The checkpoint keeps its stream's identity -------------------------------------------------

/// A process saves checkpoint 4 and stops; the stream is deleted and created again, and the
/// new stream gets six messages (past the checkpoint) before the next process starts. The
/// checkpoint belongs to the old stream: the new process says `StreamReset` and reads the new
/// stream from 1, instead of resuming at 5 and skipping the new stream's 1..=4.
async fn a_checkpoint_of_a_deleted_stream_does_not_skip_the_new_one(target: Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = || target.builder().stream("GONE").node_id("node-a");
    fn cache<'c, R: herald::Reporter>(
        c: &'c Coordinator<R>,
        dir: &std::path::Path,
    ) -> Subscribe<'c, R> {
        let policy = CheckpointPolicy {
            every: 1,
            interval: Duration::from_millis(20),
        };
        let cache = c.subscribe(">").durable("cache").checkpoint_policy(policy);
        cache.checkpoint_store(herald::FileCheckpointStore::new(dir))
    }
    let subscribe = |c| cache(c, dir.path());
    let subscribe_recorded = |c| cache(c, dir.path());
    {
        let c = connect(node(), NullReporter).await;
        let mut sub = subscribe(&c).await.expect("subscribe");
        assert_eq!(publish_and_take(&c, &mut sub, 4).await, vec![1, 2, 3, 4]);
        sub.close().await;
        c.shutdown().await;
    }
    target.delete_stream("GONE").await;
    {
        let c = connect(node(), NullReporter).await;
        assert_eq!(publish_n(&c, 6).await, vec![1, 2, 3, 4, 5, 6]);
        c.shutdown().await;
    }

    let rec = RecordingReporter::new();
    let c = connect(node(), rec.clone()).await;
    let mut sub = subscribe_recorded(&c).await.expect("subscribe");
    assert_eq!(take_seqs(&mut sub, 6).await, vec![1, 2, 3, 4, 5, 6]);
    let resets: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| e.kind() == EventKind::StreamReset)
        .collect();
    assert!(
        matches!(
            resets[..],
            [CoordinatorEvent::StreamReset {
                position: 4,
                last_seq: 6,
                ..
            }]
        ),
        "{resets:?}"
    );
    assert_eq!(rec.count(EventKind::EventsLost), 0, "{:?}", rec.kinds());
}
on_both_backends!(a_checkpoint_of_a_deleted_stream_does_not_skip_the_new_one);
