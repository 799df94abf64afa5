//! Hostile input and misuse: undecodable payloads, reporters that block, allocate or panic,
//! checkpoints that belong to someone else.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::reporter::from_fn;
use herald::{
    CheckpointPolicy, Coordinator, CoordinatorEvent, DecodePolicy, ErrorKind, EventKind,
    FileCheckpointStore, MemoryCheckpointStore, StartPosition,
};
use support::{take_seqs, Recorder, DEADLINE};

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Alert {
    id: u32,
}

async fn wait_saved<R: herald::Reporter>(sub: &herald::JsonSubscription<Alert, R>, want: u64) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while sub.get_ref().last_saved() != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "saved {} instead of {want}",
            sub.get_ref().last_saved()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_undecodable_payload_is_reported_and_holds_the_checkpoint_until_skipped() {
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut alerts = c
        .subscribe("alerts.>")
        .start(StartPosition::All)
        .checkpoint_policy(CheckpointPolicy {
            every: 1,
            interval: Duration::from_millis(5),
        })
        .await
        .expect("subscribe")
        .json::<Alert>();
    for payload in [r#"{"id":1}"#, "{oops", "", r#"{"id":4}"#] {
        c.publish("alerts.x", payload).await.expect("publish");
    }
    let first = alerts.next().await.expect("open").expect("decoded");
    assert_eq!(first.value, Alert { id: 1 });
    first.message.ack();
    for bad in [2, 3] {
        let err = alerts.next().await.expect("open").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
        assert!(
            err.to_string().contains(&format!("sequence {bad}")),
            "{err}"
        );
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
    let failed: Vec<u64> = rec
        .events()
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::DecodeFailed { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![2, 3]);
}

#[tokio::test]
async fn the_skip_policy_reports_and_moves_on() {
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut alerts = c
        .subscribe(">")
        .start(StartPosition::All)
        .checkpoint_policy(CheckpointPolicy {
            every: 1,
            interval: Duration::from_millis(5),
        })
        .await
        .expect("subscribe")
        .json::<Alert>()
        .on_decode_error(DecodePolicy::Skip);
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
    let c = Coordinator::builder()
        .reporter(reporter)
        .connect()
        .await
        .expect("connect");
    for i in 0..2000 {
        c.publish(&format!("k.{i}"), "x").await.expect("publish");
    }
    let started = Instant::now();
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    assert_eq!(
        take_seqs(&mut sub, 2000).await,
        (1..=2000).collect::<Vec<_>>()
    );
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
            bytes.fetch_add(
                garbage.iter().map(|s| s.len() as u64).sum(),
                Ordering::Relaxed,
            );
        })
    };
    let c = Coordinator::builder()
        .reporter(reporter)
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    for i in 0..500 {
        c.publish(&format!("k.{i}"), "x").await.expect("publish");
    }
    assert_eq!(
        take_seqs(&mut sub, 500).await,
        (1..=500).collect::<Vec<_>>()
    );
    assert!(bytes.load(Ordering::Relaxed) > 500 * 64 * 20);
    assert_eq!(c.reporter_panics(), 0);
}

#[tokio::test]
async fn a_reporter_that_panics_in_interest_is_contained_too() {
    struct Broken;
    impl herald::Reporter for Broken {
        fn interest(&self, _: EventKind) -> bool {
            panic!("interest bug")
        }
        fn report(&self, _: &CoordinatorEvent) {}
    }
    let c = Coordinator::builder()
        .reporter(Broken)
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    c.publish("k", "x").await.expect("publish");
    assert_eq!(take_seqs(&mut sub, 1).await, vec![1]);
    assert!(c.reporter_panics() >= 4, "{}", c.reporter_panics());
}

#[tokio::test]
async fn a_checkpoint_of_another_stream_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileCheckpointStore::new(dir.path());
    let a = Coordinator::builder()
        .stream("A")
        .connect()
        .await
        .expect("connect");
    a.publish("k", "x").await.expect("publish");
    let mut sub = a
        .subscribe(">")
        .durable("shared")
        .checkpoint_store(store.clone())
        .checkpoint_policy(CheckpointPolicy {
            every: 1,
            interval: Duration::from_millis(5),
        })
        .await
        .expect("subscribe");
    take_seqs(&mut sub, 1).await;
    sub.close().await;
    // Someone copies A's checkpoint file over the one stream B would use.
    let key = |stream: &str| herald::CheckpointKey {
        stream: stream.into(),
        durable: "shared".into(),
        filter: format!("{stream}.>").into(),
    };
    std::fs::copy(store.path_for(&key("A")), store.path_for(&key("B"))).expect("copy");
    let b = Coordinator::builder()
        .stream("B")
        .connect()
        .await
        .expect("connect");
    let err = b
        .subscribe(">")
        .durable("shared")
        .checkpoint_store(store)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointMismatch, "{err}");
    // A fresh store works, so the error was about the file, not the coordinator.
    b.subscribe(">")
        .durable("shared")
        .checkpoint_store(MemoryCheckpointStore::new())
        .await
        .expect("subscribe");
}
