//! Bad input, hostile input and misuse: invalid names, limits, keys and filters; undecodable
//! payloads; reporters that block, allocate or panic; checkpoints that are corrupt, unwritable or
//! another stream's. Each gets a typed error that reads as a sentence, or is reported and
//! contained: nothing panics, nothing is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::reporter::from_fn;
use herald::testing::RecordingReporter;
use herald::{
    CheckpointKey, CheckpointPolicy, Coordinator, CoordinatorEvent, DecodePolicy, ErrorKind,
    EventKind, FileCheckpointStore, JsonSubscription, MemoryCheckpointStore, Reporter,
    StartPosition, Subscribe, MAX_AGE_LIMIT,
};

use crate::support::{
    assert_recorded, connect, publish_and_take, publish_n, recorded, subscribe_all, take_seqs,
    wait_until, DEADLINE,
};

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Alert {
    id: u32,
}

/// A coordinator on an embedded server of its own, and the recorder it reports to.
async fn recording() -> (Coordinator<RecordingReporter>, RecordingReporter) {
    let rec = RecordingReporter::new();
    (connect(Coordinator::builder(), rec.clone()).await, rec)
}

/// Saves a checkpoint after every acknowledged message, at most every `interval_ms`.
fn every_message(interval_ms: u64) -> CheckpointPolicy {
    CheckpointPolicy {
        every: 1,
        interval: Duration::from_millis(interval_ms),
    }
}

/// Where `stream`'s subscription `durable` on `<stream>.>` keeps its checkpoint.
fn checkpoint_key(stream: &str, durable: &str) -> CheckpointKey {
    CheckpointKey {
        stream: stream.into(),
        durable: durable.into(),
        filter: format!("{stream}.>").into(),
    }
}

/// Alerts on `filter` from the start, decoded from JSON, checkpointed after every message.
async fn json_alerts<R: Reporter>(c: &Coordinator<R>, filter: &str) -> JsonSubscription<Alert, R> {
    c.subscribe(filter)
        .start(StartPosition::All)
        .checkpoint_policy(every_message(5))
        .await
        .expect("subscribe")
        .json::<Alert>()
}

/// Waits until `sub` has saved exactly `want` as its checkpoint.
async fn wait_saved<R: Reporter>(sub: &JsonSubscription<Alert, R>, want: u64) {
    let saved = || sub.get_ref().last_saved();
    let state = || format!("saved {} instead of {want}", saved());
    wait_until(DEADLINE, async || saved() == want, state).await;
}

#[tokio::test]
async fn invalid_stream_names_are_rejected() {
    for name in [
        "",
        "has space",
        "dots.not.allowed",
        "star*",
        "gt>",
        "slash/",
        &"x".repeat(201),
    ] {
        let err = Coordinator::builder()
            .stream(name)
            .connect()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidStreamName, "{name:?}: {err}");
        assert!(err.to_string().starts_with("the stream name"), "{err}");
    }
}

#[tokio::test]
async fn zero_or_absurd_limits_are_rejected() {
    let cases = [
        Coordinator::builder().max_age(Duration::ZERO),
        Coordinator::builder().max_age(MAX_AGE_LIMIT + Duration::from_secs(1)),
        Coordinator::builder().max_msgs(0),
        Coordinator::builder().max_bytes(0),
        Coordinator::builder().max_payload(0),
        Coordinator::builder().heartbeat(Duration::ZERO),
        Coordinator::builder().replicas(0),
        Coordinator::builder().replicas(7),
        Coordinator::builder().subject_prefix("a.*"),
        Coordinator::builder().node_id("has space"),
        Coordinator::builder().publish_deadline(Duration::ZERO),
    ];
    for builder in cases {
        let described = format!("{builder:?}");
        let err = builder.connect().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{described}: {err}");
    }
}

#[tokio::test]
async fn invalid_keys_and_filters_are_rejected_and_nothing_is_stored() {
    let c = Coordinator::builder().connect().await.expect("connect");
    for key in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "tab\t"] {
        let err = c.publish(key, "x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSubject, "{key:?}: {err}");
    }
    for filter in ["", "a..b", "a.>.b", "a*", "a b"] {
        let err = c.subscribe(filter).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidFilter, "{filter:?}: {err}");
    }
    for durable in ["", "a.b", "a b", "a/b"] {
        let err = c.subscribe(">").durable(durable).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidDurableName,
            "{durable:?}: {err}"
        );
    }
    // Nothing was stored by the failed calls: the first real publish is sequence 1.
    assert_eq!(c.publish("ok", "x").await.expect("publish"), 1);
}

