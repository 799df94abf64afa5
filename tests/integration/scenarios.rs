//! The core scenarios, each run on the embedded backend and on a real nats-server: exact
//! events, exact sequences.

use std::time::{Duration, SystemTime};

use herald::reporter::{from_fn, ReporterExt};
use herald::testing::{events_built, RecordingReporter};
use herald::{
    CheckpointPolicy, CoordinatorEvent, ErrorKind, EventKind, FileCheckpointStore,
    MemoryCheckpointStore, NullReporter, StartPosition,
};

use crate::support::client::Operator;
use crate::support::wait::DEADLINE;
use crate::support::{
    assert_quiet, assert_recorded, connect, on_both_backends, publish_and_take, publish_n,
    recorded, seqs, subscribe_all, take, take_seqs, take_seqs_meanwhile, Target,
};

async fn start_positions_deliver_exactly_the_expected_sequences(target: Target) {
    let c = target.connect("POS").await;
    assert_eq!(publish_n(&c, 5).await, vec![1, 2, 3, 4, 5]);

    let durable = |name: &str, start| c.subscribe(">").durable(name).start(start);
    let mut all = durable("all", StartPosition::All).await.expect("all");
    let mut from3 = durable("from3", StartPosition::Sequence(3))
        .await
        .expect("seq");
    let mut new = durable("new", StartPosition::New).await.expect("new");
    // Time: everything published after a point in time.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(publish_n(&c, 2).await, vec![6, 7]);
    let mut since = durable("since", StartPosition::Time(t))
        .await
        .expect("time");

    assert_eq!(take_seqs(&mut all, 7).await, (1..=7).collect::<Vec<_>>());
    assert_eq!(take_seqs(&mut from3, 5).await, vec![3, 4, 5, 6, 7]);
    assert_eq!(take_seqs(&mut new, 2).await, vec![6, 7]);
    assert_eq!(take_seqs(&mut since, 2).await, vec![6, 7]);
    assert_quiet(&mut new, Duration::from_millis(200)).await;

    // LastProcessed: resumes after the checkpoint an earlier subscription saved.
    let store = MemoryCheckpointStore::new();
    let lp = c.subscribe(">").durable("lp");
    let mut first = lp.checkpoint_store(store.clone()).await.expect("lp");
    assert_eq!(take_seqs(&mut first, 4).await, vec![1, 2, 3, 4]);
    first.close().await;
    let again = durable("lp", StartPosition::LastProcessed).checkpoint_store(store);
    let mut again = again.await.expect("lp again");
    assert_eq!(take_seqs(&mut again, 3).await, vec![5, 6, 7]);
}
on_both_backends!(start_positions_deliver_exactly_the_expected_sequences);

async fn resumes_after_consumer_deleted_without_duplicates(target: Target) {
    let (c, rec) = target.recorded("DEL").await;
    let new_alerts = c.subscribe("alerts.>").start(StartPosition::New);
    let mut sub = new_alerts.await.expect("subscribe");
    assert_eq!(publish_and_take(&c, &mut sub, 3).await, vec![1, 2, 3]);
    rec.clear();

    target.delete_consumer("DEL", sub.consumer_name()).await;
    // 4..=7 are published while the consumer is gone.
    assert_eq!(publish_and_take(&c, &mut sub, 4).await, vec![4, 5, 6, 7]);
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![8]);

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
    assert_recorded!(
        rec,
        CoordinatorEvent::ConsumerRecreated { resume_from: 4, .. }
    );
    assert_recorded!(rec, CoordinatorEvent::ReplayStarted { from: 4, to: 7, .. });
    assert_recorded!(rec, CoordinatorEvent::ReplayCompleted { events: 4, .. });
    let consumers = target.consumer_names("DEL").await;
    assert_eq!(consumers, vec![sub.consumer_name().to_string()]);
}
on_both_backends!(resumes_after_consumer_deleted_without_duplicates);

async fn resumes_at_checkpoint_after_a_restart(target: Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node_a = || target.builder().stream("RST").node_id("node-a");
    let policy = CheckpointPolicy {
        every: 1,
        interval: Duration::from_millis(50),
    };
    {
        let c = connect(node_a(), NullReporter).await;
        publish_n(&c, 6).await;
        let cache = c.subscribe(">").durable("cache");
        let cache = cache.checkpoint_store(FileCheckpointStore::new(dir.path()));
        let mut sub = cache.checkpoint_policy(policy).await.expect("subscribe");
        assert_eq!(take_seqs(&mut sub, 4).await, vec![1, 2, 3, 4]);
        sub.close().await;
        c.shutdown().await;
    }
    // A new process: a new coordinator with the same checkpoint directory.
    let rec = RecordingReporter::new();
    let c = connect(node_a(), rec.clone()).await;
    let cache = c.subscribe(">").durable("cache");
    let cache = cache.checkpoint_store(FileCheckpointStore::new(dir.path()));
    let mut sub = cache.await.expect("subscribe");
    assert_eq!(take_seqs(&mut sub, 2).await, vec![5, 6]);
    assert_recorded!(
        rec,
        CoordinatorEvent::Subscribed {
            checkpoint: Some(4),
            ..
        }
    );
    assert_recorded!(rec, CoordinatorEvent::ReplayStarted { from: 5, to: 6, .. });
}
on_both_backends!(resumes_at_checkpoint_after_a_restart);

