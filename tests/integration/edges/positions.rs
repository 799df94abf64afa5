//! Where a subscription is, and what it says it lost: idle subscriptions stay quiet (finding
//! 3), traffic a filter passes over moves its position (4), loss inside a filtered backlog is
//! exact (2), a recreated consumer says where it really resumes (17), and only consecutive
//! missed heartbeats add up (18).

use std::time::{Duration, Instant};

use herald::testing::RecordingReporter;
use herald::{
    Builder, CheckpointPolicy, Coordinator, CoordinatorEvent, EventKind, MemoryCheckpointStore,
    MemoryServer, Reporter, ResubscribeCause, StartPosition, Subscribe, Subscription,
};

use super::{key, on, QUICK};
use crate::support::client::Operator;
use crate::support::{
    assert_quiet, assert_recorded, connect, nats_builder, on_both_backends, publish_and_take,
    publish_n, recorded, subscribe_all, take_seqs, take_seqs_meanwhile, wait_until, NatsServer,
    Target, DEADLINE,
};

/// Saves the checkpoint after every acknowledged message.
const EVERY_MESSAGE: CheckpointPolicy = CheckpointPolicy {
    every: 1,
    interval: Duration::from_millis(10),
};

/// The kinds a subscription that is left alone must never report.
const FAULTS: [EventKind; 5] = [
    EventKind::HeartbeatMissed,
    EventKind::ConsumerDeleted,
    EventKind::Resubscribing,
    EventKind::ConsumerRecreated,
    EventKind::EventsLost,
];

/// The subscription events recorded, without the checkpoint saves, whose number depends on
/// timing.
fn story(rec: &RecordingReporter) -> Vec<EventKind> {
    let mut kinds = rec.subscription_kinds();
    kinds.retain(|k| *k != EventKind::CheckpointSaved);
    kinds
}

/// The faults recorded.
fn faults(rec: &RecordingReporter) -> Vec<CoordinatorEvent> {
    let mut events = rec.events();
    events.retain(|e| FAULTS.contains(&e.kind()));
    events
}

/// Publishes `n` messages that `alerts.>` does not match; returns their sequences.
async fn publish_other<R: Reporter>(c: &Coordinator<R>, n: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        seqs.push(
            c.publish(&format!("other.{i}"), "x")
                .await
                .expect("publish"),
        );
    }
    seqs
}

/// Keeps `sub` polled, as an idle application does, until `ready` holds; it must deliver
/// nothing meanwhile.
async fn idle_until<R: Reporter>(
    sub: &mut Subscription<R>,
    ready: impl Fn() -> bool,
    state: impl Fn() -> String,
) {
    let deadline = Instant::now() + DEADLINE;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "not within {DEADLINE:?}: {}",
            state()
        );
        assert_quiet(sub, Duration::from_millis(10)).await;
    }
}

// Finding 3 -------------------------------------------------------------------------------------

/// An idle consumer's periodic check with the server must not take idleness, or traffic its
/// filter passes over, for a lost tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscriptions_keep_one_consumer_and_report_nothing_for_many_heartbeats() {
    let server = NatsServer::start();
    let operator = Operator::on(&server).await;
    let heartbeat = Duration::from_millis(150);
    let rec = RecordingReporter::new();
    let builder = |stream: &str| nats_builder(&server).stream(stream).heartbeat(heartbeat);
    let quiet = connect(builder("QUIET"), rec.clone()).await;
    let busy = connect(builder("BUSY"), rec.clone()).await;
    publish_n(&quiet, 10).await;
    publish_n(&busy, 10).await;
    let all = quiet.subscribe(">").start(StartPosition::New).await;
    let alerts = busy.subscribe("alerts.>").start(StartPosition::New).await;
    let (all, alerts) = (all.expect("all"), alerts.expect("alerts"));
    let one = |sub: &Subscription<RecordingReporter>| vec![sub.consumer_name().to_string()];
    let consumers = (one(&all), one(&alerts));
    let readers = (take_seqs_meanwhile(all, 1), take_seqs_meanwhile(alerts, 1));
    // Sixteen heartbeats (two idle checks, one every six), BUSY with traffic nobody wants.
    let until = Instant::now() + heartbeat * 16;
    while Instant::now() < until {
        publish_other(&busy, 1).await;
        let names = operator.consumer_names("QUIET").await;
        assert_eq!((names, operator.consumer_names("BUSY").await), consumers);
        tokio::time::sleep(heartbeat / 2).await;
    }
    let wanted = busy.publish("alerts.late", "x").await.expect("publish");
    assert_eq!(
        quiet.publish("alerts.late", "x").await.expect("publish"),
        11
    );
    let (_all, all) = readers.0.await.expect("join");
    let (_alerts, alerts) = readers.1.await.expect("join");
    assert_eq!((all, alerts), (vec![11], vec![wanted]));
    assert_eq!(faults(&rec), vec![]);
    assert_eq!(story(&rec), [EventKind::Subscribed, EventKind::Subscribed]);
}

