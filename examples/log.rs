//! The log reporter with `tracing_subscriber`: the same story told twice, as text and as JSON.
//!
//! ```text
//! cargo run --example log                                   # embedded backend
//! NATS_URL=nats://127.0.0.1:4222 cargo run --example log    # a real nats-server
//! RUST_LOG=herald=trace cargo run --example log             # per-message events too
//! ```
//!
//! The filter (`RUST_LOG`, default `herald=info`) is the subscriber's; the reporter asks it
//! before the coordinator builds an event, so what it filters out costs nothing.

use std::time::Duration;

use herald::{Coordinator, MemoryCheckpointStore, Reporter, StartPosition};
use herald_log::LogReporter;
use tracing_subscriber::EnvFilter;

// One thread: the subscribers below are installed for the current thread only, so that the
// example can show both formats in one run. An application installs one subscriber globally
// (`.init()`) and uses any runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let filter =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("herald=info"));

    println!("== text ==");
    {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_target(true)
            .finish();
        let _text = tracing::subscriber::set_default(subscriber);
        story("LOG_TEXT", LogReporter::new()).await?;
    }

    println!("\n== JSON, one queryable object per event ==");
    {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter())
            .finish();
        let _json = tracing::subscriber::set_default(subscriber);
        // The reporter's own filters come on top of the subscriber's.
        story(
            "LOG_JSON",
            LogReporter::new().min_level(tracing::Level::INFO),
        )
        .await?;
    }
    Ok(())
}

/// Subscribe, publish, lose the consumer, replay, lose three events to retention, shut down.
async fn story(stream: &str, reporter: LogReporter) -> Result<(), Box<dyn std::error::Error>> {
    let builder = Coordinator::builder()
        .stream(stream)
        .node_id("example")
        .max_age(Duration::from_secs(1))
        .reporter(reporter);
    let coordinator = match std::env::var("NATS_URL") {
        Ok(url) => builder.nats(url).connect().await?,
        Err(_) => builder.connect().await?,
    };
    let store = MemoryCheckpointStore::new();
    let subscribe = || {
        coordinator
            .subscribe("alerts.>")
            .durable("log-demo")
            .checkpoint_store(store.clone())
    };

    let mut alerts = subscribe().start(StartPosition::New).await?;
    coordinator.publish("alerts.1", "raised").await?;
    next(&mut alerts).await?;

    // An operator deletes the consumer; the subscription recreates it and replays alert 2.
    delete_consumer(&coordinator, stream, alerts.consumer_name()).await?;
    coordinator.publish("alerts.2", "raised").await?;
    next(&mut alerts).await?;
    alerts.close().await;

    // Away long enough for retention to remove what was published meanwhile.
    for id in 3..=5 {
        coordinator
            .publish(&format!("alerts.{id}"), "raised")
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    subscribe().await?.close().await; // events lost: an ERROR line

    coordinator.shutdown().await;
    Ok(())
}

async fn next<R: Reporter>(
    sub: &mut herald::Subscription<R>,
) -> Result<(), Box<dyn std::error::Error>> {
    sub.next().await.ok_or("subscription ended")??.ack();
    Ok(())
}

async fn delete_consumer<R: Reporter>(
    coordinator: &Coordinator<R>,
    stream: &str,
    consumer: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    match (std::env::var("NATS_URL"), coordinator.memory_server()) {
        (_, Some(server)) => {
            server.delete_consumer(stream, consumer);
        }
        (Ok(url), None) => {
            let js = async_nats::jetstream::new(async_nats::connect(url.as_str()).await?);
            js.get_stream(stream)
                .await?
                .delete_consumer(consumer)
                .await?;
        }
        (Err(_), None) => return Err("no NATS_URL means the embedded backend".into()),
    }
    Ok(())
}
