//! Chaos: real nats-servers killed, frozen and restarted, consumers deleted, subscriber
//! processes restarted and a 3-node cluster losing its leader — while numbered events flow.
//! Each scenario asserts that every event arrived exactly once and in order (or the exact loss),
//! that every fault was reported, and that no consumer was leaked on the server.
//!
//! `cargo test --test chaos` runs them alone. `schedules.rs` adds seeded random fault schedules.

mod support;

mod schedules;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald::testing::RecordingReporter;
use herald::{
    Backoff, Builder, CheckpointKey, CheckpointPolicy, CheckpointStore, Coordinator,
    CoordinatorEvent, EventKind, FileCheckpointStore, Reporter, StartPosition, Subscribe,
    Subscription,
};
use tokio::task::JoinHandle;

use support::client::{fast_options, Operator};
use support::events::{assert_recorded, recorded};
use support::nats_server::{start_cluster, NatsServer};
use support::wait::wait_until;

/// The scenarios run one at a time: each already loads both cores with servers, publishers and
/// subscribers, and timing faults (heartbeats, elections) must not depend on its neighbours.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Generous deadline for a whole chaos scenario's delivery.
const LONG: Duration = Duration::from_secs(120);

/// Reconnects and resubscribes of a node on one server.
const QUICK: Backoff = Backoff {
    initial: Duration::from_millis(20),
    max: Duration::from_millis(300),
};

/// A builder on `urls` and `stream`, with the quick NATS options of the tests.
fn on(urls: &str, stream: &str) -> Builder {
    Coordinator::builder()
        .nats_options(fast_options(urls))
        .stream(stream)
}

/// A node that rides out faults: 500 ms heartbeats, `backoff`, a minute to publish.
async fn node<R: Reporter>(builder: Builder, backoff: Backoff, rec: R) -> Coordinator<R> {
    builder
        .heartbeat(Duration::from_millis(500))
        .backoff(backoff)
        .publish_deadline(Duration::from_secs(60))
        .reporter(rec)
        .connect()
        .await
        .expect("connect")
}

/// Publishes events `from..to` with idempotent ids (`ev-<n>`), payload `<n>`, counting progress.
async fn publish_events<R: Reporter>(c: &Coordinator<R>, from: u64, to: u64, progress: &AtomicU64) {
    for n in from..to {
        c.publish_idempotent(&format!("ev.{}", n % 16), n.to_string(), &format!("ev-{n}"))
            .await
            .unwrap_or_else(|e| panic!("publish of event {n} failed: {e}"));
        progress.store(n + 1, Ordering::Release);
    }
}

/// Publishes events `0..total` in a task of its own; the counter says how far it got.
fn publish_meanwhile(
    c: &Coordinator<RecordingReporter>,
    total: u64,
) -> (JoinHandle<()>, Arc<AtomicU64>) {
    let progress = Arc::new(AtomicU64::new(0));
    let (c, counter) = (c.clone(), progress.clone());
    let task = tokio::spawn(async move { publish_events(&c, 0, total, &counter).await });
    (task, progress)
}

/// Waits until at least `n` events have been published.
async fn wait_published(progress: &AtomicU64, n: u64) {
    let published = || progress.load(Ordering::Acquire);
    let state = || format!("publishing stopped at {} of {n}", published());
    wait_until(LONG, async || published() >= n, state).await;
}

/// Reads events until `count` distinct event numbers arrived; asserts order and uniqueness.
/// Returns the event numbers in delivery order.
async fn read_events<R: Reporter>(sub: &mut Subscription<R>, count: usize) -> Vec<u64> {
    let mut events = Vec::with_capacity(count);
    let mut last_seq = 0;
    let deadline = tokio::time::Instant::now() + LONG;
    while events.len() < count {
        let item = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} events within {LONG:?}", events.len()))
            .expect("subscription ended")
            .expect("subscription failed");
        assert!(
            item.seq > last_seq,
            "sequence {} after {last_seq}",
            item.seq
        );
        last_seq = item.seq;
        let n: u64 = std::str::from_utf8(&item.payload)
            .expect("utf8")
            .parse()
            .expect("event number");
        events.push(n);
        item.ack();
    }
    events
}

/// Reads `total` events in a task of its own, which hands back the subscription with them.
fn read_meanwhile(
    mut sub: Subscription<RecordingReporter>,
    total: u64,
) -> JoinHandle<(Subscription<RecordingReporter>, Vec<u64>)> {
    tokio::spawn(async move {
        let events = read_events(&mut sub, total as usize).await;
        (sub, events)
    })
}