async fn a_panicking_reporter_never_stops_delivery(target: Target) {
    let c = target
        .builder()
        .stream("PANIC")
        .reporter(from_fn(|_| panic!("reporter bug")))
        .connect()
        .await
        .expect("connect despite a panicking reporter");
    let mut sub = subscribe_all(&c, ">").await;
    let delivered = publish_and_take(&c, &mut sub, 50).await;
    assert_eq!(delivered, (1..=50).collect::<Vec<_>>());
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
    let rec = RecordingReporter::new();
    let c = connect(
        target.builder().stream("LOSS").max_age(max_age),
        rec.clone(),
    )
    .await;
    let store = MemoryCheckpointStore::new();
    let away = || {
        c.subscribe(">")
            .durable("away")
            .checkpoint_store(store.clone())
    };
    let policy = CheckpointPolicy {
        every: 1,
        interval: Duration::from_millis(20),
    };
    let mut sub = away().checkpoint_policy(policy).await.expect("subscribe");
    assert_eq!(publish_and_take(&c, &mut sub, 3).await, vec![1, 2, 3]);
    sub.close().await;

    // Away: 4..=8 are published and expire before the subscriber comes back.
    publish_n(&c, 5).await;
    match &target {
        Target::Memory(server) => {
            assert_eq!(server.expire_now("LOSS", Duration::from_secs(7200)), 8);
        }
        Target::Nats(server) => Operator::on(server).await.wait_until_expired("LOSS").await,
    }
    rec.clear();
    let mut sub = away().await.expect("subscribe again");
    assert_eq!(publish_and_take(&c, &mut sub, 2).await, vec![9, 10]);
    let lost = recorded!(rec, CoordinatorEvent::EventsLost { first, last, .. } => (*first, *last));
    assert_eq!(lost, vec![(4, 8)]);
}
on_both_backends!(exact_loss_is_reported_when_retention_removed_events);

async fn unwanted_events_are_never_built(target: Target) {
    // Run on the current thread so the thread-local build counter sees the coordinator's work.
    let before = events_built();
    let c = target.connect("QUIET").await;
    let mut sub = subscribe_all(&c, ">").await;
    publish_and_take(&c, &mut sub, 20).await;
    sub.close().await;
    c.shutdown().await;
    assert_eq!(events_built(), before);

    // A reporter that declines everything but EventsLost: still nothing built.
    let only_lost = ReporterExt::only(from_fn(|_| {}), |k| k == EventKind::EventsLost);
    let c = connect(target.builder().stream("QUIET"), only_lost).await;
    let mut sub = subscribe_all(&c, ">").await;
    take_seqs(&mut sub, 20).await;
    assert_eq!(events_built(), before);
}

mod unwanted_events_are_never_built {
    #[tokio::test(flavor = "current_thread")]
    async fn memory() {
        super::unwanted_events_are_never_built(crate::support::Target::memory()).await;
    }
}

async fn recovers_without_loss_after_heartbeats_stop(target: Target) {
    let (c, rec) = target.recorded("HB").await;
    let mut sub = subscribe_all(&c, ">").await;
    assert_eq!(publish_and_take(&c, &mut sub, 3).await, vec![1, 2, 3]);

    // Three heartbeat intervals (300 ms each) of silence.
    let thaw = target.freeze("HB", Duration::from_millis(900));
    let reader = take_seqs_meanwhile(sub, 3);
    rec.wait_for(EventKind::HeartbeatMissed).await;
    thaw.wait().await;
    publish_n(&c, 3).await;
    let (_sub, delivered) = reader.await.expect("join");
    assert_eq!(delivered, vec![4, 5, 6]);
    let missed = recorded!(rec, CoordinatorEvent::HeartbeatMissed { missed, .. } => *missed);
    assert_eq!(missed.first(), Some(&1), "{:?}", rec.kinds());
}
on_both_backends!(recovers_without_loss_after_heartbeats_stop);

