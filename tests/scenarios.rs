//! The core scenarios, each run on the embedded backend and on a real nats-server: exact
//! events, exact sequences.

mod support;

use std::time::{Duration, SystemTime};

use herald::{
    CoordinatorEvent, EventKind, FileCheckpointStore, MemoryCheckpointStore, StartPosition,
};
use support::{assert_quiet, take_seqs, Recorder, Target};

async fn publish_n<R: herald::Reporter>(c: &herald::Coordinator<R>, n: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        seqs.push(
            c.publish(&format!("alerts.{i}"), format!("event {i}"))
                .await
                .expect("publish"),
        );
    }
    seqs
}

async fn start_positions_deliver_exactly_the_expected_sequences(target: Target) {
    let c = target
        .builder()
        .stream("POS")
        .connect()
        .await
        .expect("connect");
    assert_eq!(publish_n(&c, 5).await, vec![1, 2, 3, 4, 5]);

    let mut all = c
        .subscribe(">")
        .durable("all")
        .start(StartPosition::All)
        .await
        .expect("all");
    let mut from3 = c
        .subscribe(">")
        .durable("from3")
        .start(StartPosition::Sequence(3))
        .await
        .expect("seq");
    let mut new = c
        .subscribe(">")
        .durable("new")
        .start(StartPosition::New)
        .await
        .expect("new");
    // Time: everything published after a point in time.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(publish_n(&c, 2).await, vec![6, 7]);
    let mut since = c
        .subscribe(">")
        .durable("since")
        .start(StartPosition::Time(t))
        .await
        .expect("time");

    assert_eq!(take_seqs(&mut all, 7).await, (1..=7).collect::<Vec<_>>());
    assert_eq!(take_seqs(&mut from3, 5).await, vec![3, 4, 5, 6, 7]);
    assert_eq!(take_seqs(&mut new, 2).await, vec![6, 7]);
    assert_eq!(take_seqs(&mut since, 2).await, vec![6, 7]);
    assert_quiet(&mut new, Duration::from_millis(200)).await;

    // LastProcessed: resumes after the checkpoint an earlier subscription saved.
    let store = MemoryCheckpointStore::new();
    let mut first = c
        .subscribe(">")
        .durable("lp")
        .checkpoint_store(store.clone())
        .await
        .expect("lp");
    assert_eq!(take_seqs(&mut first, 4).await, vec![1, 2, 3, 4]);
    first.close().await;
    let mut again = c
        .subscribe(">")
        .durable("lp")
        .start(StartPosition::LastProcessed)
        .checkpoint_store(store)
        .await
        .expect("lp again");
    assert_eq!(take_seqs(&mut again, 3).await, vec![5, 6, 7]);
}
on_both_backends!(start_positions_deliver_exactly_the_expected_sequences);

async fn resumes_after_consumer_deleted_without_duplicates(target: Target) {
    let rec = Recorder::new();
    let c = target
        .builder()
        .stream("DEL")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe("alerts.>")
        .start(StartPosition::New)
        .await
        .expect("subscribe");
    publish_n(&c, 3).await;
    assert_eq!(take_seqs(&mut sub, 3).await, vec![1, 2, 3]);
    rec.clear();

    target.delete_consumer("DEL", sub.consumer_name()).await;
    publish_n(&c, 4).await; // 4..=7 published while the consumer is gone
    assert_eq!(take_seqs(&mut sub, 4).await, vec![4, 5, 6, 7]);
    publish_n(&c, 1).await;
    assert_eq!(take_seqs(&mut sub, 1).await, vec![8]);

    assert_eq!(
        rec.subscription_kinds(),
        vec![
            EventKind::ConsumerDeleted,
            EventKind::Resubscribing,
            EventKind::ConsumerRecreated,
            EventKind::ReplayStarted,
            EventKind::ReplayCompleted,
        ]
    );
    let events = rec.events();
    assert!(events.iter().any(|e| matches!(
        e,
        CoordinatorEvent::ConsumerRecreated { resume_from: 4, .. }
    )));
    assert!(events
        .iter()
        .any(|e| matches!(e, CoordinatorEvent::ReplayStarted { from: 4, to: 7, .. })));
    assert!(events
        .iter()
        .any(|e| matches!(e, CoordinatorEvent::ReplayCompleted { events: 4, .. })));
    assert_eq!(
        target.consumer_names("DEL").await,
        vec![sub.consumer_name().to_string()]
    );
}
on_both_backends!(resumes_after_consumer_deleted_without_duplicates);

