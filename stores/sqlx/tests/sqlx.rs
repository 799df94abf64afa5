//! herald-sqlx on SQLite and PostgreSQL, with the embedded backend: the checkpoint store and
//! the checkpoint committed in the application's transaction (`checkpoints`), the outbox and
//! its relay (`outbox`). Every scenario runs on both databases (`<module>::sqlite::<name>` and
//! `<module>::postgres::<name>`); the process-kill scenarios against a real nats-server are in
//! `tests/crash.rs`.

mod support;

#[path = "sqlx/checkpoints.rs"]
mod checkpoints;
#[path = "sqlx/outbox.rs"]
mod outbox;

use std::sync::{Arc, Mutex};

use herald::{
    CheckpointStore, Coordinator, CoordinatorEvent, MemoryServer, Message, Reporter, StartPosition,
    Subscription,
};

use support::DEADLINE;

/// Every event the coordinator reported.
type Events = Arc<Mutex<Vec<CoordinatorEvent>>>;

/// A coordinator of stream `EVENTS` on `server` that records every event.
async fn connect(server: &MemoryServer) -> (Coordinator<impl Reporter>, Events) {
    let events = Events::default();
    let sink = events.clone();
    let coordinator = Coordinator::builder()
        .memory_server(server.clone())
        .stream("EVENTS")
        .reporter(herald::reporter::from_fn(move |e| {
            sink.lock().unwrap().push(e.clone())
        }))
        .connect()
        .await
        .expect("connect");
    (coordinator, events)
}

/// A subscription to everything, resuming from `store` (`LastProcessed`).
async fn resume<R: Reporter>(
    coordinator: &Coordinator<R>,
    durable: &str,
    store: &(impl CheckpointStore + Clone),
) -> Subscription<R> {
    coordinator
        .subscribe(">")
        .durable(durable)
        .start(StartPosition::LastProcessed)
        .checkpoint_store(store.clone())
        .await
        .expect("subscribe")
}

/// The next message, within the deadline.
async fn next<R: Reporter>(sub: &mut Subscription<R>) -> Message {
    match tokio::time::timeout(DEADLINE, sub.next()).await {
        Ok(Some(Ok(message))) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn payload(message: &Message) -> String {
    String::from_utf8(message.payload.to_vec()).expect("UTF-8 payload")
}

fn int(n: u64) -> i64 {
    i64::try_from(n).expect("small")
}

/// The keys and payloads of the next `n` messages.
async fn take<R: Reporter>(sub: &mut Subscription<R>, n: usize) -> Vec<(String, String)> {
    let mut taken = Vec::new();
    for _ in 0..n {
        let message = next(sub).await;
        taken.push((message.key().to_owned(), payload(&message)));
    }
    taken
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, p)| ((*k).to_owned(), (*p).to_owned()))
        .collect()
}