async fn batched_publish_stores_in_order_and_validates_first(target: Target) {
    let c = target.connect("BATCH").await;
    let items: Vec<(String, String)> = (0..1500)
        .map(|i| (format!("k.{i}"), format!("{i}")))
        .collect();
    let stored = c.publish_batch(items).await.expect("batch");
    assert_eq!(stored, (1..=1500).collect::<Vec<_>>());
    let bad = [("ok.1", "x"), ("bad..key", "x")];
    let err = c.publish_batch(bad).await.unwrap_err();
    assert_eq!(err.kind(), herald::ErrorKind::InvalidSubject);
    // Nothing of the bad batch was stored.
    assert_eq!(c.publish("next", "x").await.expect("publish"), 1501);
    let tail = c.subscribe(">").start(StartPosition::Sequence(1499));
    let mut sub = tail.await.expect("sub");
    let got = take(&mut sub, 3).await;
    assert_eq!(seqs(&got), vec![1499, 1500, 1501]);
    assert_eq!(&got[0].payload[..], b"1498");
}
on_both_backends!(batched_publish_stores_in_order_and_validates_first);

async fn a_deleted_and_recreated_stream_starts_over_and_says_so(target: Target) {
    let (c, rec) = target.recorded("RESET").await;
    let mut sub = subscribe_all(&c, ">").await;
    assert_eq!(publish_and_take(&c, &mut sub, 5).await, vec![1, 2, 3, 4, 5]);

    target.delete_stream("RESET").await;
    // The subscription notices, recreates the stream (Herald owns its definition) and starts
    // over: the new stream's sequences start at 1 again.
    let reader = take_seqs_meanwhile(sub, 3);
    rec.wait_for(EventKind::StreamReset).await;
    assert_eq!(publish_n(&c, 3).await, vec![1, 2, 3]);
    let (_sub, delivered) = reader.await.expect("join");
    assert_eq!(delivered, vec![1, 2, 3]);
    assert_recorded!(
        rec,
        CoordinatorEvent::StreamReset {
            position: 5,
            last_seq: 0,
            ..
        }
    );
    assert_eq!(rec.count(EventKind::EventsLost), 0, "{:?}", rec.kinds());
}
on_both_backends!(a_deleted_and_recreated_stream_starts_over_and_says_so);

/// A subscription that has received nothing yet still notices its stream was deleted and
/// created again (by the stream's identity: its sequences have not gone backwards below any
/// delivery), says so, and reads the new stream from its start.
async fn a_stream_reset_before_the_first_message_is_not_silent(target: Target) {
    let (c, rec) = target.recorded("EARLY").await;
    publish_n(&c, 10).await;
    let new = c.subscribe(">").start(StartPosition::New);
    let sub = new.await.expect("subscribe");
    target.delete_stream("EARLY").await;
    let reader = take_seqs_meanwhile(sub, 15);
    rec.wait_for(EventKind::StreamReset).await;
    let all: Vec<u64> = (1..=15).collect();
    assert_eq!(publish_n(&c, 15).await, all);
    let (_sub, delivered) = reader.await.expect("join");
    assert_eq!(delivered, all, "the new stream from its start");
    assert_recorded!(
        rec,
        CoordinatorEvent::StreamReset {
            position: 10,
            last_seq: 0,
            ..
        }
    );
}
on_both_backends!(a_stream_reset_before_the_first_message_is_not_silent);

async fn a_purge_reports_exactly_what_was_not_yet_delivered(target: Target) {
    let (c, rec) = target.recorded("PURGE").await;
    let mut sub = subscribe_all(&c, ">").await;
    assert_eq!(publish_and_take(&c, &mut sub, 3).await, vec![1, 2, 3]);
    // The subscriber falls behind by 4..=6, then the stream is purged.
    target.delete_consumer("PURGE", sub.consumer_name()).await;
    publish_n(&c, 3).await;
    target.purge("PURGE").await;
    assert_eq!(publish_and_take(&c, &mut sub, 2).await, vec![7, 8]);
    let lost = recorded!(rec, CoordinatorEvent::EventsLost { first, last, .. } => (*first, *last));
    assert_eq!(lost, vec![(4, 6)]);
}
on_both_backends!(a_purge_reports_exactly_what_was_not_yet_delivered);

