//! The embedded backend is a real backend: retention, filters, many subscribers, idempotent
//! publish, disconnects, and a stats snapshot built from its events.

mod support;

use std::time::Duration;

use herald::{
    Coordinator, CoordinatorEvent, EventKind, MemoryServer, ResubscribeCause, StartPosition,
    StatsReporter,
};
use support::{assert_quiet, take, take_seqs, Recorder};

#[tokio::test]
async fn filters_follow_nats_wildcards() {
    let c = Coordinator::builder().connect().await.expect("connect");
    let mut star = c
        .subscribe("alerts.*")
        .start(StartPosition::All)
        .await
        .expect("star");
    let mut deep = c
        .subscribe("alerts.>")
        .start(StartPosition::All)
        .await
        .expect("deep");
    let mut exact = c
        .subscribe("pipelines.7")
        .start(StartPosition::All)
        .await
        .expect("exact");
    for key in [
        "alerts.1",
        "alerts.1.comment",
        "pipelines.7",
        "pipelines.8",
        "alerts.2",
    ] {
        c.publish(key, "x").await.expect("publish");
    }
    assert_eq!(take_seqs(&mut star, 2).await, vec![1, 5]);
    assert_eq!(take_seqs(&mut deep, 3).await, vec![1, 2, 5]);
    let msgs = take(&mut exact, 1).await;
    assert_eq!((msgs[0].seq, msgs[0].key()), (3, "pipelines.7"));
    assert_quiet(&mut star, Duration::from_millis(50)).await;
}

#[tokio::test]
async fn retention_by_count_and_bytes_keeps_the_newest() {
    let c = Coordinator::builder()
        .max_msgs(3)
        .connect()
        .await
        .expect("connect");
    for i in 0..5 {
        c.publish(&format!("k.{i}"), "x").await.expect("publish");
    }
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    assert_eq!(take_seqs(&mut sub, 3).await, vec![3, 4, 5]);

    // Each message stores its subject (HERALD.k.N, 8 bytes) and a 12-byte payload: 20 bytes.
    let c = Coordinator::builder()
        .max_bytes(45)
        .connect()
        .await
        .expect("connect");
    for i in 0..4 {
        c.publish(&format!("k.{i}"), "twelve bytes")
            .await
            .expect("publish");
    }
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    assert_eq!(take_seqs(&mut sub, 2).await, vec![3, 4]);
}

#[tokio::test]
async fn many_subscribers_each_see_every_message_once_in_order() {
    let c = Coordinator::builder().connect().await.expect("connect");
    let mut subs = Vec::new();
    for i in 0..8 {
        subs.push(
            c.subscribe(">")
                .durable(format!("s{i}"))
                .start(StartPosition::All)
                .await
                .expect("subscribe"),
        );
    }
    let publisher = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..500 {
                c.publish(&format!("k.{}", i % 7), "x")
                    .await
                    .expect("publish");
            }
        })
    };
    for sub in &mut subs {
        assert_eq!(take_seqs(sub, 500).await, (1..=500).collect::<Vec<_>>());
    }
    publisher.await.expect("publisher");
}

#[tokio::test]
async fn idempotent_publish_returns_the_original_sequence() {
    let c = Coordinator::builder().connect().await.expect("connect");
    let first = c
        .publish_idempotent("k", "x", "id-1")
        .await
        .expect("publish");
    let again = c
        .publish_idempotent("k", "x", "id-1")
        .await
        .expect("publish");
    let other = c
        .publish_idempotent("k", "x", "id-2")
        .await
        .expect("publish");
    assert_eq!((first.seq, first.duplicate), (1, false));
    assert_eq!((again.seq, again.duplicate), (1, true));
    assert_eq!((other.seq, other.duplicate), (2, false));
}

