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

mod support;

use std::time::Duration;

use herald::{Coordinator, StartPosition};
use herald_log::LogReporter;
use tracing_subscriber::EnvFilter;

// One thread: the subscribers below are installed for the current thread only, so that the
// example can show both formats in one run. An application installs one subscriber globally
// (`.init()`) and uses any runtime.
#[tokio::main(flavor = "current_thread")]
async fn main() -> support::Result {
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
async fn story(stream: &str, reporter: LogReporter) -> support::Result {
    let builder = Coordinator::builder()
        .stream(stream)
        .node_id("example")
        .max_age(Duration::from_secs(1))
        .reporter(reporter);
    let coordinator = support::connect(builder).await?;
    let subscribe = support::durable_alerts(&coordinator, "log-demo");

    let mut alerts = subscribe().start(StartPosition::New).await?;
    coordinator.publish("alerts.1", "raised").await?;
    support::next(&mut alerts).await?.ack();

    // An operator deletes the consumer; the subscription recreates it and replays alert 2.
    support::delete_consumer(&coordinator, alerts.consumer_name()).await?;
    coordinator.publish("alerts.2", "raised").await?;
    support::next(&mut alerts).await?.ack();
    alerts.close().await;

    // Away long enough for retention to remove what was published meanwhile.
    support::expire_while_away(&coordinator, 3..=5).await?;
    subscribe().await?.close().await; // events lost: an ERROR line

    coordinator.shutdown().await;
    Ok(())
}
