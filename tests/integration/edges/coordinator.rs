//! The coordinator as a whole: a publish is stored once and gives up at its deadline (finding
//! 8), shutdown saves first and is the last word (9), connection events count attempts from
//! one (16), and absurdly long durations are harmless (19).

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::testing::RecordingReporter;
use herald::{
    CheckpointPolicy, Coordinator, CoordinatorEvent, ErrorKind, EventKind, MemoryCheckpointStore,
    MemoryServer, NullReporter, Reporter, StartPosition,
};

use super::{key, on, QUICK};
use crate::support::client::{fast_options, Operator};
use crate::support::{
    connect, nats_builder, on_both_backends, publish_and_take, recorded, subscribe_all, take_seqs,
    wait_until, NatsServer, Target, DEADLINE,
};

/// What a bound on elapsed time allows for a loaded machine.
const SLACK: Duration = Duration::from_secs(2);

// Finding 8 -------------------------------------------------------------------------------------

/// A coordinator on `server` whose requests time out after `request_timeout`.
async fn impatient<R: Reporter>(
    server: &NatsServer,
    request_timeout: Duration,
    reporter: R,
) -> Coordinator<R> {
    let options = fast_options(&server.url()).request_timeout(request_timeout);
    let builder = Coordinator::builder().nats_options(options).backoff(QUICK);
    connect(builder.stream("ONCE"), reporter).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_retried_through_a_frozen_server_is_stored_once() {
    let target = Target::nats();
    let Target::Nats(server) = &target else {
        panic!("a NATS target")
    };
    let rec = RecordingReporter::everything();
    let c = impatient(server, Duration::from_millis(100), rec.clone()).await;
    let thaw = target.freeze("ONCE", Duration::from_millis(1500));
    assert_eq!(c.publish("alerts.1", "once").await.expect("publish"), 1);
    thaw.wait().await;
    let retried = recorded!(rec, CoordinatorEvent::PublishFailed { will_retry, .. } => *will_retry);
    assert!(
        retried.len() >= 2 && retried.iter().all(|r| *r),
        "{retried:?}"
    );

    let stored = Operator::on(server).await.stream("ONCE").await;
    assert_eq!(stored.cached_info().state.messages, 1);
    assert_eq!(c.publish("alerts.2", "next").await.expect("publish"), 2);
    let mut sub = subscribe_all(&c, ">").await;
    assert_eq!(take_seqs(&mut sub, 2).await, vec![1, 2]);
}

/// Publishes to a server that was killed, with a 500 ms request timeout and a 2 s deadline:
/// the error and how long it took.
async fn publish_to_a_dead_server<T>(
    publish: impl AsyncFnOnce(&Coordinator) -> herald::Result<T>,
) -> (herald::Error, Duration) {
    let mut server = NatsServer::start();
    let options = fast_options(&server.url()).request_timeout(Duration::from_millis(500));
    let builder = Coordinator::builder().nats_options(options).backoff(QUICK);
    let c = connect(
        builder.publish_deadline(Duration::from_secs(2)),
        NullReporter,
    )
    .await;
    server.kill();
    let started = Instant::now();
    let Err(err) = publish(&c).await else {
        panic!("a publish to a dead server succeeded")
    };
    (err, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_to_a_dead_server_gives_up_at_its_deadline() {
    let (err, took) = publish_to_a_dead_server(async |c| c.publish("k", "x").await).await;
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    // The deadline (2 s), plus the one attempt (500 ms) in flight when it passed.
    let bound = Duration::from_millis(2500);
    assert!(
        took >= Duration::from_millis(1500) && took < bound + SLACK,
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_to_a_dead_server_gives_up_at_its_deadline() {
    let batch = async |c: &Coordinator| {
        let items = (0..10).map(|i| (format!("k.{i}"), "x"));
        c.publish_batch(items).await
    };
    let (err, took) = publish_to_a_dead_server(batch).await;
    assert_eq!(err.kind(), ErrorKind::DeadlineExceeded, "{err}");
    // Observed instead: 5.5 s, eleven request timeouts.
    let bound = Duration::from_millis(2500);
    assert!(took < bound + SLACK, "{took:?}");
}

// Finding 9 -------------------------------------------------------------------------------------

async fn shutdown_saves_first_and_is_the_last_word(mut target: Target) {
    let rec = Arc::new(RecordingReporter::new());
    let c = connect(target.builder().stream("BYE"), rec.clone()).await;
    let store = MemoryCheckpointStore::new();
    let bye = c
        .subscribe(">")
        .durable("bye")
        .checkpoint_store(store.clone());
    let mut sub = bye.await.expect("subscribe");
    assert_eq!(
        publish_and_take(&c, &mut sub, 7).await,
        (1..=7).collect::<Vec<_>>()
    );
    c.shutdown().await;
    assert_eq!(store.get(&key("BYE", "bye", ">")).map(|c| c.seq), Some(7));

    // A witness on the same server hears the connection go; the shut coordinator does not.
    let (_witness, heard) = target.recorded("BYE").await;
    match &mut target {
        Target::Memory(server) => server.disconnect(),
        Target::Nats(server) => server.kill(),
    }
    heard.wait_for(EventKind::Disconnected).await;
    assert_eq!(
        rec.kinds().last(),
        Some(&EventKind::Shutdown),
        "{:?}",
        rec.kinds()
    );
    drop((sub, c));
    let holders = || Arc::strong_count(&rec);
    wait_until(DEADLINE, async || holders() == 1, &holders).await;
}
on_both_backends!(shutdown_saves_first_and_is_the_last_word);

#[tokio::test]
async fn a_subscription_ended_by_shutdown_reports_nothing_after_shutdown() {
    let rec = RecordingReporter::new();
    let c = connect(Coordinator::builder(), rec.clone()).await;
    let mut sub = c.subscribe(">").await.expect("subscribe");
    c.shutdown().await;
    // The application reads the end of its subscription, as documented, and drops it.
    let end = sub.next().await.expect("one last item").unwrap_err();
    assert_eq!(end.kind(), ErrorKind::Shutdown);
    assert!(sub.next().await.is_none());
    drop(sub);
    assert_eq!(
        rec.kinds().last(),
        Some(&EventKind::Shutdown),
        "{:?}",
        rec.kinds()
    );
}

#[tokio::test]
async fn a_coordinator_dropped_without_shutdown_releases_its_reporter() {
    let server = MemoryServer::new();
    let rec = Arc::new(RecordingReporter::new());
    let c = connect(on(&server), rec.clone()).await;
    let sub = subscribe_all(&c, ">").await;
    drop((sub, c));
    server.disconnect();
    assert_eq!(rec.count(EventKind::Disconnected), 0, "{:?}", rec.kinds());
    let holders = || Arc::strong_count(&rec);
    wait_until(DEADLINE, async || holders() == 1, &holders).await;
}

// Finding 16 ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_reported_down_then_each_attempt_from_one_then_back() {
    use EventKind::{Connected, Disconnected, Reconnected, Reconnecting, ServerError};
    let mut server = NatsServer::start();
    let rec = RecordingReporter::new();
    let _c = connect(nats_builder(&server).stream("LINK"), rec.clone()).await;
    server.kill();
    let attempts = || rec.count(Reconnecting);
    let state = || format!("{:?}", rec.kinds());
    wait_until(DEADLINE, async || attempts() >= 3, state).await;
    server.restart();
    rec.wait_for(Reconnected).await;

    let connection = [
        Connected,
        Disconnected,
        Reconnecting,
        Reconnected,
        ServerError,
    ];
    let mut link = rec.kinds();
    link.retain(|k| connection.contains(k));
    let n = attempts();
    let mut want = vec![Connected, Disconnected];
    want.extend(std::iter::repeat_n(Reconnecting, n));
    want.push(Reconnected);
    assert_eq!(link, want);
    let counted = recorded!(rec, CoordinatorEvent::Reconnecting { attempt, .. } => *attempt);
    assert_eq!(counted, (1..=n as u32).collect::<Vec<_>>());
}

// Finding 19 ------------------------------------------------------------------------------------

async fn absurdly_long_durations_are_harmless(target: Target) {
    let year = Duration::from_secs(365 * 24 * 3600);
    let rec = RecordingReporter::new();
    let builder = target.builder().stream("LONG").heartbeat(year);
    let c = connect(builder.publish_deadline(Duration::MAX), rec.clone()).await;
    let policy = CheckpointPolicy {
        every: 1,
        interval: Duration::MAX,
    };
    let all = c.subscribe(">").start(StartPosition::All);
    let mut sub = all.checkpoint_policy(policy).await.expect("subscribe");
    assert_eq!(publish_and_take(&c, &mut sub, 3).await, vec![1, 2, 3]);
    let batch = c.publish_batch([("k.4", "x"), ("k.5", "x")]).await;
    assert_eq!(batch.expect("batch"), vec![4, 5]);
    assert_eq!(take_seqs(&mut sub, 2).await, vec![4, 5]);
    let saved = || sub.last_saved();
    wait_until(DEADLINE, async || saved() == 5, &saved).await;
    c.shutdown().await;
    assert_eq!(
        rec.count(EventKind::CheckpointFailed),
        0,
        "{:?}",
        rec.events()
    );
}
on_both_backends!(absurdly_long_durations_are_harmless);