#[tokio::test]
async fn a_disconnect_is_reported_and_recovered_without_loss() {
    let server = MemoryServer::new();
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .memory_server(server.clone())
        .backoff(herald::Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(40),
        })
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    c.publish("k.1", "x").await.expect("publish");
    assert_eq!(take_seqs(&mut sub, 1).await, vec![1]);

    server.disconnect();
    // A publish during the outage waits (retrying) and lands once the connection is back.
    let publisher = {
        let c = c.clone();
        tokio::spawn(async move { c.publish("k.2", "x").await })
    };
    let reader = tokio::spawn(async move {
        let seqs = take_seqs(&mut sub, 1).await;
        (sub, seqs)
    });
    rec.wait_for(EventKind::PublishFailed).await;
    rec.wait_for(EventKind::Resubscribing).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.reconnect();
    assert_eq!(
        publisher
            .await
            .expect("join")
            .expect("publish after reconnect"),
        2
    );
    let (_sub, seqs) = reader.await.expect("join");
    assert_eq!(seqs, vec![2]);

    let kinds = rec.kinds();
    let disconnected = kinds.iter().position(|k| *k == EventKind::Disconnected);
    let reconnected = kinds.iter().position(|k| *k == EventKind::Reconnected);
    assert!(disconnected < reconnected, "{kinds:?}");
    assert!(rec.events().iter().any(|e| matches!(
        e,
        CoordinatorEvent::Resubscribing {
            cause: ResubscribeCause::Disconnected,
            attempt: 1,
            ..
        }
    )));
    assert!(rec.events().iter().any(|e| matches!(
        e,
        CoordinatorEvent::PublishFailed {
            will_retry: true,
            ..
        }
    )));
}

#[tokio::test]
async fn stats_snapshot_follows_the_events() {
    let server = MemoryServer::new();
    let stats = StatsReporter::new();
    let c = Coordinator::builder()
        .memory_server(server.clone())
        .reporter(stats.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .durable("stats")
        .start(StartPosition::All)
        .checkpoint_policy(herald::CheckpointPolicy {
            every: 1,
            interval: Duration::from_millis(10),
        })
        .await
        .expect("subscribe");
    for i in 0..3 {
        c.publish(&format!("k.{i}"), "x").await.expect("publish");
    }
    take_seqs(&mut sub, 3).await;
    server.delete_consumers("HERALD");
    c.publish("k.4", "x").await.expect("publish");
    take_seqs(&mut sub, 1).await;
    let name = sub.consumer_name().to_string();
    let deadline = tokio::time::Instant::now() + support::DEADLINE;
    while stats.snapshot().subscriptions[&name].last_checkpointed != Some(4) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.connection, herald::ConnectionState::Connected);
    assert_eq!(snapshot.count(EventKind::Published), 4);
    assert_eq!(snapshot.count(EventKind::Delivered), 4);
    assert_eq!(snapshot.count(EventKind::ConsumerDeleted), 1);
    let sub_stats = &snapshot.subscriptions[&name];
    assert_eq!(sub_stats.last_delivered, Some(4));
    assert_eq!(sub_stats.recreations, 1);
    assert_eq!(sub_stats.state, herald::SubscriptionState::Live);
}

#[tokio::test]
async fn a_publish_that_cannot_land_before_its_deadline_says_so() {
    let server = MemoryServer::new();
    let rec = Recorder::everything();
    let c = Coordinator::builder()
        .memory_server(server.clone())
        .publish_deadline(Duration::from_millis(200))
        .backoff(herald::Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
        })
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    server.disconnect();
    let err = c.publish("k", "x").await.unwrap_err();
    assert_eq!(err.kind(), herald::ErrorKind::DeadlineExceeded, "{err}");
    let attempts: Vec<(u32, bool)> = rec
        .events()
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::PublishFailed {
                attempt,
                will_retry,
                ..
            } => Some((*attempt, *will_retry)),
            _ => None,
        })
        .collect();
    assert!(attempts.len() >= 2, "{attempts:?}");
    assert!(attempts[..attempts.len() - 1]
        .iter()
        .all(|(_, retry)| *retry));
    assert_eq!(attempts.last().map(|a| a.1), Some(false));
    server.reconnect();
    assert_eq!(
        c.publish("k", "x").await.expect("publish"),
        1,
        "nothing was stored before"
    );
}

#[tokio::test]
async fn a_consumer_sequence_gap_resubscribes_without_loss() {
    let server = MemoryServer::new();
    let rec = Recorder::new();
    let c = Coordinator::builder()
        .memory_server(server.clone())
        .reporter(rec.clone())
        .connect()
        .await
        .expect("connect");
    let mut sub = c
        .subscribe(">")
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    for i in 0..3 {
        c.publish(&format!("k.{i}"), "x").await.expect("publish");
    }
    assert_eq!(take_seqs(&mut sub, 1).await, vec![1]);
    server.drop_deliveries("HERALD", 1); // sequence 2 is lost on the way
    assert_eq!(take_seqs(&mut sub, 2).await, vec![2, 3]);
    assert!(rec.events().iter().any(|e| matches!(
        e,
        CoordinatorEvent::Resubscribing {
            cause: ResubscribeCause::SequenceGap {
                expected: 2,
                received: 3
            },
            ..
        }
    )));
}
