//! Publishing and taking messages with deadlines: what scenarios do between their faults.

use std::time::Duration;

use herald::{Coordinator, Message, Reporter, StartPosition, Subscription};
use tokio::task::JoinHandle;

use super::wait::DEADLINE;

/// Publishes `n` events (`alerts.<i>`, payload `event <i>`) and returns their sequences.
pub(crate) async fn publish_n<R: Reporter>(c: &Coordinator<R>, n: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    for i in 0..n {
        let key = format!("alerts.{i}");
        seqs.push(
            c.publish(&key, format!("event {i}"))
                .await
                .expect("publish"),
        );
    }
    seqs
}

/// Publishes one message with each of `ids` as its idempotency id; returns what each publish
/// acknowledged: its sequence, and whether the server saw a duplicate.
pub(crate) async fn publish_ids<R: Reporter>(c: &Coordinator<R>, ids: &[&str]) -> Vec<(u64, bool)> {
    let mut acks = Vec::new();
    for id in ids {
        let ack = c.publish_idempotent("k", "x", id).await.expect("publish");
        acks.push((ack.seq, ack.duplicate));
    }
    acks
}

/// Subscribes to `filter` from the first message the stream holds.
pub(crate) async fn subscribe_all<R: Reporter>(
    c: &Coordinator<R>,
    filter: &str,
) -> Subscription<R> {
    c.subscribe(filter)
        .start(StartPosition::All)
        .await
        .expect("subscribe")
}

/// Publishes `n` events and returns the sequences `sub` then delivers.
pub(crate) async fn publish_and_take<R: Reporter>(
    c: &Coordinator<R>,
    sub: &mut Subscription<R>,
    n: u64,
) -> Vec<u64> {
    publish_n(c, n).await;
    take_seqs(sub, n as usize).await
}

/// Takes the next `n` messages (acking each), failing if they do not arrive in time.
pub(crate) async fn take<R: Reporter>(sub: &mut Subscription<R>, n: usize) -> Vec<Message> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(DEADLINE, sub.next()).await {
            Ok(Some(Ok(message))) => {
                message.ack();
                out.push(message);
            }
            Ok(Some(Err(e))) => panic!("subscription failed after {} messages: {e}", out.len()),
            Ok(None) => panic!("subscription ended after {} messages", out.len()),
            Err(_) => panic!(
                "only {} of {n} messages within {DEADLINE:?}: {:?}",
                out.len(),
                seqs(&out)
            ),
        }
    }
    out
}

/// Takes the next `n` messages and returns their sequences.
pub(crate) async fn take_seqs<R: Reporter>(sub: &mut Subscription<R>, n: usize) -> Vec<u64> {
    seqs(&take(sub, n).await)
}

/// Takes the next `n` sequences in a task of its own, so that the test can meanwhile cause a
/// fault; the task hands back the subscription (kept open) with the sequences.
pub(crate) fn take_seqs_meanwhile<R: Reporter + Send + Sync + 'static>(
    mut sub: Subscription<R>,
    n: usize,
) -> JoinHandle<(Subscription<R>, Vec<u64>)> {
    tokio::spawn(async move {
        let seqs = take_seqs(&mut sub, n).await;
        (sub, seqs)
    })
}

/// Asserts nothing is delivered for `quiet`.
pub(crate) async fn assert_quiet<R: Reporter>(sub: &mut Subscription<R>, quiet: Duration) {
    if let Ok(item) = tokio::time::timeout(quiet, sub.next()).await {
        panic!("expected no message, got {item:?}");
    }
}

/// The sequences of `messages`.
pub(crate) fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}