async fn resumes_at_checkpoint_after_a_restart(target: Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = herald::CheckpointPolicy {
        every: 1,
        interval: Duration::from_millis(50),
    };
    {
        let c = target
            .builder()
            .stream("RST")
            .node_id("node-a")
            .connect()
            .await
            .expect("connect");
        publish_n(&c, 6).await;
        let mut sub = c
            .subscribe(">")
            .durable("cache")
            .checkpoint_store(FileCheckpointStore::new(dir.path()))
            .checkpoint_policy(policy)
            .await
            .expect("subscribe");
        assert_eq!(take_seqs(&mut sub, 4).await, vec![1, 2, 3, 4]);
        sub.close().await;
        c.shutdown().await;
    }
    // A new process: a new coordinator with the same checkpoint directory.
    let rec = Recorder::new();
    let c = target
        .builder()
        .stream("RST")
        .node_id("node-a")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .durable("cache")
        .checkpoint_store(FileCheckpointStore::new(dir.path()))
        .await
        .expect("subscribe");
    assert_eq!(take_seqs(&mut sub, 2).await, vec![5, 6]);
    assert!(rec.events().iter().any(|e| matches!(
        e,
        CoordinatorEvent::Subscribed {
            checkpoint: Some(4),
            ..
        }
    )));
    assert!(rec
        .events()
        .iter()
        .any(|e| matches!(e, CoordinatorEvent::ReplayStarted { from: 5, to: 6, .. })));
}
on_both_backends!(resumes_at_checkpoint_after_a_restart);

async fn a_panicking_reporter_never_stops_delivery(target: Target) {
    let c = target
        .builder()
        .stream("PANIC")
        .reporter(herald::reporter::from_fn(|_| panic!("reporter bug")))
        .connect()
        .await
        .expect("connect despite a panicking reporter");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    publish_n(&c, 50).await;
    assert_eq!(take_seqs(&mut sub, 50).await, (1..=50).collect::<Vec<_>>());
    // Connected, StreamReady, Subscribed, 50 Published, 50 Delivered at least.
    assert!(c.reporter_panics() >= 103, "{}", c.reporter_panics());
}
on_both_backends!(a_panicking_reporter_never_stops_delivery);

async fn exact_loss_is_reported_when_retention_removed_events(target: Target) {
    let max_age = if target.is_nats() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3600)
    };
    let rec = Recorder::new();
    let c = target
        .builder()
        .stream("LOSS")
        .max_age(max_age)
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let store = MemoryCheckpointStore::new();
    let policy = herald::CheckpointPolicy {
        every: 1,
        interval: Duration::from_millis(20),
    };
    let mut sub = c
        .subscribe(">")
        .durable("away")
        .checkpoint_store(store.clone())
        .checkpoint_policy(policy)
        .await
        .expect("subscribe");
    publish_n(&c, 3).await;
    assert_eq!(take_seqs(&mut sub, 3).await, vec![1, 2, 3]);
    sub.close().await;

    // Away: 4..=8 are published and expire before the subscriber comes back.
    publish_n(&c, 5).await;
    match &target {
        Target::Memory(server) => {
            assert_eq!(server.expire_now("LOSS", Duration::from_secs(7200)), 8);
        }
        Target::Nats(_) => tokio::time::sleep(Duration::from_secs(3)).await,
    }
    rec.clear();
    let mut sub = c
        .subscribe(">")
        .durable("away")
        .checkpoint_store(store)
        .await
        .expect("subscribe again");
    publish_n(&c, 2).await;
    assert_eq!(take_seqs(&mut sub, 2).await, vec![9, 10]);
    let lost: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| e.kind() == EventKind::EventsLost)
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(
        matches!(
            lost[0],
            CoordinatorEvent::EventsLost {
                first: 4,
                last: 8,
                ..
            }
        ),
        "{lost:?}"
    );
}
on_both_backends!(exact_loss_is_reported_when_retention_removed_events);

async fn unwanted_events_are_never_built(target: Target) {
    // Run on the current thread so the thread-local build counter sees the coordinator's work.
    let before = herald::testing::events_built();
    let c = target
        .builder()
        .stream("QUIET")
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    publish_n(&c, 20).await;
    take_seqs(&mut sub, 20).await;
    sub.close().await;
    c.shutdown().await;
    assert_eq!(herald::testing::events_built(), before);

    // A reporter that declines everything but EventsLost: still nothing built.
    let c = target
        .builder()
        .stream("QUIET")
        .reporter(herald::reporter::ReporterExt::only(
            herald::reporter::from_fn(|_| {}),
            |k| k == EventKind::EventsLost,
        ))
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    take_seqs(&mut sub, 20).await;
    assert_eq!(herald::testing::events_built(), before);
}

mod unwanted_events_are_never_built {
    #[tokio::test(flavor = "current_thread")]
    async fn memory() {
        super::unwanted_events_are_never_built(crate::support::Target::memory()).await;
    }
}

async fn recovers_without_loss_after_heartbeats_stop(target: Target) {
    let rec = Recorder::new();
    let c = target
        .builder()
        .stream("HB")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    publish_n(&c, 3).await;
    assert_eq!(take_seqs(&mut sub, 3).await, vec![1, 2, 3]);

    // Three heartbeat intervals (300 ms each) of silence.
    target.freeze("HB", Duration::from_millis(900));
    let waiter = tokio::spawn(async move {
        let items = take_seqs(&mut sub, 3).await;
        (sub, items)
    });
    rec.wait_for(EventKind::HeartbeatMissed).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    publish_n(&c, 3).await;
    let (_sub, items) = waiter.await.expect("join");
    assert_eq!(items, vec![4, 5, 6]);
    let missed: Vec<u32> = rec
        .events()
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::HeartbeatMissed { missed, .. } => Some(*missed),
            _ => None,
        })
        .collect();
    assert_eq!(missed.first(), Some(&1), "{:?}", rec.kinds());
}
on_both_backends!(recovers_without_loss_after_heartbeats_stop);