// Finding 4 -------------------------------------------------------------------------------------

/// A builder for the expiry scenarios: quick heartbeats (an idle NATS consumer asks the server
/// how far it has scanned after six), and on NATS a max age short enough to wait for.
fn expiring(target: &Target) -> Builder {
    let max_age = match target {
        Target::Memory(_) => Duration::from_secs(3600),
        Target::Nats(_) => Duration::from_secs(1),
    };
    let builder = target.builder().stream("SKIP").max_age(max_age);
    builder.heartbeat(Duration::from_millis(100))
}

/// `alerts.>` as durable `alerts`, checkpointed after every message into `store`.
fn alerts<'a, R: Reporter>(
    c: &'a Coordinator<R>,
    store: &MemoryCheckpointStore,
) -> Subscribe<'a, R> {
    let alerts = c.subscribe("alerts.>").durable("alerts");
    alerts
        .checkpoint_store(store.clone())
        .checkpoint_policy(EVERY_MESSAGE)
}

/// Subscribes to alerts and takes alerts 1 and 2; then `other` traffic 3..=7 passes by until
/// the subscription's checkpoint has moved past it.
async fn skip_other_traffic<R: Reporter>(
    c: &Coordinator<R>,
    store: &MemoryCheckpointStore,
) -> Subscription<R> {
    let mut sub = alerts(c, store).await.expect("subscribe");
    assert_eq!(publish_and_take(c, &mut sub, 2).await, vec![1, 2]);
    assert_eq!(publish_other(c, 5).await, vec![3, 4, 5, 6, 7]);
    let key = key("SKIP", "alerts", "alerts.>");
    let saved = || store.get(&key).map(|c| c.seq);
    let state = || format!("the checkpoint is {:?}", saved());
    idle_until(&mut sub, || saved() == Some(7), state).await;
    sub
}

/// Waits until retention has removed every message of `stream`.
async fn expire_all(target: &Target, stream: &str) {
    match target {
        Target::Memory(server) => {
            server.expire_now(stream, Duration::from_secs(7200));
        }
        Target::Nats(server) => Operator::on(server).await.wait_until_expired(stream).await,
    }
}

async fn a_restart_after_skipped_traffic_expired_reports_no_loss(target: Target) {
    let (rec, store) = (RecordingReporter::new(), MemoryCheckpointStore::new());
    let c = connect(expiring(&target), rec.clone()).await;
    skip_other_traffic(&c, &store).await.close().await;
    expire_all(&target, "SKIP").await;
    drop(c);

    // A new process resumes after the traffic nobody wanted, and calls none of it lost.
    let c = connect(expiring(&target), rec.clone()).await;
    let mut sub = alerts(&c, &store).await.expect("subscribe again");
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![8]);
    assert_recorded!(
        rec,
        CoordinatorEvent::Subscribed {
            checkpoint: Some(7),
            ..
        }
    );
    assert_eq!(rec.count(EventKind::EventsLost), 0, "{:?}", rec.events());
}
on_both_backends!(a_restart_after_skipped_traffic_expired_reports_no_loss);

#[tokio::test]
async fn a_reconnect_after_skipped_traffic_expired_reports_no_loss() {
    let server = MemoryServer::new();
    let target = Target::Memory(server.clone());
    let (rec, store) = (RecordingReporter::new(), MemoryCheckpointStore::new());
    let c = connect(expiring(&target), rec.clone()).await;
    let mut sub = skip_other_traffic(&c, &store).await;
    expire_all(&target, "SKIP").await;

    server.disconnect();
    let resubscribing = || rec.count(EventKind::Resubscribing) > 0;
    idle_until(&mut sub, resubscribing, || format!("{:?}", rec.kinds())).await;
    server.reconnect();
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![8]);
    let resumed =
        recorded!(rec, CoordinatorEvent::ConsumerRecreated { resume_from, .. } => *resume_from);
    assert_eq!(resumed, vec![8]);
    assert_eq!(rec.count(EventKind::EventsLost), 0, "{:?}", rec.events());
}

// Finding 2 -------------------------------------------------------------------------------------

/// Publishes `alerts.<i>` and `other.<i>` in turn, `n` of each: alerts get the odd sequences.
async fn publish_interleaved<R: Reporter>(c: &Coordinator<R>, n: u64) {
    for i in 0..n {
        c.publish(&format!("alerts.{i}"), "x")
            .await
            .expect("publish");
        c.publish(&format!("other.{i}"), "x")
            .await
            .expect("publish");
    }
}

