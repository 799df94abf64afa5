//! What kind of event, how severe, and why a subscription resubscribed: the small `Copy`
//! vocabulary reporters filter and index on, without looking at an event's fields.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why a subscription is being resubscribed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum ResubscribeCause {
    /// Idle heartbeats stopped arriving; the consumer is presumed gone or the server frozen.
    HeartbeatsMissed {
        /// Consecutive heartbeats missed.
        missed: u32,
    },
    /// The server deleted the consumer, or an operator did.
    ConsumerDeleted,
    /// Consumer sequences jumped: messages were skipped between the server and Herald.
    SequenceGap {
        /// The consumer sequence Herald expected next.
        expected: u64,
        /// The consumer sequence that arrived.
        received: u64,
    },
    /// The connection to the server was lost.
    Disconnected,
    /// A previous attempt to recreate the consumer failed.
    RetryFailed {
        /// The error of the failed attempt.
        error: Arc<str>,
    },
    /// Any other fault the backend reported.
    Fault {
        /// What the backend said.
        error: Arc<str>,
    },
}

impl ResubscribeCause {
    /// The cause's stable `snake_case` name, as used in logs and metrics attributes.
    ///
    /// ```
    /// assert_eq!(herald::ResubscribeCause::ConsumerDeleted.name(), "consumer_deleted");
    /// ```
    pub const fn name(&self) -> &'static str {
        match self {
            Self::HeartbeatsMissed { .. } => "heartbeats_missed",
            Self::ConsumerDeleted => "consumer_deleted",
            Self::SequenceGap { .. } => "sequence_gap",
            Self::Disconnected => "disconnected",
            Self::RetryFailed { .. } => "retry_failed",
            Self::Fault { .. } => "fault",
        }
    }
}

/// How much attention an event deserves; reporters map it to log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Per-message events: high volume, usually filtered out.
    Trace,
    /// Detail useful while debugging.
    Debug,
    /// Routine lifecycle: connected, subscribed, replay finished.
    Info,
    /// Churn that Herald recovers from by itself: disconnects, missed heartbeats, retries.
    Warn,
    /// Loss, deletion and failures that need a person: events lost, checkpoint failed,
    /// checkpoint commit failed.
    Error,
}

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $kind:ident = $name:literal,)*) => {
        /// The kind of a [`CoordinatorEvent`](crate::CoordinatorEvent), without its fields: cheap to copy, compare and hash.
        ///
        /// Reporters receive it in [`Reporter::interest`](crate::Reporter::interest) before an
        /// event is built, so they can decline kinds they do not want at no cost.
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum EventKind {
            $($(#[$doc])* $kind,)*
        }

        impl EventKind {
            /// Every kind, in declaration order: `ALL[kind.index()] == kind`.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$kind,)*];

            /// How many kinds there are: the length of a table indexed by [`index`](Self::index).
            pub const COUNT: usize = Self::ALL.len();

            /// The kind's stable `snake_case` name, as used in logs and metrics.
            pub const fn name(self) -> &'static str {
                match self {
                    $(EventKind::$kind => $name,)*
                }
            }
        }
    };
}