async fn batched_publish_stores_in_order_and_validates_first(target: Target) {
    let c = target
        .builder()
        .stream("BATCH")
        .connect()
        .await
        .expect("connect");
    let items: Vec<(String, String)> = (0..1500)
        .map(|i| (format!("k.{i}"), format!("{i}")))
        .collect();
    let seqs = c.publish_batch(items).await.expect("batch");
    assert_eq!(seqs, (1..=1500).collect::<Vec<_>>());
    let err = c
        .publish_batch([("ok.1", "x"), ("bad..key", "x")])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), herald::ErrorKind::InvalidSubject);
    // Nothing of the bad batch was stored.
    assert_eq!(c.publish("next", "x").await.expect("publish"), 1501);
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::Sequence(1499))
        .await
        .expect("sub");
    let got = support::take(&mut sub, 3).await;
    assert_eq!(support::seqs(&got), vec![1499, 1500, 1501]);
    assert_eq!(&got[0].payload[..], b"1498");
}
on_both_backends!(batched_publish_stores_in_order_and_validates_first);

async fn a_deleted_and_recreated_stream_starts_over_and_says_so(target: Target) {
    let rec = Recorder::new();
    let c = target
        .builder()
        .stream("RESET")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    publish_n(&c, 5).await;
    assert_eq!(take_seqs(&mut sub, 5).await, vec![1, 2, 3, 4, 5]);

    target.delete_stream("RESET").await;
    // The subscription notices, recreates the stream (Herald owns its definition) and starts
    // over: the new stream's sequences start at 1 again.
    let reader = tokio::spawn(async move {
        let seqs = take_seqs(&mut sub, 3).await;
        (sub, seqs)
    });
    rec.wait_for(EventKind::StreamReset).await;
    assert_eq!(publish_n(&c, 3).await, vec![1, 2, 3]);
    let (_sub, seqs) = reader.await.expect("join");
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(rec.events().iter().any(|e| matches!(
        e,
        CoordinatorEvent::StreamReset {
            position: 5,
            last_seq: 0,
            ..
        }
    )));
    assert_eq!(rec.count(EventKind::EventsLost), 0, "{:?}", rec.kinds());
}
on_both_backends!(a_deleted_and_recreated_stream_starts_over_and_says_so);

async fn a_purge_reports_exactly_what_was_not_yet_delivered(target: Target) {
    let rec = Recorder::new();
    let c = target
        .builder()
        .stream("PURGE")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    publish_n(&c, 3).await;
    assert_eq!(take_seqs(&mut sub, 3).await, vec![1, 2, 3]);
    // The subscriber falls behind by 4..=6, then the stream is purged.
    target.delete_consumer("PURGE", sub.consumer_name()).await;
    publish_n(&c, 3).await;
    target.purge("PURGE").await;
    publish_n(&c, 2).await;
    assert_eq!(take_seqs(&mut sub, 2).await, vec![7, 8]);
    let lost: Vec<_> = rec
        .events()
        .into_iter()
        .filter(|e| e.kind() == EventKind::EventsLost)
        .collect();
    assert!(
        matches!(
            lost[..],
            [CoordinatorEvent::EventsLost {
                first: 4,
                last: 6,
                ..
            }]
        ),
        "{lost:?}"
    );
}
on_both_backends!(a_purge_reports_exactly_what_was_not_yet_delivered);

async fn replay_is_reported_before_its_first_message_reaches_the_application(target: Target) {
    let rec = Recorder::new();
    let c = target
        .builder()
        .stream("ORDER")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::New)
        .await
        .expect("subscribe");
    publish_n(&c, 1).await;
    assert_eq!(take_seqs(&mut sub, 1).await, vec![1]);
    target.delete_consumer("ORDER", sub.consumer_name()).await;
    publish_n(&c, 3).await; // 2..=4 will be replayed
    rec.clear();

    // The moment the first replayed message is in the application's hands, the replay has
    // been reported as started, and not yet as completed.
    let first = support::take(&mut sub, 1).await;
    assert_eq!((first[0].seq, first[0].replayed), (2, true));
    assert_eq!(rec.count(EventKind::ReplayStarted), 1, "{:?}", rec.kinds());
    assert_eq!(
        rec.count(EventKind::ReplayCompleted),
        0,
        "{:?}",
        rec.kinds()
    );
    let rest = support::take(&mut sub, 2).await;
    assert_eq!(support::seqs(&rest), vec![3, 4]);
    assert_eq!(
        rec.count(EventKind::ReplayCompleted),
        1,
        "{:?}",
        rec.kinds()
    );
}
on_both_backends!(replay_is_reported_before_its_first_message_reaches_the_application);