fn assert_exactly_once_in_order(events: &[u64], total: u64) {
    let expected: Vec<u64> = (0..total).collect();
    if events != expected {
        let unique: BTreeSet<_> = events.iter().collect();
        panic!(
            "{} events delivered, {} distinct, expected {total} in order; first mismatch at {:?}",
            events.len(),
            unique.len(),
            events.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
}

async fn consumer_count(server: &NatsServer, stream: &str) -> usize {
    Operator::on(server)
        .await
        .consumer_names(stream)
        .await
        .len()
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_server_kills_during_50k_events_lose_and_duplicate_nothing() {
    let _serial = SERIAL.lock().await;
    const TOTAL: u64 = 50_000;
    let threads_before = thread_count();
    let mut server = NatsServer::start();
    let url = server.url();
    let recs = [(); 3].map(|()| RecordingReporter::new());
    let publisher = node(on(&url, "CHAOS"), QUICK, recs[0].clone()).await;
    let a = node(on(&url, "CHAOS"), QUICK, recs[1].clone()).await;
    let b = node(on(&url, "CHAOS"), QUICK, recs[2].clone()).await;
    let sub_a = a.subscribe("ev.>").start(StartPosition::All).await;
    let sub_b = b.subscribe(">").start(StartPosition::All).await;

    let (publishing, progress) = publish_meanwhile(&publisher, TOTAL);
    let reader_a = read_meanwhile(sub_a.expect("a"), TOTAL);
    let reader_b = read_meanwhile(sub_b.expect("b"), TOTAL);
    // Ten kills, spread over the stream of events, each with the server down for a moment.
    for kill in 1..=10u64 {
        wait_published(&progress, kill * TOTAL / 11).await;
        server.kill();
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.restart();
    }
    publishing.await.expect("publisher");
    let (sub_a, events_a) = reader_a.await.expect("reader a");
    let (sub_b, events_b) = reader_b.await.expect("reader b");
    assert_exactly_once_in_order(&events_a, TOTAL);
    assert_exactly_once_in_order(&events_b, TOTAL);

    for rec in &recs {
        let kinds = rec.kinds();
        assert!(rec.count(EventKind::Disconnected) >= 10, "{kinds:?}");
        assert!(rec.count(EventKind::Reconnected) >= 10, "{kinds:?}");
    }
    // No consumer leaked: one per live subscription.
    assert_eq!(consumer_count(&server, "CHAOS").await, 2);
    sub_a.close().await;
    sub_b.close().await;
    assert_eq!(consumer_count(&server, "CHAOS").await, 0);
    for c in [publisher, a, b] {
        c.shutdown().await;
    }
    drop(server);
    // Threads back to normal: the coordinators' tasks are gone (allow the runtime's own).
    let threads = || format!("{} threads, {threads_before} before", thread_count());
    let normal = async || thread_count() <= threads_before + 4;
    wait_until(Duration::from_secs(15), normal, threads).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_deleted_ten_times_while_publishing() {
    let _serial = SERIAL.lock().await;
    const TOTAL: u64 = 5_000;
    let server = NatsServer::start();
    let rec = RecordingReporter::new();
    let c = node(on(&server.url(), "DELETES"), QUICK, rec.clone()).await;
    let sub = c.subscribe(">").start(StartPosition::All).await;
    let sub = sub.expect("subscribe");
    let consumer = sub.consumer_name().to_string();
    let (publishing, progress) = publish_meanwhile(&c, TOTAL);
    let reader = read_meanwhile(sub, TOTAL);
    let operator = Operator::on(&server).await;
    let mut deleted = 0;
    for round in 1..=10u64 {
        wait_published(&progress, round * TOTAL / 11).await;
        // The subscription may be between consumers: retry until one is there to delete.
        let delete = async || operator.delete_consumer("DELETES", &consumer).await;
        wait_until(Duration::from_secs(10), delete, || {
            "consumer never came back"
        })
        .await;
        deleted += 1;
    }
    publishing.await.expect("publisher");
    let (_sub, events) = reader.await.expect("reader");
    assert_exactly_once_in_order(&events, TOTAL);
    assert_eq!(deleted, 10);
    let deletions = rec.count(EventKind::ConsumerDeleted);
    assert_eq!(deletions, 10, "{:?}", rec.kinds());
    assert_eq!(consumer_count(&server, "DELETES").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_freezes_of_three_heartbeats_are_each_noticed_and_recovered() {
    let _serial = SERIAL.lock().await;
    let server = NatsServer::start();
    let rec = RecordingReporter::new();
    let c = node(on(&server.url(), "FREEZE"), QUICK, rec.clone()).await;
    let sub = c.subscribe(">").start(StartPosition::All).await;
    let mut sub = sub.expect("subscribe");
    let progress = AtomicU64::new(0);
    let mut events = Vec::new();
    for next in (0..500).step_by(100) {
        publish_events(&c, next, next + 100, &progress).await;
        events.extend(read_events(&mut sub, 100).await);
        let missed_before = rec.count(EventKind::HeartbeatMissed);
        server.pause();
        // Keep polling the subscription while the server is frozen, so it can notice.
        let frozen = tokio::time::timeout(Duration::from_millis(1500), sub.next()).await;
        assert!(frozen.is_err(), "a frozen server delivered {frozen:?}");
        server.resume();
        let noticed = rec.count(EventKind::HeartbeatMissed) > missed_before;
        assert!(noticed, "freeze not noticed: {:?}", rec.kinds());
    }
    publish_events(&c, 500, 600, &progress).await;
    events.extend(read_events(&mut sub, 100).await);
    assert_exactly_once_in_order(&events, 600);
    assert_eq!(consumer_count(&server, "FREEZE").await, 1);
}

/// The subscription of the replaying process, checkpointed in `dir`.
fn replayer<'a, R: Reporter>(c: &'a Coordinator<R>, dir: &Path) -> Subscribe<'a, R> {
    let sub = c.subscribe(">").durable("replayer");
    sub.checkpoint_store(FileCheckpointStore::new(dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_restarted_mid_replay_resumes_from_its_file_checkpoint() {
    let _serial = SERIAL.lock().await;
    const TOTAL: u64 = 20_000;
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = CheckpointPolicy {
        every: 500,
        interval: Duration::from_secs(10),
    };
    let publisher = node(on(&server.url(), "REPLAY"), QUICK, RecordingReporter::new()).await;
    let items: Vec<(String, String)> = (0..TOTAL)
        .map(|n| (format!("ev.{n}"), n.to_string()))
        .collect();
    publisher.publish_batch(items).await.expect("backlog");

    // First process: replays part of the backlog, then dies without closing anything. It runs
    // on a runtime of its own, dropped at the end like a killed process: no task survives it.
    let (url, path) = (server.url(), dir.path().to_path_buf());
    let (seen_first, saved) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let first = on(&url, "REPLAY").node_id("replayer").connect().await;
            let first = first.expect("connect");
            let sub = replayer(&first, &path).checkpoint_policy(policy).await;
            let mut sub = sub.expect("subscribe");
            let seen = read_events(&mut sub, 7_250).await;
            // Let the count-triggered save of 7000 land, as it would in a running process.
            let landed = async || sub.last_saved() >= 7_000;
            let state = || format!("saved {}", sub.last_saved());
            wait_until(Duration::from_secs(10), landed, state).await;
            let saved = sub.last_saved();
            std::mem::forget(sub);
            std::mem::forget(first);
            (seen, saved)
        })
    })
    .join()
    .expect("first process");
    assert_exactly_once_in_order(&seen_first, 7_250);
    assert!((7_000..=7_250).contains(&saved), "saved {saved}");
    // A save already in flight when the process died may still have landed: the file is the
    // truth, and it is never behind what the process saw saved.
    let key = CheckpointKey {
        stream: "REPLAY".into(),
        durable: "replayer".into(),
        filter: "REPLAY.>".into(),
    };
    let saved = FileCheckpointStore::new(dir.path()).load(&key).await;
    let saved = saved.expect("load").expect("a checkpoint").seq;
    assert!((7_000..=7_250).contains(&saved), "saved {saved}");

    // Second process: same node id and checkpoint directory.
    let rec = RecordingReporter::new();
    let second = on(&server.url(), "REPLAY").node_id("replayer");
    let second = second
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = replayer(&second, dir.path()).await.expect("subscribe");
    let rest = read_events(&mut sub, (TOTAL - saved) as usize).await;
    let resumed_at = rest.first();
    assert_eq!(
        resumed_at,
        Some(&saved),
        "resumes at checkpoint + 1 (event n has seq n+1)"
    );
    assert_exactly_once_in_order(&[&seen_first[..saved as usize], &rest[..]].concat(), TOTAL);
    assert_recorded!(
        rec,
        CoordinatorEvent::ReplayStarted { from, to: TOTAL, .. } if *from == saved + 1
    );
    // The crashed process's consumer was replaced, not leaked.
    assert_eq!(consumer_count(&server, "REPLAY").await, 1);
}

/// The index in the cluster of the node that leads stream CLUSTERED, as `node` sees it.
async fn stream_leader(node: &NatsServer) -> usize {
    let stream = Operator::on(node).await.stream("CLUSTERED").await;
    let cluster = stream.cached_info().cluster.as_ref();
    let leader = cluster.and_then(|c| c.leader.clone()).expect("leader");
    let index = leader
        .strip_prefix("herald-node-")
        .and_then(|i| i.parse().ok());
    index.map(|i: usize| i - 1).expect("leader name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_survives_leader_loss_and_a_full_restart() {
    let _serial = SERIAL.lock().await;
    const TOTAL: u64 = 3_000;
    let mut nodes = start_cluster(3);
    let urls = nodes.iter().map(|n| n.url()).collect::<Vec<_>>().join(",");
    let rec = RecordingReporter::new();
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    let c = node(on(&urls, "CLUSTERED").replicas(3), backoff, rec.clone()).await;
    let sub = c.subscribe(">").start(StartPosition::All).await;
    let (publishing, progress) = publish_meanwhile(&c, TOTAL);
    let reader = read_meanwhile(sub.expect("subscribe"), TOTAL);

    // 1. Kill the stream leader while publishing and consuming.
    wait_published(&progress, TOTAL / 4).await;
    let leader = stream_leader(&nodes[0]).await;
    nodes[leader].kill();
    wait_published(&progress, TOTAL / 2).await;
    nodes[leader].restart();
    nodes[leader].wait_for_meta_leader();

    // 2. Kill a node that does not lead the stream.
    let leader = stream_leader(&nodes[(leader + 1) % 3]).await;
    let follower = (leader + 1) % 3;
    nodes[follower].kill();
    wait_published(&progress, 3 * TOTAL / 4).await;
    nodes[follower].restart();

    // 3. Restart the whole cluster.
    for node in nodes.iter_mut() {
        node.kill();
    }
    for node in nodes.iter_mut() {
        node.restart();
    }
    nodes.iter().for_each(NatsServer::wait_for_meta_leader);

    publishing.await.expect("publisher");
    let (_sub, events) = reader.await.expect("reader");
    assert_exactly_once_in_order(&events, TOTAL);
    assert!(rec.count(EventKind::Disconnected) >= 1, "{:?}", rec.kinds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expiring_while_a_subscriber_process_is_away_are_reported_exactly() {
    let _serial = SERIAL.lock().await;
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = CheckpointPolicy {
        every: 1,
        interval: Duration::from_millis(20),
    };
    let away = |rec: RecordingReporter| {
        on(&server.url(), "AWAY")
            .node_id("away")
            .max_age(Duration::from_secs(1))
            .reporter(rec)
            .connect()
    };
    let progress = AtomicU64::new(0);
    {
        let c = away(RecordingReporter::new()).await.expect("connect");
        let mut sub = c
            .subscribe(">")
            .checkpoint_store(FileCheckpointStore::new(dir.path()))
            .checkpoint_policy(policy)
            .await
            .expect("subscribe");
        publish_events(&c, 0, 100, &progress).await;
        assert_exactly_once_in_order(&read_events(&mut sub, 100).await, 100);
        sub.close().await;
        // Away: 900 more events are published, and all of them expire.
        publish_events(&c, 100, 1000, &progress).await;
        c.shutdown().await;
    }
    Operator::on(&server).await.wait_until_expired("AWAY").await;
    let rec = RecordingReporter::new();
    let c = away(rec.clone()).await.expect("connect");
    let sub = c
        .subscribe(">")
        .checkpoint_store(FileCheckpointStore::new(dir.path()));
    let mut sub = sub.await.expect("subscribe");
    publish_events(&c, 1000, 1100, &progress).await;
    let events = read_events(&mut sub, 100).await;
    assert_eq!(events, (1000..1100).collect::<Vec<_>>());
    let lost = recorded!(rec, CoordinatorEvent::EventsLost { first, last, .. } => (*first, *last));
    assert_eq!(lost, vec![(101, 1000)], "{:?}", rec.kinds());
}
