//! Bad input gets a typed error that reads as a sentence; nothing panics, nothing is dropped.

mod support;

use std::time::Duration;

use herald::{
    CheckpointPolicy, Coordinator, CoordinatorEvent, ErrorKind, EventKind, FileCheckpointStore,
    StartPosition, MAX_AGE_LIMIT,
};
use support::{take_seqs, Recorder};

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
    assert_eq!(
        c.publish("fits", vec![0u8; 1024]).await.expect("publish"),
        1
    );
    assert_eq!(
        c.publish("empty", Vec::new())
            .await
            .expect("empty payloads are fine"),
        2
    );
}

#[tokio::test]
async fn a_corrupt_checkpoint_fails_the_subscribe_and_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    for i in 0..5 {
        c.publish(&format!("k.{i}"), "x").await.expect("publish");
    }
    let store = FileCheckpointStore::new(dir.path());
    let key = herald::CheckpointKey {
        stream: "HERALD".into(),
        durable: "cache".into(),
        filter: "HERALD.>".into(),
    };
    std::fs::write(store.path_for(&key), b"{\"version\":1,\"seq\":").expect("write");
    let err = c
        .subscribe(">")
        .durable("cache")
        .checkpoint_store(store.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointCorrupt, "{err}");
    assert!(rec
        .events()
        .iter()
        .any(|e| matches!(e, CoordinatorEvent::CheckpointFailed { seq: 0, .. })));
    // The durable name is free again, and a repaired checkpoint is honoured exactly.
    std::fs::remove_file(store.path_for(&key)).expect("remove");
    let mut sub = c
        .subscribe(">")
        .durable("cache")
        .checkpoint_store(store)
        .await
        .expect("subscribe");
    assert_eq!(take_seqs(&mut sub, 5).await, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn an_unwritable_checkpoint_is_reported_and_delivery_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints");
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .checkpoint_store(FileCheckpointStore::new(&checkpoints))
        .checkpoint_policy(CheckpointPolicy {
            every: 1,
            interval: Duration::from_millis(10),
        })
        .await
        .expect("subscribe");
    // The directory becomes unusable after the checkpoint was loaded: a file stands in its way.
    std::fs::write(&checkpoints, b"not a directory").expect("write");
    for i in 0..3 {
        c.publish(&format!("k.{i}"), "x").await.expect("publish");
    }
    assert_eq!(take_seqs(&mut sub, 3).await, vec![1, 2, 3]);
    rec.wait_for(EventKind::CheckpointFailed).await;
    assert_eq!(sub.last_acked(), 3);
    assert_eq!(sub.last_saved(), 0, "a failed save never counts as saved");
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
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c.subscribe(">").await.expect("subscribe");
    c.shutdown().await;
    let item = sub.next().await.expect("one last item");
    assert_eq!(item.unwrap_err().kind(), ErrorKind::Shutdown);
    assert!(sub.next().await.is_none());
    assert_eq!(
        c.publish("k", "x").await.unwrap_err().kind(),
        ErrorKind::Shutdown
    );
    assert_eq!(
        c.subscribe(">").await.unwrap_err().kind(),
        ErrorKind::Shutdown
    );
    assert!(rec.events().iter().any(|e| matches!(
        e,
        CoordinatorEvent::Shutdown {
            subscriptions: 1,
            ..
        }
    )));
}
