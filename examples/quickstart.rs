//! Herald in one story: subscribe, publish, lose the consumer underneath the subscriber, and
//! watch the coordinator report and recover it, replaying exactly what was missed.
//!
//! ```text
//! cargo run --example quickstart                                    # embedded backend
//! NATS_URL=nats://127.0.0.1:4222 cargo run --example quickstart     # a real nats-server
//! ```

use herald::reporter::{from_fn, ReporterExt};
use herald::{Coordinator, StartPosition};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Every state change of the coordinator, one line each (per-message kinds left out).
    let reporter =
        from_fn(|event| println!("  event    {event}")).only(|kind| !kind.is_per_message());

    let nats_url = std::env::var("NATS_URL").ok();
    let builder = Coordinator::builder()
        .stream("QUICKSTART")
        .reporter(reporter);
    let coordinator = match &nats_url {
        Some(url) => {
            println!("herald quickstart on NATS at {}", herald::redact_url(url));
            builder.nats(url.clone()).connect().await?
        }
        None => {
            println!("herald quickstart on the embedded backend (set NATS_URL to use NATS)");
            builder.connect().await?
        }
    };

    let mut alerts = coordinator
        .subscribe("alerts.>")
        .start(StartPosition::New)
        .await?;

    for id in [42, 7, 42] {
        coordinator
            .publish(&format!("alerts.{id}"), "changed")
            .await?;
    }
    for _ in 0..3 {
        print_next(&mut alerts).await?;
    }

    println!(
        "-- an operator deletes consumer {} --",
        alerts.consumer_name()
    );
    match (&nats_url, coordinator.memory_server()) {
        (Some(url), _) => {
            let js = async_nats::jetstream::new(async_nats::connect(url.as_str()).await?);
            js.get_stream("QUICKSTART")
                .await?
                .delete_consumer(alerts.consumer_name())
                .await?;
        }
        (None, Some(server)) => {
            server.delete_consumer("QUICKSTART", alerts.consumer_name());
        }
        (None, None) => unreachable!("no NATS_URL means the embedded backend"),
    }
    println!("-- two alerts are published while the consumer is gone --");
    coordinator.publish("alerts.9", "created").await?;
    coordinator.publish("alerts.42", "resolved").await?;

    // The subscription notices, reports, recreates the consumer at the last sequence + 1 and
    // replays exactly the two missed alerts: nothing lost, nothing twice.
    for _ in 0..2 {
        print_next(&mut alerts).await?;
    }

    alerts.close().await;
    coordinator.shutdown().await;
    Ok(())
}

async fn print_next<R: herald::Reporter>(
    sub: &mut herald::Subscription<R>,
) -> Result<(), Box<dyn std::error::Error>> {
    let message = sub.next().await.ok_or("subscription ended")??;
    println!(
        "  message  #{} {} = {:?}{}",
        message.seq,
        message.key(),
        String::from_utf8_lossy(&message.payload),
        if message.replayed { " (replayed)" } else { "" }
    );
    message.ack();
    Ok(())
}
