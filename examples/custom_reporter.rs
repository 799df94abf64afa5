//! Your own reporter in a few lines: page someone when events are lost, count missed
//! heartbeats for a dashboard. Everything else the coordinator does is never even built for it.
//!
//! ```text
//! cargo run --example custom_reporter                                   # embedded backend
//! NATS_URL=nats://127.0.0.1:4222 cargo run --example custom_reporter    # a real nats-server
//! ```
//!
//! On NATS, freeze the server for a few seconds (`kill -STOP`, then `kill -CONT`) while the
//! example waits, to see heartbeats missed there too.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald::{Coordinator, CoordinatorEvent, EventKind, Reporter};

// ---- The user's reporter: this is all it takes. ----

/// Pages on lost events; counts missed heartbeats.
#[derive(Default)]
struct Pager {
    pages: AtomicU64,
    heartbeats_missed: AtomicU64,
}

impl Reporter for Pager {
    /// Only these two kinds are ever built and handed to `report`.
    fn interest(&self, kind: EventKind) -> bool {
        matches!(kind, EventKind::EventsLost | EventKind::HeartbeatMissed)
    }

    /// Called on the coordinator's task: be quick, never block. A real pager would hand the
    /// event to a channel read by the task that calls the paging service.
    fn report(&self, event: &CoordinatorEvent) {
        match event {
            CoordinatorEvent::EventsLost { first, last, .. } => {
                self.pages.fetch_add(1, Ordering::Relaxed);
                println!("  PAGE  {event} (sequences {first} to {last})");
            }
            CoordinatorEvent::HeartbeatMissed { .. } => {
                self.heartbeats_missed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

// ---- A run that gives it something to report. ----

#[tokio::main]
async fn main() -> support::Result {
    let pager = Arc::new(Pager::default());
    let builder = Coordinator::builder()
        .stream("CUSTOM_REPORTER")
        .node_id("billing-1")
        // Short retention and heartbeats, so the example shows loss and missed heartbeats fast.
        .max_age(Duration::from_secs(1))
        .heartbeat(Duration::from_millis(200))
        .reporter(pager.clone()); // keep a handle to read the counts
    let coordinator = support::connect(builder).await?;

    // A durable subscriber reads two alerts, then goes away.
    let subscribe = support::durable_alerts(&coordinator, "pager-demo");
    let mut alerts = subscribe().await?;
    support::publish_and_ack(&coordinator, &mut alerts, 1..=2).await?;

    // The consumer stops hearing from the server for a while (embedded: injected; NATS: freeze
    // the server yourself to see it). The subscriber waits for its next alert meanwhile.
    if let Some(server) = coordinator.memory_server() {
        println!("-- the server goes quiet for a second --");
        server.stop_heartbeats(coordinator.stream(), Duration::from_millis(900));
    }
    let quiet = tokio::time::timeout(Duration::from_millis(1500), alerts.next()).await;
    assert!(quiet.is_err(), "nothing was published meanwhile");
    alerts.close().await;

    println!("-- three alerts are published and expire while the subscriber is away --");
    support::expire_while_away(&coordinator, 3..=5).await?;
    subscribe().await?.close().await; // reports EventsLost: the pager pages

    println!(
        "pages sent: {}, heartbeats missed: {}",
        pager.pages.load(Ordering::Relaxed),
        pager.heartbeats_missed.load(Ordering::Relaxed)
    );
    coordinator.shutdown().await;
    Ok(())
}
