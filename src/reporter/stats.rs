//! A [`Stats`] snapshot built from events, for people who used to read a metrics watch channel.
//!
//! [`StatsReporter`] is an ordinary [`Reporter`]: it folds every event into counters and the
//! current state, and [`StatsReporter::snapshot`] returns a plain struct. Unlike a watch channel,
//! nothing is lost between two reads: counts are cumulative.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::event::{CoordinatorEvent, EventKind};
use crate::reporter::contract::Reporter;

/// The connection's state as the events tell it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// No `Connected` event yet.
    #[default]
    Connecting,
    /// Connected (or reconnected).
    Connected,
    /// Disconnected; the client is reconnecting.
    Disconnected,
    /// The coordinator shut down.
    ShutDown,
}

/// A subscription's state as the events tell it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    /// Subscribed and caught up.
    #[default]
    Live,
    /// Delivering a replay.
    Replaying,
    /// Recreating its consumer after a fault.
    Recovering,
    /// Ended.
    Closed,
}

/// One subscription's numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionStats {
    /// Current state.
    pub state: SubscriptionState,
    /// The last sequence handed to the application.
    pub last_delivered: Option<u64>,
    /// The last sequence saved in the checkpoint store, or committed with the application's
    /// transaction (`CheckpointCommitted`).
    pub last_checkpointed: Option<u64>,
    /// Stream sequences lost to retention before delivery (a count of sequences, not of gaps).
    pub events_lost: u64,
    /// Times the consumer was recreated.
    pub recreations: u64,
}

/// One transactional outbox's numbers, from its relay's events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStats {
    /// Rows relayed to the stream, duplicates included (counted from `OutboxRelayed`, which
    /// is per-row and opt-in: 0 when the reporter declined it).
    pub relayed: u64,
    /// Rows waiting at the relay's last non-empty read (`OutboxBacklog`).
    pub pending: u64,
    /// How long the oldest of those rows had waited (`OutboxBacklog`).
    pub oldest_age: Duration,
    /// Failed relay attempts (`OutboxRelayFailed`).
    pub relay_failures: u64,
}

/// A snapshot of a coordinator's state and cumulative counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Events reported, per kind.
    pub events: BTreeMap<EventKind, u64>,
    /// The connection's state.
    pub connection: ConnectionState,
    /// Per subscription, by consumer name.
    pub subscriptions: BTreeMap<String, SubscriptionStats>,
    /// Per transactional outbox, by outbox name.
    #[serde(default)]
    pub outboxes: BTreeMap<String, OutboxStats>,
}

impl Stats {
    /// How many events of `kind` were reported.
    pub fn count(&self, kind: EventKind) -> u64 {
        self.events.get(&kind).copied().unwrap_or(0)
    }

    /// Folds one event into the snapshot.
    pub fn apply(&mut self, event: &CoordinatorEvent) {
        *self.events.entry(event.kind()).or_default() += 1;
        match event {
            CoordinatorEvent::Connected { .. } | CoordinatorEvent::Reconnected { .. } => {
                self.connection = ConnectionState::Connected
            }
            CoordinatorEvent::Disconnected { .. } => {
                self.connection = ConnectionState::Disconnected
            }
            CoordinatorEvent::Shutdown { .. } => self.connection = ConnectionState::ShutDown,
            _ => {}
        }
        if let Some(outbox) = event.outbox() {
            let outbox = self.outboxes.entry(outbox.to_string()).or_default();
            match event {
                CoordinatorEvent::OutboxRelayed { .. } => outbox.relayed += 1,
                CoordinatorEvent::OutboxBacklog {
                    pending,
                    oldest_age,
                    ..
                } => {
                    outbox.pending = *pending;
                    outbox.oldest_age = *oldest_age;
                }
                CoordinatorEvent::OutboxRelayFailed { .. } => outbox.relay_failures += 1,
                _ => {}
            }
            return;
        }
        let Some(consumer) = event.consumer() else {
            return;
        };
        let sub = self.subscriptions.entry(consumer.to_string()).or_default();
        match event {
            CoordinatorEvent::Subscribed { .. } => sub.state = SubscriptionState::Live,
            CoordinatorEvent::Resubscribing { .. } => sub.state = SubscriptionState::Recovering,
            CoordinatorEvent::ConsumerRecreated { .. } => {
                sub.state = SubscriptionState::Live;
                sub.recreations += 1;
            }
            CoordinatorEvent::ReplayStarted { .. } => sub.state = SubscriptionState::Replaying,
            CoordinatorEvent::ReplayCompleted { .. } => sub.state = SubscriptionState::Live,
            CoordinatorEvent::EventsLost { .. } => {
                sub.events_lost += event.lost_count().unwrap_or_default()
            }
            CoordinatorEvent::Delivered { seq, .. } => sub.last_delivered = Some(*seq),
            CoordinatorEvent::CheckpointSaved { seq, .. }
            | CoordinatorEvent::CheckpointCommitted { seq, .. } => {
                sub.last_checkpointed = Some(*seq)
            }
            CoordinatorEvent::Unsubscribed { .. } => sub.state = SubscriptionState::Closed,
            _ => {}
        }
    }
}

/// A reporter that keeps a [`Stats`] snapshot; clones share it.
///
/// ```
/// use herald::{Coordinator, EventKind, StatsReporter, StartPosition};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let stats = StatsReporter::new();
/// let coordinator = Coordinator::builder().reporter(stats.clone()).connect().await?;
/// coordinator.publish("alerts.1", "x").await?;
/// let snapshot = stats.snapshot();
/// assert_eq!(snapshot.count(EventKind::Published), 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct StatsReporter {
    stats: Arc<Mutex<Stats>>,
}

impl StatsReporter {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the current numbers.
    pub fn snapshot(&self) -> Stats {
        self.stats.lock().clone()
    }
}

impl Reporter for StatsReporter {
    fn report(&self, event: &CoordinatorEvent) {
        self.stats.lock().apply(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_events_fill_their_outbox_and_no_subscription() {
        let mut stats = Stats::default();
        let outbox: Arc<str> = "alerts_outbox".into();
        for row in 1..=3 {
            stats.apply(&CoordinatorEvent::OutboxRelayed {
                outbox: outbox.clone(),
                row,
                seq: row + 10,
                duplicate: false,
                lag: Duration::from_millis(2),
            });
        }
        stats.apply(&CoordinatorEvent::OutboxBacklog {
            outbox: outbox.clone(),
            pending: 7,
            oldest_age: Duration::from_secs(2),
        });
        stats.apply(&CoordinatorEvent::OutboxRelayFailed {
            outbox,
            attempt: 1,
            delay: Duration::from_millis(100),
            error: "connection refused".into(),
        });
        let expected = OutboxStats {
            relayed: 3,
            pending: 7,
            oldest_age: Duration::from_secs(2),
            relay_failures: 1,
        };
        assert_eq!(stats.outboxes.get("alerts_outbox"), Some(&expected));
        assert!(stats.subscriptions.is_empty());
        assert_eq!(stats.count(EventKind::OutboxRelayed), 3);
    }

    #[test]
    fn a_committed_checkpoint_is_the_subscriptions_checkpoint() {
        let mut stats = Stats::default();
        stats.apply(&CoordinatorEvent::CheckpointCommitted {
            stream: "S".into(),
            consumer: "c".into(),
            seq: 9,
        });
        assert_eq!(stats.subscriptions["c"].last_checkpointed, Some(9));
    }
}
