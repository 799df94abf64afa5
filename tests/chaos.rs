//! Chaos: real nats-servers killed, frozen and restarted, consumers deleted, subscriber
//! processes restarted and a 3-node cluster losing its leader — while numbered events flow.
//! Each scenario asserts that every event arrived exactly once and in order (or the exact loss),
//! that every fault was reported, and that no consumer was leaked on the server.
//!
//! `cargo test --test chaos` runs them alone.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald::{
    Coordinator, CoordinatorEvent, EventKind, FileCheckpointStore, NatsOptions, Reporter,
    StartPosition, Subscription,
};
use support::nats_server::start_cluster;
use support::{jetstream, NatsServer, Recorder};

/// The scenarios run one at a time: each already loads both cores with servers, publishers and
/// subscribers, and timing faults (heartbeats, elections) must not depend on its neighbours.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Generous deadline for a whole chaos scenario's delivery.
const LONG: Duration = Duration::from_secs(120);

fn options(urls: &str) -> NatsOptions {
    support::fast_options(urls)
}

async fn node(urls: &str, stream: &str, rec: Arc<Recorder>) -> Coordinator<Arc<Recorder>> {
    Coordinator::builder()
        .nats_options(options(urls))
        .stream(stream)
        .heartbeat(Duration::from_millis(500))
        .backoff(herald::Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(300),
        })
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
    use futures::TryStreamExt;
    let js = jetstream(server).await;
    let stream = js.get_stream(stream).await.expect("stream");
    let names: Vec<String> = stream.consumer_names().try_collect().await.expect("names");
    names.len()
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
    let (rec_pub, rec_a, rec_b) = (Recorder::new(), Recorder::new(), Recorder::new());
    let publisher = node(&url, "CHAOS", rec_pub.clone()).await;
    let a = node(&url, "CHAOS", rec_a.clone()).await;
    let b = node(&url, "CHAOS", rec_b.clone()).await;
    let mut sub_a = a
        .subscribe("ev.>")
        .start(StartPosition::All)
        .await
        .expect("a");
    let mut sub_b = b.subscribe(">").start(StartPosition::All).await.expect("b");

    let progress = Arc::new(AtomicU64::new(0));
    let publishing = {
        let (publisher, progress) = (publisher.clone(), progress.clone());
        tokio::spawn(async move { publish_events(&publisher, 0, TOTAL, &progress).await })
    };
    let reader_a = tokio::spawn(async move {
        let events = read_events(&mut sub_a, TOTAL as usize).await;
        (sub_a, events)
    });
    let reader_b = tokio::spawn(async move {
        let events = read_events(&mut sub_b, TOTAL as usize).await;
        (sub_b, events)
    });
    // Ten kills, spread over the stream of events.
    for kill in 1..=10u64 {
        while progress.load(Ordering::Acquire) < kill * TOTAL / 11 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.restart();
    }
    publishing.await.expect("publisher");
    let (sub_a, events_a) = reader_a.await.expect("reader a");
    let (sub_b, events_b) = reader_b.await.expect("reader b");
    assert_exactly_once_in_order(&events_a, TOTAL);
    assert_exactly_once_in_order(&events_b, TOTAL);

    for rec in [&rec_pub, &rec_a, &rec_b] {
        assert!(
            rec.count(EventKind::Disconnected) >= 10,
            "{:?}",
            rec.kinds()
        );
        assert!(rec.count(EventKind::Reconnected) >= 10, "{:?}", rec.kinds());
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while thread_count() > threads_before + 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} threads, {threads_before} before",
            thread_count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_deleted_ten_times_while_publishing() {
    let _serial = SERIAL.lock().await;
    const TOTAL: u64 = 5_000;
    let server = NatsServer::start();
    let rec = Recorder::new();
    let c = node(&server.url(), "DELETES", rec.clone()).await;
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    let consumer = sub.consumer_name().to_string();
    let progress = Arc::new(AtomicU64::new(0));
    let publishing = {
        let (c, progress) = (c.clone(), progress.clone());
        tokio::spawn(async move { publish_events(&c, 0, TOTAL, &progress).await })
    };
    let reader = tokio::spawn(async move {
        let events = read_events(&mut sub, TOTAL as usize).await;
        (sub, events)
    });
    let js = jetstream(&server).await;
    let mut deleted = 0;
    for round in 1..=10u64 {
        while progress.load(Ordering::Acquire) < round * TOTAL / 11 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The subscription may be between consumers: retry until one is there to delete.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stream = js.get_stream("DELETES").await.expect("stream");
            match stream.delete_consumer(&consumer).await {
                Ok(_) => {
                    deleted += 1;
                    break;
                }
                Err(e) if e.to_string().contains("consumer not found") => {}
                Err(e) => panic!("deleting the consumer failed: {e}"),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "consumer never came back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    publishing.await.expect("publisher");
    let (_sub, events) = reader.await.expect("reader");
    assert_exactly_once_in_order(&events, TOTAL);
    assert_eq!(deleted, 10);
    assert_eq!(
        rec.count(EventKind::ConsumerDeleted),
        10,
        "{:?}",
        rec.kinds()
    );
    assert_eq!(consumer_count(&server, "DELETES").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_freezes_of_three_heartbeats_are_each_noticed_and_recovered() {
    let _serial = SERIAL.lock().await;
    let server = NatsServer::start();
    let rec = Recorder::new();
    let c = node(&server.url(), "FREEZE", rec.clone()).await;
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    let progress = AtomicU64::new(0);
    let mut next = 0;
    let mut events = Vec::new();
    for _ in 0..5 {
        publish_events(&c, next, next + 100, &progress).await;
        next += 100;
        events.extend(read_events(&mut sub, 100).await);
        let missed_before = rec.count(EventKind::HeartbeatMissed);
        server.pause();
        // Keep polling the subscription while the server is frozen, so it can notice.
        let frozen = tokio::time::timeout(Duration::from_millis(1500), sub.next()).await;
        assert!(frozen.is_err(), "a frozen server delivered {frozen:?}");
        server.resume();
        assert!(
            rec.count(EventKind::HeartbeatMissed) > missed_before,
            "freeze not noticed: {:?}",
            rec.kinds()
        );
    }
    publish_events(&c, next, next + 100, &progress).await;
    events.extend(read_events(&mut sub, 100).await);
    assert_exactly_once_in_order(&events, 600);
    assert_eq!(consumer_count(&server, "FREEZE").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_restarted_mid_replay_resumes_from_its_file_checkpoint() {
    let _serial = SERIAL.lock().await;
    const TOTAL: u64 = 20_000;
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = herald::CheckpointPolicy {
        every: 500,
        interval: Duration::from_secs(10),
    };
    let publisher = node(&server.url(), "REPLAY", Recorder::new()).await;
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
            let first = Coordinator::builder()
                .nats_options(options(&url))
                .stream("REPLAY")
                .node_id("replayer")
                .connect()
                .await
                .expect("connect");
            let mut sub = first
                .subscribe(">")
                .durable("replayer")
                .checkpoint_store(FileCheckpointStore::new(path))
                .checkpoint_policy(policy)
                .await
                .expect("subscribe");
            let seen = read_events(&mut sub, 7_250).await;
            // Let the count-triggered save of 7000 land, as it would in a running process.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while sub.last_saved() < 7_000 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
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
    let key = herald::CheckpointKey {
        stream: "REPLAY".into(),
        durable: "replayer".into(),
        filter: "REPLAY.>".into(),
    };
    use herald::CheckpointStore;
    let saved = FileCheckpointStore::new(dir.path())
        .load(&key)
        .await
        .expect("load")
        .expect("a checkpoint");
    assert!((7_000..=7_250).contains(&saved), "saved {saved}");

    // Second process: same node id and checkpoint directory.
    let rec = Recorder::new();
    let second = Coordinator::builder()
        .nats_options(options(&server.url()))
        .stream("REPLAY")
        .node_id("replayer")
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = second
        .subscribe(">")
        .durable("replayer")
        .checkpoint_store(FileCheckpointStore::new(dir.path()))
        .await
        .expect("subscribe");
    let rest = read_events(&mut sub, (TOTAL - saved) as usize).await;
    assert_eq!(
        rest.first(),
        Some(&saved),
        "resumes at checkpoint + 1 (event n has seq n+1)"
    );
    assert_exactly_once_in_order(&[&seen_first[..saved as usize], &rest[..]].concat(), TOTAL);
    assert!(rec.events().iter().any(|e| matches!(
        e,
        CoordinatorEvent::ReplayStarted { from, to: TOTAL, .. } if *from == saved + 1
    )));
    // The crashed process's consumer was replaced, not leaked.
    assert_eq!(consumer_count(&server, "REPLAY").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_survives_leader_loss_and_a_full_restart() {
    let _serial = SERIAL.lock().await;
    const TOTAL: u64 = 3_000;
    let mut nodes = start_cluster(3);
    let urls = nodes.iter().map(|n| n.url()).collect::<Vec<_>>().join(",");
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .nats_options(options(&urls))
        .stream("CLUSTERED")
        .replicas(3)
        .heartbeat(Duration::from_millis(500))
        .backoff(herald::Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        })
        .publish_deadline(Duration::from_secs(60))
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect to the cluster");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    let progress = Arc::new(AtomicU64::new(0));
    let publishing = {
        let (c, progress) = (c.clone(), progress.clone());
        tokio::spawn(async move { publish_events(&c, 0, TOTAL, &progress).await })
    };
    let reader = tokio::spawn(async move {
        let events = read_events(&mut sub, TOTAL as usize).await;
        (sub, events)
    });

    let leader_index = |name: String| {
        name.strip_prefix("herald-node-")
            .and_then(|i| i.parse::<usize>().ok())
            .map(|i| i - 1)
            .expect("leader name")
    };
    let stream_leader = |url: String| async move {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect"));
        let mut stream = js.get_stream("CLUSTERED").await.expect("stream");
        let info = stream.info().await.expect("info");
        info.cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .expect("leader")
    };

    // 1. Kill the stream leader while publishing and consuming.
    while progress.load(Ordering::Acquire) < TOTAL / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leader = leader_index(stream_leader(nodes[0].url()).await);
    nodes[leader].kill();
    while progress.load(Ordering::Acquire) < TOTAL / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nodes[leader].restart();
    nodes[leader].wait_for_meta_leader();

    // 2. Kill a node that does not lead the stream.
    let leader = leader_index(stream_leader(nodes[(leader + 1) % 3].url()).await);
    let follower = (leader + 1) % 3;
    nodes[follower].kill();
    while progress.load(Ordering::Acquire) < 3 * TOTAL / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
    let policy = herald::CheckpointPolicy {
        every: 1,
        interval: Duration::from_millis(20),
    };
    let connect = |rec: Arc<Recorder>| {
        Coordinator::builder()
            .nats_options(options(&server.url()))
            .stream("AWAY")
            .node_id("away")
            .max_age(Duration::from_secs(1))
            .reporter(rec)
            .connect()
    };
    let progress = AtomicU64::new(0);
    {
        let c = connect(Recorder::new()).await.expect("connect");
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
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rec = Recorder::new();
    let c = connect(rec.clone()).await.expect("connect");
    let mut sub = c
        .subscribe(">")
        .checkpoint_store(FileCheckpointStore::new(dir.path()))
        .await
        .expect("subscribe");
    publish_events(&c, 1000, 1100, &progress).await;
    let events = read_events(&mut sub, 100).await;
    assert_eq!(events, (1000..1100).collect::<Vec<_>>());
    let lost: Vec<(u64, u64)> = rec
        .events()
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::EventsLost { first, last, .. } => Some((*first, *last)),
            _ => None,
        })
        .collect();
    assert_eq!(lost, vec![(101, 1000)], "{:?}", rec.kinds());
}
