//! The embedded backend is a real backend: retention, filters, many subscribers, idempotent
//! publish, disconnects, and a stats snapshot built from its events.

use std::time::Duration;

use herald::testing::RecordingReporter;
use herald::{
    Builder, Coordinator, CoordinatorEvent, EventKind, MemoryServer, ResubscribeCause,
    StartPosition, StatsReporter,
};

use crate::support::{
    assert_quiet, assert_recorded, connect, publish_ids, publish_n, recorded, subscribe_all, take,
    take_seqs, take_seqs_meanwhile, wait_until, DEADLINE,
};

/// A builder on `server`, which the test keeps to inject faults.
fn on(server: &MemoryServer) -> Builder {
    Coordinator::builder().memory_server(server.clone())
}

#[tokio::test]
async fn filters_follow_nats_wildcards() {
    let c = Coordinator::builder().connect().await.expect("connect");
    let mut star = subscribe_all(&c, "alerts.*").await;
    let mut deep = subscribe_all(&c, "alerts.>").await;
    let mut exact = subscribe_all(&c, "pipelines.7").await;
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
    // By bytes: each message stores its subject (HERALD.k.N, 8 bytes) and a 12-byte payload,
    // 20 bytes.
    let limits = [
        (Coordinator::builder().max_msgs(3), "x", 5, vec![3, 4, 5]),
        (
            Coordinator::builder().max_bytes(45),
            "twelve bytes",
            4,
            vec![3, 4],
        ),
    ];
    for (builder, payload, published, kept) in limits {
        let c = builder.connect().await.expect("connect");
        for i in 0..published {
            c.publish(&format!("k.{i}"), payload)
                .await
                .expect("publish");
        }
        let mut sub = subscribe_all(&c, ">").await;
        assert_eq!(take_seqs(&mut sub, kept.len()).await, kept);
    }
}

#[tokio::test]
async fn many_subscribers_each_see_every_message_once_in_order() {
    let c = Coordinator::builder().connect().await.expect("connect");
    let mut subs = Vec::new();
    for i in 0..8 {
        let durable = c.subscribe(">").durable(format!("s{i}"));
        subs.push(durable.start(StartPosition::All).await.expect("subscribe"));
    }
    let publisher = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..500 {
                let key = format!("k.{}", i % 7);
                c.publish(&key, "x").await.expect("publish");
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
    assert_eq!(
        publish_ids(&c, &["id-1", "id-1", "id-2"]).await,
        [(1, false), (1, true), (2, false)]
    );
}

#[tokio::test]
async fn a_disconnect_is_reported_and_recovered_without_loss() {
    let server = MemoryServer::new();
    let rec = RecordingReporter::new();
    let backoff = herald::Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(40),
    };
    let c = connect(on(&server).backoff(backoff), rec.clone()).await;
    let mut sub = subscribe_all(&c, ">").await;
    c.publish("k.1", "x").await.expect("publish");
    assert_eq!(take_seqs(&mut sub, 1).await, vec![1]);

    server.disconnect();
    // A publish during the outage waits (retrying) and lands once the connection is back.
    let publisher = {
        let c = c.clone();
        tokio::spawn(async move { c.publish("k.2", "x").await })
    };
    let reader = take_seqs_meanwhile(sub, 1);
    rec.wait_for(EventKind::PublishFailed).await;
    rec.wait_for(EventKind::Resubscribing).await;
    // The outage lasts a while longer, with both retrying.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.reconnect();
    let published = publisher.await.expect("join");
    assert_eq!(published.expect("publish after reconnect"), 2);
    let (_sub, seqs) = reader.await.expect("join");
    assert_eq!(seqs, vec![2]);

    let kinds = rec.kinds();
    let disconnected = kinds.iter().position(|k| *k == EventKind::Disconnected);
    let reconnected = kinds.iter().position(|k| *k == EventKind::Reconnected);
    assert!(disconnected < reconnected, "{kinds:?}");
    assert_recorded!(
        rec,
        CoordinatorEvent::Resubscribing {
            cause: ResubscribeCause::Disconnected,
            attempt: 1,
            ..
        }
    );
    assert_recorded!(
        rec,
        CoordinatorEvent::PublishFailed {
            will_retry: true,
            ..
        }
    );
}

#[tokio::test]
async fn stats_snapshot_follows_the_events() {
    let server = MemoryServer::new();
    let stats = StatsReporter::new();
    let c = connect(on(&server), stats.clone()).await;
    let policy = herald::CheckpointPolicy {
        every: 1,
        interval: Duration::from_millis(10),
    };
    let subscribe = c.subscribe(">").durable("stats").checkpoint_policy(policy);
    let mut sub = subscribe
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    publish_n(&c, 3).await;
    take_seqs(&mut sub, 3).await;
    server.delete_consumers("HERALD");
    c.publish("k.4", "x").await.expect("publish");
    take_seqs(&mut sub, 1).await;
    // The replay of 4 is complete once the application asks for more.
    assert_quiet(&mut sub, Duration::from_millis(20)).await;
    let name = sub.consumer_name().to_string();
    let checkpointed = || stats.snapshot().subscriptions[&name].last_checkpointed;
    let state = || format!("{:?}", stats.snapshot());
    wait_until(DEADLINE, async || checkpointed() == Some(4), state).await;
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
    let rec = RecordingReporter::everything();
    let builder = on(&server)
        .publish_deadline(Duration::from_millis(200))
        .backoff(herald::Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
        });
    let c = connect(builder, rec.clone()).await;
    server.disconnect();
    let err = c.publish("k", "x").await.unwrap_err();
    assert_eq!(err.kind(), herald::ErrorKind::DeadlineExceeded, "{err}");
    let attempts = recorded!(rec, CoordinatorEvent::PublishFailed {
        attempt,
        will_retry,
        ..
    } => (*attempt, *will_retry));
    assert!(attempts.len() >= 2, "{attempts:?}");
    let (last, earlier) = attempts.split_last().expect("attempts");
    assert!(earlier.iter().all(|(_, retry)| *retry));
    assert!(!last.1);
    server.reconnect();
    let seq = c.publish("k", "x").await.expect("publish");
    assert_eq!(seq, 1, "nothing was stored before");
}

#[tokio::test]
async fn a_consumer_sequence_gap_resubscribes_without_loss() {
    let server = MemoryServer::new();
    let rec = RecordingReporter::new();
    let c = connect(on(&server), rec.clone()).await;
    let mut sub = subscribe_all(&c, ">").await;
    publish_n(&c, 3).await;
    assert_eq!(take_seqs(&mut sub, 1).await, vec![1]);
    server.drop_deliveries("HERALD", 1); // sequence 2 is lost on the way
    assert_eq!(take_seqs(&mut sub, 2).await, vec![2, 3]);
    assert_recorded!(
        rec,
        CoordinatorEvent::Resubscribing {
            cause: ResubscribeCause::SequenceGap {
                expected: 2,
                received: 3
            },
            ..
        }
    );
}
