//! Attach an OpenTelemetry exporter (stdout here; OTLP or Prometheus the same way) and read
//! the metrics and events a fault leaves behind.
//!
//! ```text
//! cargo run --example otel                                   # embedded backend
//! NATS_URL=nats://127.0.0.1:4222 cargo run --example otel    # a real nats-server
//! ```
//!
//! The reporter uses the meter and logger it is given; it never installs a global provider.

mod support;

use std::time::Duration;

use herald::Coordinator;
use herald_otel::OtelReporter;
use opentelemetry::logs::LoggerProvider;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

#[tokio::main]
async fn main() -> support::Result {
    // Your providers, with your exporters. Metrics are read every 60 s by default; this
    // example exports them once, at the end.
    let meters = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(opentelemetry_stdout::MetricExporter::default()).build(),
        )
        .build();
    // A batching processor: records leave the coordinator's task at once and are exported in
    // the background (here only at the end, to keep the output in one piece).
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(Duration::from_secs(60))
        .build();
    let logs = SdkLoggerProvider::builder()
        .with_log_processor(
            BatchLogProcessor::builder(opentelemetry_stdout::LogExporter::default())
                .with_batch_config(batch)
                .build(),
        )
        .build();

    let reporter = OtelReporter::new(&meters.meter_with_scope(herald_otel::scope()))
        .with_logger(logs.logger_with_scope(herald_otel::scope()));

    let builder = Coordinator::builder()
        .stream("OTEL")
        .node_id("example")
        .max_age(Duration::from_secs(1))
        .reporter(reporter.clone());
    let coordinator = support::connect(builder).await?;

    let subscribe = support::durable_alerts(&coordinator, "otel-demo");
    let mut alerts = subscribe().await?;
    support::publish_and_ack(&coordinator, &mut alerts, 1..=3).await?;

    println!(
        "-- fault: an operator deletes consumer {} --",
        alerts.consumer_name()
    );
    support::delete_consumer(&coordinator, alerts.consumer_name()).await?;
    coordinator.publish("alerts.4", "raised").await?;
    support::next(&mut alerts).await?.ack(); // recreated, 4 replayed
    alerts.close().await;

    println!("-- fault: three alerts expire while the subscriber is away --");
    support::expire_while_away(&coordinator, 5..=7).await?;
    subscribe().await?.close().await; // events lost

    if let Some(server) = coordinator.memory_server() {
        println!("-- fault: the connection drops for 300 ms --");
        server.disconnect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.reconnect();
    }
    coordinator.shutdown().await;

    println!("reporter: {:?}", reporter.stats());

    // Shutting the providers down exports what they still hold.
    println!("\n== log records, one per state change ==");
    logs.shutdown()?;
    println!("\n== metrics ==");
    meters.shutdown()?;
    Ok(())
}
