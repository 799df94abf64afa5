//! What every [`CoordinatorEvent`] can be asked without matching on it: its kind, its
//! severity, and the stream, consumer or outbox it is about.

use std::sync::Arc;

use crate::event::{CoordinatorEvent, EventKind, Severity};

impl CoordinatorEvent {
    /// The event's kind, without its fields.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Connected { .. } => EventKind::Connected,
            Self::Disconnected { .. } => EventKind::Disconnected,
            Self::Reconnecting { .. } => EventKind::Reconnecting,
            Self::Reconnected { .. } => EventKind::Reconnected,
            Self::LameDuck { .. } => EventKind::LameDuck,
            Self::SlowConsumer { .. } => EventKind::SlowConsumer,
            Self::ServerError { .. } => EventKind::ServerError,
            Self::StreamReady { .. } => EventKind::StreamReady,
            Self::Subscribed { .. } => EventKind::Subscribed,
            Self::HeartbeatMissed { .. } => EventKind::HeartbeatMissed,
            Self::ConsumerDeleted { .. } => EventKind::ConsumerDeleted,
            Self::Resubscribing { .. } => EventKind::Resubscribing,
            Self::ConsumerRecreated { .. } => EventKind::ConsumerRecreated,
            Self::ReplayStarted { .. } => EventKind::ReplayStarted,
            Self::ReplayCompleted { .. } => EventKind::ReplayCompleted,
            Self::EventsLost { .. } => EventKind::EventsLost,
            Self::StreamReset { .. } => EventKind::StreamReset,
            Self::CheckpointSaved { .. } => EventKind::CheckpointSaved,
            Self::CheckpointFailed { .. } => EventKind::CheckpointFailed,
            Self::Unsubscribed { .. } => EventKind::Unsubscribed,
            Self::Published { .. } => EventKind::Published,
            Self::PublishFailed { .. } => EventKind::PublishFailed,
            Self::Delivered { .. } => EventKind::Delivered,
            Self::DecodeFailed { .. } => EventKind::DecodeFailed,
            Self::Shutdown { .. } => EventKind::Shutdown,
            Self::OutboxRelayed { .. } => EventKind::OutboxRelayed,
            Self::OutboxBacklog { .. } => EventKind::OutboxBacklog,
            Self::OutboxRelayFailed { .. } => EventKind::OutboxRelayFailed,
            Self::CheckpointCommitted { .. } => EventKind::CheckpointCommitted,
            Self::CheckpointCommitFailed { .. } => EventKind::CheckpointCommitFailed,
        }
    }

    /// How much attention the event deserves.
    pub fn severity(&self) -> Severity {
        self.kind().severity()
    }

    /// The stream the event is about; `None` for connection and outbox events.
    pub fn stream(&self) -> Option<&Arc<str>> {
        self.names().0
    }

    /// The consumer the event is about, for subscription events.
    pub fn consumer(&self) -> Option<&Arc<str>> {
        self.names().1
    }

    /// The transactional outbox the event is about, for outbox events.
    ///
    /// ```
    /// use herald::CoordinatorEvent;
    /// let backlog = CoordinatorEvent::OutboxBacklog {
    ///     outbox: "alerts_outbox".into(),
    ///     pending: 3,
    ///     oldest_age: std::time::Duration::from_millis(40),
    /// };
    /// assert_eq!(backlog.outbox().map(|o| &**o), Some("alerts_outbox"));
    /// assert_eq!(backlog.stream(), None);
    /// ```
    pub fn outbox(&self) -> Option<&Arc<str>> {
        match self {
            Self::OutboxRelayed { outbox, .. }
            | Self::OutboxBacklog { outbox, .. }
            | Self::OutboxRelayFailed { outbox, .. } => Some(outbox),
            _ => None,
        }
    }

    /// The stream and the consumer an event names, each where it has one.
    fn names(&self) -> (Option<&Arc<str>>, Option<&Arc<str>>) {
        match self {
            Self::Subscribed {
                stream, consumer, ..
            }
            | Self::HeartbeatMissed {
                stream, consumer, ..
            }
            | Self::ConsumerDeleted { stream, consumer }
            | Self::Resubscribing {
                stream, consumer, ..
            }
            | Self::ConsumerRecreated {
                stream, consumer, ..
            }
            | Self::ReplayStarted {
                stream, consumer, ..
            }
            | Self::ReplayCompleted {
                stream, consumer, ..
            }
            | Self::EventsLost {
                stream, consumer, ..
            }
            | Self::StreamReset {
                stream, consumer, ..
            }
            | Self::CheckpointSaved {
                stream, consumer, ..
            }
            | Self::CheckpointFailed {
                stream, consumer, ..
            }
            | Self::Unsubscribed {
                stream, consumer, ..
            }
            | Self::Delivered {
                stream, consumer, ..
            }
            | Self::DecodeFailed {
                stream, consumer, ..
            }
            | Self::CheckpointCommitted {
                stream, consumer, ..
            }
            | Self::CheckpointCommitFailed {
                stream, consumer, ..
            } => (Some(stream), Some(consumer)),
            Self::StreamReady { stream, .. }
            | Self::Published { stream, .. }
            | Self::PublishFailed { stream, .. }
            | Self::Shutdown { stream, .. } => (Some(stream), None),
            Self::Connected { .. }
            | Self::Disconnected { .. }
            | Self::Reconnecting { .. }
            | Self::Reconnected { .. }
            | Self::LameDuck { .. }
            | Self::SlowConsumer { .. }
            | Self::ServerError { .. }
            | Self::OutboxRelayed { .. }
            | Self::OutboxBacklog { .. }
            | Self::OutboxRelayFailed { .. } => (None, None),
        }
    }

    /// For [`EventsLost`](Self::EventsLost): how many stream sequences were lost,
    /// `last - first + 1` (sequences, not matching events). `None` for every other kind.
    ///
    /// ```
    /// use herald::CoordinatorEvent;
    /// let lost = CoordinatorEvent::EventsLost {
    ///     stream: "S".into(),
    ///     consumer: "c".into(),
    ///     first: 10,
    ///     last: 14,
    /// };
    /// assert_eq!(lost.lost_count(), Some(5));
    /// ```
    pub fn lost_count(&self) -> Option<u64> {
        match self {
            Self::EventsLost { first, last, .. } => {
                Some(last.saturating_sub(*first).saturating_add(1))
            }
            _ => None,
        }
    }
}
