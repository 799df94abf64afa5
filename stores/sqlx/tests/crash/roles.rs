//! What the processes the scenarios start do: produce through the outbox, or consume with
//! the checkpoint in the application's transaction.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::reporter::{from_fn, ReporterExt as _};
use herald::{Coordinator, NatsOptions, Reporter, StartPosition, Subscription};
use herald_sqlx::{SqlxCheckpoints, SqlxOutbox};

use crate::support::{wait_until, App, Rng};
use crate::SLOW;

/// A coordinator of the stream `CRASH` on `url`, with quick reconnects, that prints what
/// happens (into the process's log). Connecting is retried: a process may start while the
/// server restarts.
pub(crate) async fn nats_coordinator(url: &str, node: &str) -> Coordinator<impl Reporter> {
    let deadline = Instant::now() + SLOW;
    loop {
        let options = NatsOptions::new(url)
            .ping_interval(Duration::from_millis(500))
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Duration::from_secs(2))
            .reconnect_backoff(herald::Backoff {
                initial: Duration::from_millis(20),
                max: Duration::from_millis(250),
            });
        let node_id = node.to_owned();
        let print = from_fn(move |e| eprintln!("{node_id}: {e}"));
        let connected = Coordinator::builder()
            .nats_options(options)
            .stream("CRASH")
            .node_id(node)
            .reporter(print.only(|kind| !kind.is_per_message()))
            .connect()
            .await;
        match connected {
            Ok(coordinator) => return coordinator,
            Err(error) if Instant::now() < deadline => eprintln!("{node}: {error}; again"),
            Err(error) => panic!("could not connect to NATS: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn id_and_token(payload: &[u8]) -> Vec<i64> {
    let text = std::str::from_utf8(payload).expect("UTF-8");
    let (id, token) = text.split_once(':').expect("id:token");
    vec![id.parse().expect("an id"), token.parse().expect("a token")]
}

/// Two writers commit events 1 to `events` (ids from one counter, 1 to 4 per transaction) to
/// `produced` and the outbox, tagged with this process's id; then the outbox drains.
pub(crate) async fn produce<DB: App>(url: &str, nats: &str, events: i64) {
    let pool = DB::connect_fast(url).await;
    let coordinator = nats_coordinator(nats, "producer").await;
    let outbox = SqlxOutbox::new(pool.clone()).await.expect("outbox");
    let relay = outbox.relay(coordinator.clone());
    let last = DB::scalar(&pool, "SELECT COALESCE(MAX(id), 0) FROM produced").await;
    let next = Arc::new(AtomicI64::new(last + 1));
    let token = i64::from(std::process::id());
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let (pool, outbox, next) = (pool.clone(), outbox.clone(), next.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(token.unsigned_abs() * 7 + writer);
                loop {
                    let size = i64::try_from(rng.in_range(1..5)).expect("small");
                    let first = next.fetch_add(size, Ordering::SeqCst);
                    if first > events {
                        return;
                    }
                    let mut tx = pool.begin().await.expect("begin");
                    for id in first..=(first + size - 1).min(events) {
                        let sql = "INSERT INTO produced (id, token) VALUES ($1, $2)";
                        DB::exec(&mut tx, sql, &[id, token]).await.expect("insert");
                        let payload = format!("{id}:{token}");
                        let key = format!("ev.{id}");
                        outbox
                            .enqueue(&mut tx, &key, payload.as_bytes())
                            .await
                            .expect("enqueue");
                    }
                    tx.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer");
    }
    let drained = || async { outbox.pending().await.expect("pending") == 0 };
    wait_until(SLOW, drained, || "the outbox did not drain".into()).await;
    relay.shutdown().await;
}

/// Applies every event (inserts it into `applied`, the checkpoint in the same transaction)
/// until the message `end`.
pub(crate) async fn consume<DB: App>(url: &str, nats: &str) {
    let pool = DB::connect_fast(url).await;
    let coordinator = nats_coordinator(nats, "consumer").await;
    let store = SqlxCheckpoints::new(pool.clone())
        .await
        .expect("checkpoints");
    let mut sub = subscribe(&coordinator, &store).await;
    while let Some(message) = sub.next().await {
        let message = message.expect("a message");
        if message.key() == "end" {
            return;
        }
        let event = id_and_token(&message.payload);
        let seq = i64::try_from(message.seq).expect("small");
        let mut tx = pool.begin().await.expect("begin");
        let sql = "INSERT INTO applied (id, token, seq) VALUES ($1, $2, $3)";
        DB::exec(&mut tx, sql, &[event[0], event[1], seq])
            .await
            .expect("apply");
        store.commit(tx, &message).await.expect("commit");
    }
    panic!("the subscription ended");
}

/// The consumer's subscription: everything, resumed from `store`.
pub(crate) async fn subscribe<R: Reporter, DB: App>(
    coordinator: &Coordinator<R>,
    store: &SqlxCheckpoints<DB>,
) -> Subscription<R> {
    coordinator
        .subscribe(">")
        .durable("apply")
        .start(StartPosition::LastProcessed)
        .checkpoint_store(store.clone())
        .await
        .expect("subscribe")
}
