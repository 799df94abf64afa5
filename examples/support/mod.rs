//! What the examples share: where they connect, publishing and taking alerts, and the faults an
//! operator or retention inflicts on a subscriber.
//!
//! Not an example itself: Cargo builds `examples/*.rs` and `examples/*/main.rs`, and each
//! example includes this module with `mod support;`.
// Each example uses the part it needs.
#![allow(dead_code)]

use std::error::Error;
use std::ops::RangeInclusive;
use std::time::Duration;

use herald::{
    Builder, Coordinator, MemoryCheckpointStore, Message, Reporter, Subscribe, Subscription,
};

/// What the examples' functions return.
pub(crate) type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// Connects to the nats-server at `NATS_URL` when it is set, to the embedded backend otherwise,
/// and prints where: [`Coordinator::server`] is safe to print, credentials are redacted.
pub(crate) async fn connect<R: Reporter>(builder: Builder<R>) -> Result<Coordinator<R>> {
    let coordinator = match std::env::var("NATS_URL") {
        Ok(url) => builder.nats(url).connect().await?,
        Err(_) => builder.connect().await?,
    };
    let hint = match coordinator.memory_server() {
        Some(_) => " (set NATS_URL to use NATS)",
        None => "",
    };
    println!("herald on {}{hint}", coordinator.server());
    Ok(coordinator)
}

/// Subscribes to every alert as the durable consumer `name`, checkpointing into a store kept
/// across calls: call it again after closing and the subscription resumes where it left off.
pub(crate) fn durable_alerts<'a, R: Reporter>(
    coordinator: &'a Coordinator<R>,
    name: &'a str,
) -> impl Fn() -> Subscribe<'a, R> + 'a {
    let store = MemoryCheckpointStore::new();
    move || {
        coordinator
            .subscribe("alerts.>")
            .durable(name)
            .checkpoint_store(store.clone())
    }
}

/// Publishes `alerts.<id>` with `payload`, for each id.
pub(crate) async fn publish_alerts<R: Reporter>(
    coordinator: &Coordinator<R>,
    ids: impl IntoIterator<Item = u32>,
    payload: &'static str,
) -> Result {
    for id in ids {
        coordinator
            .publish(&format!("alerts.{id}"), payload)
            .await?;
    }
    Ok(())
}

/// Publishes the alerts `ids` and has `sub` receive and acknowledge as many messages.
pub(crate) async fn publish_and_ack<R: Reporter>(
    coordinator: &Coordinator<R>,
    sub: &mut Subscription<R>,
    ids: RangeInclusive<u32>,
) -> Result {
    let count = ids.clone().count();
    publish_alerts(coordinator, ids, "raised").await?;
    for _ in 0..count {
        next(sub).await?.ack();
    }
    Ok(())
}

/// The subscription's next message, to acknowledge once processed.
pub(crate) async fn next<R: Reporter>(sub: &mut Subscription<R>) -> Result<Message> {
    Ok(sub.next().await.ok_or("subscription ended")??)
}

/// Deletes `consumer` under its subscription, as an operator would: with the embedded server's
/// fault injection, or through the JetStream API on NATS.
pub(crate) async fn delete_consumer<R: Reporter>(
    coordinator: &Coordinator<R>,
    consumer: &str,
) -> Result {
    match coordinator.memory_server() {
        Some(server) => {
            server.delete_consumer(coordinator.stream(), consumer);
        }
        None => {
            let url = std::env::var("NATS_URL")?;
            let js = async_nats::jetstream::new(async_nats::connect(url.as_str()).await?);
            js.get_stream(coordinator.stream())
                .await?
                .delete_consumer(consumer)
                .await?;
        }
    }
    Ok(())
}

/// Publishes the alerts `ids` while the durable subscriber is away, then waits until retention
/// (the examples' max age is one second) has removed them: when the subscriber comes back, its
/// subscription reports `EventsLost`.
pub(crate) async fn expire_while_away<R: Reporter>(
    coordinator: &Coordinator<R>,
    ids: RangeInclusive<u32>,
) -> Result {
    publish_alerts(coordinator, ids, "raised").await?;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    Ok(())
}