#[tokio::test]
async fn retention_inside_a_filtered_backlog_reports_exactly_the_removed_matches() {
    let server = MemoryServer::new();
    let rec = RecordingReporter::new();
    let c = connect(on(&server), rec.clone()).await;
    publish_interleaved(&c, 10).await; // alerts 1, 3, ..., 19; other 2, 4, ..., 20
    let mut sub = subscribe_all(&c, "alerts.>").await;
    assert_eq!(take_seqs(&mut sub, 3).await, vec![1, 3, 5]);

    // While the application works on 5, retention removes 1..=12: alerts 7, 9 and 11 unseen.
    assert_eq!(server.expire_through("HERALD", 12), 12);
    assert_eq!(take_seqs(&mut sub, 1).await, vec![13]);
    // Then 13 (delivered) and 14 (not an alert): nothing more is lost.
    assert_eq!(server.expire_through("HERALD", 14), 2);
    assert_eq!(take_seqs(&mut sub, 3).await, vec![15, 17, 19]);
    let lost = recorded!(rec, CoordinatorEvent::EventsLost { first, last, .. } => (*first, *last));
    assert_eq!(lost, vec![(7, 11)]);
}

#[tokio::test]
async fn a_resubscribe_past_expired_traffic_the_filter_skips_reports_no_loss() {
    let server = MemoryServer::new();
    let rec = RecordingReporter::new();
    let c = connect(on(&server), rec.clone()).await;
    let mut sub = subscribe_all(&c, "alerts.>").await;
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![1]);
    // While the application works on 1, other traffic comes and expires, and the consumer
    // goes (deleted by an operator, or by the server after a long pause).
    assert_eq!(publish_other(&c, 4).await, vec![2, 3, 4, 5]);
    server.expire_through("HERALD", 5);
    server.delete_consumers("HERALD");
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![6]);
    assert_eq!(rec.count(EventKind::EventsLost), 0, "{:?}", rec.events());
}

// Finding 17 ------------------------------------------------------------------------------------

async fn a_recreated_consumer_resumes_where_it_really_delivers(target: Target) {
    let (c, rec) = target.recorded("GONE").await;
    let mut sub = subscribe_all(&c, ">").await;
    assert_eq!(publish_and_take(&c, &mut sub, 3).await, vec![1, 2, 3]);
    rec.clear();

    // While the consumer is gone, 4..=8 are published and retention removes 4..=6.
    target.delete_consumer("GONE", sub.consumer_name()).await;
    publish_n(&c, 5).await;
    target.remove_through("GONE", 6).await;
    assert_eq!(take_seqs(&mut sub, 2).await, vec![7, 8]);
    let resumed =
        recorded!(rec, CoordinatorEvent::ConsumerRecreated { resume_from, .. } => *resume_from);
    assert_eq!(resumed, vec![7]);
    let lost = recorded!(rec, CoordinatorEvent::EventsLost { first, last, .. } => (*first, *last));
    assert_eq!(lost, vec![(4, 6)]);
    let want = [
        EventKind::ConsumerDeleted,
        EventKind::Resubscribing,
        EventKind::ConsumerRecreated,
        EventKind::EventsLost,
        EventKind::ReplayStarted,
    ];
    assert_eq!(story(&rec), want);
}
on_both_backends!(a_recreated_consumer_resumes_where_it_really_delivers);

// Finding 18 ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_missed_heartbeats_never_add_up_and_consecutive_ones_resubscribe() {
    let server = MemoryServer::new();
    let heartbeat = Duration::from_millis(150);
    let rec = RecordingReporter::new();
    let builder = on(&server).stream("HB").heartbeat(heartbeat).backoff(QUICK);
    let c = connect(builder, rec.clone()).await;
    let reader = take_seqs_meanwhile(subscribe_all(&c, ">").await, 1);
    let missed = || recorded!(rec, CoordinatorEvent::HeartbeatMissed { missed, .. } => *missed);
    for n in 1..=2 {
        // Under three heartbeats of silence: one miss (detection takes two).
        server.stop_heartbeats("HB", heartbeat * 29 / 10);
        let state = || format!("{:?}", rec.kinds());
        wait_until(DEADLINE, async || missed().len() == n, state).await;
        // Then over five heartbeats of normal, idle operation.
        tokio::time::sleep(heartbeat * 6).await;
    }
    assert_eq!(
        (missed(), rec.count(EventKind::Resubscribing)),
        (vec![1, 1], 0)
    );

    // Five heartbeats of silence: two misses in a row, and the consumer is recreated.
    server.stop_heartbeats("HB", heartbeat * 5);
    rec.wait_for(EventKind::ConsumerRecreated).await;
    assert_eq!(c.publish("k", "x").await.expect("publish"), 1);
    assert_eq!(reader.await.expect("join").1, vec![1]);
    assert_eq!(missed(), vec![1, 1, 1, 2]);
    let cause = ResubscribeCause::HeartbeatsMissed { missed: 2 };
    assert_recorded!(rec, CoordinatorEvent::Resubscribing { cause: found, .. } if *found == cause);
}