event_kinds! {
    /// See [`CoordinatorEvent::Connected`](crate::CoordinatorEvent::Connected).
    Connected = "connected",
    /// See [`CoordinatorEvent::Disconnected`](crate::CoordinatorEvent::Disconnected).
    Disconnected = "disconnected",
    /// See [`CoordinatorEvent::Reconnecting`](crate::CoordinatorEvent::Reconnecting).
    Reconnecting = "reconnecting",
    /// See [`CoordinatorEvent::Reconnected`](crate::CoordinatorEvent::Reconnected).
    Reconnected = "reconnected",
    /// See [`CoordinatorEvent::LameDuck`](crate::CoordinatorEvent::LameDuck).
    LameDuck = "lame_duck",
    /// See [`CoordinatorEvent::SlowConsumer`](crate::CoordinatorEvent::SlowConsumer).
    SlowConsumer = "slow_consumer",
    /// See [`CoordinatorEvent::ServerError`](crate::CoordinatorEvent::ServerError).
    ServerError = "server_error",
    /// See [`CoordinatorEvent::StreamReady`](crate::CoordinatorEvent::StreamReady).
    StreamReady = "stream_ready",
    /// See [`CoordinatorEvent::Subscribed`](crate::CoordinatorEvent::Subscribed).
    Subscribed = "subscribed",
    /// See [`CoordinatorEvent::HeartbeatMissed`](crate::CoordinatorEvent::HeartbeatMissed).
    HeartbeatMissed = "heartbeat_missed",
    /// See [`CoordinatorEvent::ConsumerDeleted`](crate::CoordinatorEvent::ConsumerDeleted).
    ConsumerDeleted = "consumer_deleted",
    /// See [`CoordinatorEvent::Resubscribing`](crate::CoordinatorEvent::Resubscribing).
    Resubscribing = "resubscribing",
    /// See [`CoordinatorEvent::ConsumerRecreated`](crate::CoordinatorEvent::ConsumerRecreated).
    ConsumerRecreated = "consumer_recreated",
    /// See [`CoordinatorEvent::ReplayStarted`](crate::CoordinatorEvent::ReplayStarted).
    ReplayStarted = "replay_started",
    /// See [`CoordinatorEvent::ReplayCompleted`](crate::CoordinatorEvent::ReplayCompleted).
    ReplayCompleted = "replay_completed",
    /// See [`CoordinatorEvent::EventsLost`](crate::CoordinatorEvent::EventsLost).
    EventsLost = "events_lost",
    /// See [`CoordinatorEvent::StreamReset`](crate::CoordinatorEvent::StreamReset).
    StreamReset = "stream_reset",
    /// See [`CoordinatorEvent::CheckpointSaved`](crate::CoordinatorEvent::CheckpointSaved).
    CheckpointSaved = "checkpoint_saved",
    /// See [`CoordinatorEvent::CheckpointFailed`](crate::CoordinatorEvent::CheckpointFailed).
    CheckpointFailed = "checkpoint_failed",
    /// See [`CoordinatorEvent::Unsubscribed`](crate::CoordinatorEvent::Unsubscribed).
    Unsubscribed = "unsubscribed",
    /// See [`CoordinatorEvent::Published`](crate::CoordinatorEvent::Published).
    Published = "published",
    /// See [`CoordinatorEvent::PublishFailed`](crate::CoordinatorEvent::PublishFailed).
    PublishFailed = "publish_failed",
    /// See [`CoordinatorEvent::Delivered`](crate::CoordinatorEvent::Delivered).
    Delivered = "delivered",
    /// See [`CoordinatorEvent::DecodeFailed`](crate::CoordinatorEvent::DecodeFailed).
    DecodeFailed = "decode_failed",
    /// See [`CoordinatorEvent::Shutdown`](crate::CoordinatorEvent::Shutdown).
    Shutdown = "shutdown",
    /// See [`CoordinatorEvent::OutboxRelayed`](crate::CoordinatorEvent::OutboxRelayed).
    OutboxRelayed = "outbox_relayed",
    /// See [`CoordinatorEvent::OutboxBacklog`](crate::CoordinatorEvent::OutboxBacklog).
    OutboxBacklog = "outbox_backlog",
    /// See [`CoordinatorEvent::OutboxRelayFailed`](crate::CoordinatorEvent::OutboxRelayFailed).
    OutboxRelayFailed = "outbox_relay_failed",
    /// See [`CoordinatorEvent::CheckpointCommitted`](crate::CoordinatorEvent::CheckpointCommitted).
    CheckpointCommitted = "checkpoint_committed",
    /// See [`CoordinatorEvent::CheckpointCommitFailed`](crate::CoordinatorEvent::CheckpointCommitFailed).
    CheckpointCommitFailed = "checkpoint_commit_failed",
}

impl EventKind {
    /// The kind's position in [`EventKind::ALL`], below [`EventKind::COUNT`]: an index into
    /// per-kind tables (counters, instruments) that needs no hashing.
    ///
    /// ```
    /// use herald::EventKind;
    /// let mut counts = [0u64; EventKind::COUNT];
    /// counts[EventKind::EventsLost.index()] += 1;
    /// assert_eq!(EventKind::ALL[EventKind::EventsLost.index()], EventKind::EventsLost);
    /// ```
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl EventKind {
    /// True for the per-message kinds (`Published`, `Delivered`, `OutboxRelayed`, ...): one
    /// per message or outbox row, high volume, so reporters usually opt out of them through
    /// [`Reporter::interest`](crate::Reporter::interest).
    pub const fn is_per_message(self) -> bool {
        matches!(
            self,
            EventKind::Published
                | EventKind::Delivered
                | EventKind::CheckpointSaved
                | EventKind::OutboxRelayed
                | EventKind::CheckpointCommitted
        )
    }
}

impl EventKind {
    /// The severity every event of this kind has.
    pub const fn severity(self) -> Severity {
        match self {
            EventKind::Published
            | EventKind::Delivered
            | EventKind::CheckpointSaved
            | EventKind::OutboxRelayed
            | EventKind::CheckpointCommitted => Severity::Trace,
            EventKind::Connected
            | EventKind::StreamReady
            | EventKind::Subscribed
            | EventKind::ReplayStarted
            | EventKind::ReplayCompleted
            | EventKind::Unsubscribed
            | EventKind::Shutdown
            | EventKind::OutboxBacklog => Severity::Info,
            EventKind::Disconnected
            | EventKind::Reconnecting
            | EventKind::Reconnected
            | EventKind::LameDuck
            | EventKind::SlowConsumer
            | EventKind::HeartbeatMissed
            | EventKind::Resubscribing
            | EventKind::ConsumerRecreated
            | EventKind::PublishFailed
            | EventKind::DecodeFailed
            | EventKind::OutboxRelayFailed => Severity::Warn,
            EventKind::ServerError
            | EventKind::ConsumerDeleted
            | EventKind::EventsLost
            | EventKind::StreamReset
            | EventKind::CheckpointFailed
            | EventKind::CheckpointCommitFailed => Severity::Error,
        }
    }
}

/// A set of [`EventKind`]s: one bit per kind, `Copy`, and usable in `const` items.
///
/// Reporters keep the kinds they want in one, so [`Reporter::interest`](crate::Reporter::interest)
/// is a single bit test.
///
/// ```
/// use herald::{EventKind, EventKindSet};
/// const LOSS: EventKindSet = EventKindSet::EMPTY
///     .with(EventKind::EventsLost)
///     .with(EventKind::StreamReset);
/// assert!(LOSS.contains(EventKind::EventsLost));
/// assert!(!LOSS.contains(EventKind::Delivered));
/// assert_eq!(LOSS.len(), 2);
/// assert!(EventKindSet::ALL.without(EventKind::Delivered).contains(EventKind::Published));
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EventKindSet(u64);

// One bit per kind: a 65th kind needs a wider set.
const _: () = assert!(EventKind::COUNT <= 64);

impl EventKindSet {
    /// No kind.
    pub const EMPTY: EventKindSet = EventKindSet(0);

