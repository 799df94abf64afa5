//! Herald in one story: subscribe, publish, lose the consumer underneath the subscriber, and
//! watch the coordinator report and recover it, replaying exactly what was missed.
//!
//! ```text
//! cargo run --example quickstart                                    # embedded backend
//! NATS_URL=nats://127.0.0.1:4222 cargo run --example quickstart     # a real nats-server
//! ```

mod support;

use herald::reporter::{from_fn, ReporterExt};
use herald::{Coordinator, Reporter, StartPosition, Subscription};

#[tokio::main]
async fn main() -> support::Result {
    // Every state change of the coordinator, one line each (per-message kinds left out).
    let reporter =
        from_fn(|event| println!("  event    {event}")).only(|kind| !kind.is_per_message());

    let builder = Coordinator::builder()
        .stream("QUICKSTART")
        .reporter(reporter);
    let coordinator = support::connect(builder).await?;

    let mut alerts = coordinator
        .subscribe("alerts.>")
        .start(StartPosition::New)
        .await?;

    support::publish_alerts(&coordinator, [42, 7, 42], "changed").await?;
    for _ in 0..3 {
        print_next(&mut alerts).await?;
    }

    println!(
        "-- an operator deletes consumer {} --",
        alerts.consumer_name()
    );
    support::delete_consumer(&coordinator, alerts.consumer_name()).await?;
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

async fn print_next<R: Reporter>(sub: &mut Subscription<R>) -> support::Result {
    let message = support::next(sub).await?;
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