#[tokio::test]
async fn an_oversized_payload_is_rejected_before_it_is_sent() {
    let c = Coordinator::builder()
        .max_payload(1024)
        .connect()
        .await
        .expect("connect");
    let err = c.publish("big", vec![0u8; 1025]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
    assert_eq!(
        err.to_string(),
        "the payload is 1025 bytes; the maximum is 1024 bytes"
    );
    let fits = c.publish("fits", vec![0u8; 1024]).await;
    assert_eq!(fits.expect("publish"), 1);
    let empty = c.publish("empty", Vec::new()).await;
    assert_eq!(empty.expect("empty payloads are fine"), 2);
}

#[tokio::test]
async fn one_durable_name_cannot_be_opened_twice() {
    let c = Coordinator::builder().connect().await.expect("connect");
    let _first = c.subscribe(">").durable("twice").await.expect("first");
    let err = c.subscribe(">").durable("twice").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
}

#[tokio::test]
async fn shutdown_ends_subscriptions_with_an_error_and_refuses_new_work() {
    let (c, rec) = recording().await;
    let mut sub = c.subscribe(">").await.expect("subscribe");
    c.shutdown().await;
    let item = sub.next().await.expect("one last item");
    assert_eq!(item.unwrap_err().kind(), ErrorKind::Shutdown);
    assert!(sub.next().await.is_none());
    let publish = c.publish("k", "x").await;
    assert_eq!(publish.unwrap_err().kind(), ErrorKind::Shutdown);
    let subscribe = c.subscribe(">").await;
    assert_eq!(subscribe.unwrap_err().kind(), ErrorKind::Shutdown);
    assert_recorded!(
        rec,
        CoordinatorEvent::Shutdown {
            subscriptions: 1,
            ..
        }
    );
}

#[tokio::test]
async fn an_undecodable_payload_is_reported_and_holds_the_checkpoint_until_skipped() {
    let (c, rec) = recording().await;
    let mut alerts = json_alerts(&c, "alerts.>").await;
    for payload in [r#"{"id":1}"#, "{oops", "", r#"{"id":4}"#] {
        c.publish("alerts.x", payload).await.expect("publish");
    }
    let first = alerts.next().await.expect("open").expect("decoded");
    assert_eq!(first.value, Alert { id: 1 });
    first.message.ack();
    for bad in [2, 3] {
        let err = alerts.next().await.expect("open").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
        let names_the_message = err.to_string().contains(&format!("sequence {bad}"));
        assert!(names_the_message, "{err}");
    }
    let last = alerts.next().await.expect("open").expect("decoded");
    assert_eq!(last.value, Alert { id: 4 });
    last.message.ack();
    // Acked up to 4, but 2 never decoded: the checkpoint stays at 1.
    wait_saved(&alerts, 1).await;
    alerts.skip(2);
    wait_saved(&alerts, 2).await;
    alerts.skip(3);
    wait_saved(&alerts, 4).await;
    let failed = recorded!(rec, CoordinatorEvent::DecodeFailed { seq, .. } => *seq);
    assert_eq!(failed, vec![2, 3]);
}

#[tokio::test]
async fn the_skip_policy_reports_and_moves_on() {
    let (c, rec) = recording().await;
    let alerts = json_alerts(&c, ">").await;
    let mut alerts = alerts.on_decode_error(DecodePolicy::Skip);
    for payload in ["[1,2]", r#"{"id":9}"#] {
        c.publish("a", payload).await.expect("publish");
    }
    let ok = alerts.next().await.expect("open").expect("decoded");
    assert_eq!((ok.value.id, ok.message.seq), (9, 2));
    ok.message.ack();
    wait_saved(&alerts, 2).await;
    assert_eq!(rec.count(EventKind::DecodeFailed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_reporter_slows_only_by_its_own_time() {
    // Blocks 300 ms on every ReplayStarted, and nothing else.
    let blocked = Arc::new(AtomicU64::new(0));
    let reporter = {
        let blocked = blocked.clone();
        from_fn(move |e| {
            if e.kind() == EventKind::ReplayStarted {
                std::thread::sleep(Duration::from_millis(300));
                blocked.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let c = connect(Coordinator::builder(), reporter).await;
    publish_n(&c, 2000).await;
    let started = Instant::now();
    let mut sub = subscribe_all(&c, ">").await;
    let delivered = take_seqs(&mut sub, 2000).await;
    assert_eq!(delivered, (1..=2000).collect::<Vec<_>>());
    assert_eq!(blocked.load(Ordering::Relaxed), 1);
    // One blocking call of 300 ms; the rest of the replay is not slowed by it.
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_heavily_allocating_reporter_sees_everything_and_delivery_completes() {
    let bytes = Arc::new(AtomicU64::new(0));
    let reporter = {
        let bytes = bytes.clone();
        from_fn(move |e| {
            let garbage: Vec<String> = (0..64).map(|i| format!("{e} {i}")).collect();
            let allocated = garbage.iter().map(|s| s.len() as u64).sum();
            bytes.fetch_add(allocated, Ordering::Relaxed);
        })
    };
    let c = connect(Coordinator::builder(), reporter).await;
    let mut sub = subscribe_all(&c, ">").await;
    let delivered = publish_and_take(&c, &mut sub, 500).await;
    assert_eq!(delivered, (1..=500).collect::<Vec<_>>());
    assert!(bytes.load(Ordering::Relaxed) > 500 * 64 * 20);
    assert_eq!(c.reporter_panics(), 0);
}

#[tokio::test]
async fn a_reporter_that_panics_in_interest_is_contained_too() {
    struct Broken;
    impl Reporter for Broken {
        fn interest(&self, _: EventKind) -> bool {
            panic!("interest bug")
        }
        fn report(&self, _: &CoordinatorEvent) {}
    }
    let c = connect(Coordinator::builder(), Broken).await;
    let mut sub = subscribe_all(&c, ">").await;
    assert_eq!(publish_and_take(&c, &mut sub, 1).await, vec![1]);
    assert!(c.reporter_panics() >= 4, "{}", c.reporter_panics());
}

#[tokio::test]
async fn a_corrupt_checkpoint_fails_the_subscribe_and_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (c, rec) = recording().await;
    publish_n(&c, 5).await;
    let store = FileCheckpointStore::new(dir.path());
    let file = store.path_for(&checkpoint_key("HERALD", "cache"));
    std::fs::write(&file, b"{\"version\":1,\"seq\":").expect("write");
    let cache = || {
        c.subscribe(">")
            .durable("cache")
            .checkpoint_store(store.clone())
    };
    let err = cache().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointCorrupt, "{err}");
    assert_recorded!(rec, CoordinatorEvent::CheckpointFailed { seq: 0, .. });
    // The durable name is free again, and a repaired checkpoint is honoured exactly.
    std::fs::remove_file(&file).expect("remove");
    let mut sub = cache().await.expect("subscribe");
    assert_eq!(take_seqs(&mut sub, 5).await, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn an_unwritable_checkpoint_is_reported_and_delivery_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints");
    let (c, rec) = recording().await;
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .checkpoint_store(FileCheckpointStore::new(&checkpoints))
        .checkpoint_policy(every_message(10))
        .await
        .expect("subscribe");
    // The directory becomes unusable after the checkpoint was loaded (and locked): a file
    // stands in its way.
    std::fs::remove_dir_all(&checkpoints).expect("remove");
    std::fs::write(&checkpoints, b"not a directory").expect("write");
    assert_eq!(publish_and_take(&c, &mut sub, 3).await, vec![1, 2, 3]);
    rec.wait_for(EventKind::CheckpointFailed).await;
    assert_eq!(sub.last_acked(), 3);
    assert_eq!(sub.last_saved(), 0, "a failed save never counts as saved");
}

#[tokio::test]
async fn a_checkpoint_of_another_stream_is_refused() {
    fn shared(c: &Coordinator) -> Subscribe<'_> {
        c.subscribe(">").durable("shared")
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileCheckpointStore::new(dir.path());
    let a = Coordinator::builder()
        .stream("A")
        .connect()
        .await
        .expect("connect");
    a.publish("k", "x").await.expect("publish");
    let mut sub = shared(&a)
        .checkpoint_store(store.clone())
        .checkpoint_policy(every_message(5))
        .await
        .expect("subscribe");
    take_seqs(&mut sub, 1).await;
    sub.close().await;
    // Someone copies A's checkpoint file over the one stream B would use.
    let path = |stream: &str| store.path_for(&checkpoint_key(stream, "shared"));
    std::fs::copy(path("A"), path("B")).expect("copy");
    let b = Coordinator::builder()
        .stream("B")
        .connect()
        .await
        .expect("connect");
    let err = shared(&b).checkpoint_store(store).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointMismatch, "{err}");
    // A fresh store works, so the error was about the file, not the coordinator.
    let fresh = shared(&b).checkpoint_store(MemoryCheckpointStore::new());
    fresh.await.expect("subscribe");
}
