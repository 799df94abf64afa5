//! The scripted run the reporter crates' tests read their reporters' output from: one
//! coordinator on the embedded backend (with fault injection) and every kind of story.
//!
//! Shared by herald-log's and herald-otel's tests (`#[path]`), so both tell the same story.

use std::ops::RangeInclusive;
use std::time::Duration;

use herald::{
    Backoff, Coordinator, ErrorKind, MemoryCheckpointStore, Reporter, StartPosition, Subscription,
};

/// The stream of the run.
pub(crate) const STREAM: &str = "SCRIPT";

/// The durable subscription's consumer: node `node-a`, durable `cache`.
pub(crate) const CONSUMER: &str = "node-a:cache";

/// Subscribe and consume 1..=3; the consumer is deleted and 4 is replayed; the subscriber goes
/// away while 5..=9 are published and retention removes 5..=7; it comes back (events lost,
/// 8..=9 replayed); a disconnect during which one publish fails for good; a reconnect;
/// shutdown. Returns the coordinator, shut down.
pub(crate) async fn script<R: Reporter>(reporter: R) -> Coordinator<R> {
    let c = Coordinator::builder()
        .stream(STREAM)
        .node_id("node-a")
        .publish_deadline(Duration::from_millis(150))
        .backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
        })
        .reporter(reporter)
        .connect()
        .await
        .expect("connect");
    let server = c.memory_server().expect("embedded").clone();
    let store = MemoryCheckpointStore::new();
    let subscribe = || {
        c.subscribe("alerts.>")
            .durable("cache")
            .checkpoint_store(store.clone())
    };

    let mut sub = subscribe()
        .start(StartPosition::All)
        .await
        .expect("subscribe");
    assert_eq!(sub.consumer_name(), CONSUMER);
    publish(&c, 1..=3).await;
    consume(&mut sub, 1..=3).await;
    assert!(server.delete_consumer(STREAM, CONSUMER));
    publish(&c, 4..=4).await;
    consume(&mut sub, 4..=4).await;
    sub.close().await;

    // Away: 5..=9 are published, retention removes 5..=7.
    publish(&c, 5..=9).await;
    assert_eq!(server.expire_through(STREAM, 7), 7);
    let mut sub = subscribe().await.expect("subscribe again");
    consume(&mut sub, 8..=9).await;
    sub.close().await;

    server.disconnect();
    let failed = c.publish("alerts.10", "while disconnected").await;
    assert_eq!(
        failed.expect_err("no server").kind(),
        ErrorKind::DeadlineExceeded
    );
    server.reconnect();
    c.shutdown().await;
    c
}

/// Publishes `alerts.<id>` for each id; on this fresh stream, id `n` is sequence `n`.
async fn publish<R: Reporter>(c: &Coordinator<R>, ids: RangeInclusive<u64>) {
    for id in ids {
        c.publish(&format!("alerts.{id}"), "changed")
            .await
            .expect("publish");
    }
}

/// Receives and acknowledges exactly the sequences `seqs`, in order.
async fn consume<R: Reporter>(sub: &mut Subscription<R>, seqs: RangeInclusive<u64>) {
    for seq in seqs {
        let m = sub.next().await.expect("open").expect("message");
        assert_eq!(m.seq, seq);
        m.ack();
    }
}