    /// Every kind.
    pub const ALL: EventKindSet = EventKindSet(u64::MAX >> (64 - EventKind::COUNT));

    /// The per-message kinds ([`EventKind::is_per_message`]).
    pub const PER_MESSAGE: EventKindSet = {
        let mut set = EventKindSet::EMPTY;
        let mut i = 0;
        while i < EventKind::COUNT {
            if EventKind::ALL[i].is_per_message() {
                set = set.with(EventKind::ALL[i]);
            }
            i += 1;
        }
        set
    };

    /// The kinds in `kinds`.
    pub const fn of(kinds: &[EventKind]) -> EventKindSet {
        let mut set = EventKindSet::EMPTY;
        let mut i = 0;
        while i < kinds.len() {
            set = set.with(kinds[i]);
            i += 1;
        }
        set
    }

    /// This set with `kind` added.
    #[must_use]
    pub const fn with(self, kind: EventKind) -> EventKindSet {
        EventKindSet(self.0 | 1 << kind.index())
    }

    /// This set with `kind` removed.
    #[must_use]
    pub const fn without(self, kind: EventKind) -> EventKindSet {
        EventKindSet(self.0 & !(1 << kind.index()))
    }

    /// The kinds in either set.
    #[must_use]
    pub const fn union(self, other: EventKindSet) -> EventKindSet {
        EventKindSet(self.0 | other.0)
    }

    /// The kinds of this set that are not in `other`.
    #[must_use]
    pub const fn difference(self, other: EventKindSet) -> EventKindSet {
        EventKindSet(self.0 & !other.0)
    }

    /// Whether `kind` is in the set.
    #[inline]
    pub const fn contains(self, kind: EventKind) -> bool {
        self.0 & (1 << kind.index()) != 0
    }

    /// Adds `kind`.
    pub fn insert(&mut self, kind: EventKind) {
        *self = self.with(kind);
    }

    /// Removes `kind`.
    pub fn remove(&mut self, kind: EventKind) {
        *self = self.without(kind);
    }

    /// How many kinds the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set holds no kind.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = EventKind> {
        EventKind::ALL
            .iter()
            .copied()
            .filter(move |kind| self.contains(*kind))
    }
}

impl fmt::Debug for EventKindSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<EventKind> for EventKindSet {
    fn from_iter<I: IntoIterator<Item = EventKind>>(kinds: I) -> Self {
        kinds
            .into_iter()
            .fold(EventKindSet::EMPTY, EventKindSet::with)
    }
}

impl Extend<EventKind> for EventKindSet {
    fn extend<I: IntoIterator<Item = EventKind>>(&mut self, kinds: I) {
        *self = kinds.into_iter().fold(*self, EventKindSet::with);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_serde_and_have_unique_names() {
        let mut names = std::collections::HashSet::new();
        for kind in EventKind::ALL {
            assert!(names.insert(kind.name()), "duplicate name {}", kind.name());
            let json = serde_json::to_string(kind).expect("serialize");
            assert_eq!(json, format!("\"{}\"", kind.name()));
            let back: EventKind = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, *kind);
        }
    }

    #[test]
    fn kind_indices_match_all_and_sets_hold_exactly_their_kinds() {
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind}");
            assert!(EventKindSet::ALL.contains(*kind));
            assert!(!EventKindSet::EMPTY.contains(*kind));
            let one = EventKindSet::of(&[*kind]);
            assert_eq!(one.iter().collect::<Vec<_>>(), vec![*kind]);
            assert_eq!(EventKindSet::ALL.without(*kind).len(), EventKind::COUNT - 1);
            assert_eq!(
                EventKindSet::PER_MESSAGE.contains(*kind),
                kind.is_per_message()
            );
        }
        assert_eq!(EventKindSet::ALL.len(), EventKind::COUNT);
        let collected: EventKindSet = EventKind::ALL.iter().copied().collect();
        assert_eq!(collected, EventKindSet::ALL);
    }
}