/// `ReplayStarted` is reported before the first replayed message reaches the application, and
/// `ReplayCompleted` only once the application has taken the last one: when it asks for the
/// next message.
async fn replay_is_reported_before_its_first_message_reaches_the_application(target: Target) {
    let (c, rec) = target.recorded("ORDER").await;
    let new = c.subscribe(">").start(StartPosition::New);
    let mut sub = new.await.expect("subscribe");
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![1]);
    target.delete_consumer("ORDER", sub.consumer_name()).await;
    publish_n(&c, 3).await; // 2..=4 will be replayed
    rec.clear();

    // The moment the first replayed message is in the application's hands, the replay has
    // been reported as started, and not yet as completed.
    let replay = || {
        let started = rec.count(EventKind::ReplayStarted);
        (started, rec.count(EventKind::ReplayCompleted))
    };
    let first = take(&mut sub, 1).await;
    assert_eq!((first[0].seq, first[0].replayed), (2, true));
    assert_eq!(replay(), (1, 0), "{:?}", rec.kinds());
    assert_eq!(take_seqs(&mut sub, 2).await, vec![3, 4]);
    assert_eq!(
        replay(),
        (1, 0),
        "the last replayed message is in hand: {:?}",
        rec.kinds()
    );
    assert_quiet(&mut sub, Duration::from_millis(50)).await;
    assert_eq!(
        replay(),
        (1, 1),
        "the application asked for more: {:?}",
        rec.kinds()
    );
}
on_both_backends!(replay_is_reported_before_its_first_message_reaches_the_application);

/// Consumer names are unambiguous: node `a-b` with durable `c` and node `a` with durable
/// `b-c` are two subscriptions, not one consumer fought over.
async fn node_and_durable_names_never_collide(target: Target) {
    let on_node = |node: &str, rec: RecordingReporter| {
        let builder = target.builder().stream("NAMES").node_id(node);
        builder.reporter(rec).connect()
    };
    let (rec_p, rec_q) = (RecordingReporter::new(), RecordingReporter::new());
    let p = on_node("a-b", rec_p.clone()).await.expect("connect");
    let q = on_node("a", rec_q.clone()).await.expect("connect");
    let sub_p = p
        .subscribe(">")
        .durable("c")
        .start(StartPosition::All)
        .await;
    let mut sub_p = sub_p.expect("subscribe");
    let sub_q = q
        .subscribe(">")
        .durable("b-c")
        .start(StartPosition::All)
        .await;
    let mut sub_q = sub_q.expect("subscribe");
    assert_ne!(sub_p.consumer_name(), sub_q.consumer_name());
    publish_n(&p, 3).await;
    assert_eq!(take_seqs(&mut sub_p, 3).await, vec![1, 2, 3]);
    assert_eq!(take_seqs(&mut sub_q, 3).await, vec![1, 2, 3]);
    for rec in [&rec_p, &rec_q] {
        assert_eq!(
            rec.count(EventKind::ConsumerDeleted),
            0,
            "{:?}",
            rec.kinds()
        );
    }
}
on_both_backends!(node_and_durable_names_never_collide);

/// Two coordinators with the same node id and durable name (two processes misconfigured
/// alike) do not delete each other's consumer for ever: one of them ends with
/// `ConsumerTaken`, saying why, and the other goes on.
async fn a_second_owner_of_a_consumer_ends_the_tug_of_war_with_a_clear_error(target: Target) {
    let connect = |rec: RecordingReporter| {
        let builder = target.builder().stream("TWICE").node_id("same");
        builder.reporter(rec).connect()
    };
    let (rec_a, rec_b) = (RecordingReporter::new(), RecordingReporter::new());
    let a = connect(rec_a.clone()).await.expect("connect a");
    let b = connect(rec_b.clone()).await.expect("connect b");
    let sub_a = a
        .subscribe(">")
        .durable("cache")
        .start(StartPosition::All)
        .await;
    let mut sub_a = sub_a.expect("subscribe a");
    let sub_b = b
        .subscribe(">")
        .durable("cache")
        .start(StartPosition::All)
        .await;
    let mut sub_b = sub_b.expect("subscribe b");
    let ended = tokio::time::timeout(DEADLINE, async {
        tokio::select! {
            item = sub_a.next() => ("a", item),
            item = sub_b.next() => ("b", item),
        }
    });
    let (who, item) = match ended.await {
        Ok(ended) => ended,
        Err(_) => panic!("no end: a {:?}\nb {:?}", rec_a.events(), rec_b.kinds()),
    };
    let error = item.expect("an item").expect_err("an error, not a message");
    assert_eq!(error.kind(), ErrorKind::ConsumerTaken, "{error}");
    assert!(error.to_string().contains("node id"), "{error}");
    let (winner, rec) = if who == "a" {
        (&mut sub_b, &rec_a)
    } else {
        (&mut sub_a, &rec_b)
    };
    let deletions = rec.count(EventKind::ConsumerDeleted);
    assert!(deletions <= 3, "{deletions} deletions: {:?}", rec.kinds());
    publish_n(&a, 2).await;
    assert_eq!(take_seqs(winner, 2).await, vec![1, 2]);
}
on_both_backends!(a_second_owner_of_a_consumer_ends_the_tug_of_war_with_a_clear_error);
