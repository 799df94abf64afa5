//! The typed events a coordinator reports: one [`CoordinatorEvent`] per state change.
//!
//! Every variant carries the context a reader needs without looking anything up: the stream,
//! the consumer, the sequences, the durations, the cause. Names are `Arc<str>`, so cloning an
//! event never copies a string.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::subscription::StartPosition;

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

impl fmt::Display for ResubscribeCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeartbeatsMissed { missed } => write!(f, "{missed} heartbeats missed"),
            Self::ConsumerDeleted => f.write_str("consumer deleted"),
            Self::SequenceGap { expected, received } => write!(
                f,
                "consumer sequence gap (expected {expected}, received {received})"
            ),
            Self::Disconnected => f.write_str("disconnected"),
            Self::RetryFailed { error } => write!(f, "previous attempt failed: {error}"),
            Self::Fault { error } => write!(f, "{error}"),
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
    /// Loss, deletion and failures that need a person: events lost, checkpoint failed.
    Error,
}

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $kind:ident = $name:literal,)*) => {
        /// The kind of a [`CoordinatorEvent`], without its fields: cheap to copy, compare and hash.
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
    /// See [`CoordinatorEvent::Connected`].
    Connected = "connected",
    /// See [`CoordinatorEvent::Disconnected`].
    Disconnected = "disconnected",
    /// See [`CoordinatorEvent::Reconnecting`].
    Reconnecting = "reconnecting",
    /// See [`CoordinatorEvent::Reconnected`].
    Reconnected = "reconnected",
    /// See [`CoordinatorEvent::LameDuck`].
    LameDuck = "lame_duck",
    /// See [`CoordinatorEvent::SlowConsumer`].
    SlowConsumer = "slow_consumer",
    /// See [`CoordinatorEvent::ServerError`].
    ServerError = "server_error",
    /// See [`CoordinatorEvent::StreamReady`].
    StreamReady = "stream_ready",
    /// See [`CoordinatorEvent::Subscribed`].
    Subscribed = "subscribed",
    /// See [`CoordinatorEvent::HeartbeatMissed`].
    HeartbeatMissed = "heartbeat_missed",
    /// See [`CoordinatorEvent::ConsumerDeleted`].
    ConsumerDeleted = "consumer_deleted",
    /// See [`CoordinatorEvent::Resubscribing`].
    Resubscribing = "resubscribing",
    /// See [`CoordinatorEvent::ConsumerRecreated`].
    ConsumerRecreated = "consumer_recreated",
    /// See [`CoordinatorEvent::ReplayStarted`].
    ReplayStarted = "replay_started",
    /// See [`CoordinatorEvent::ReplayCompleted`].
    ReplayCompleted = "replay_completed",
    /// See [`CoordinatorEvent::EventsLost`].
    EventsLost = "events_lost",
    /// See [`CoordinatorEvent::StreamReset`].
    StreamReset = "stream_reset",
    /// See [`CoordinatorEvent::CheckpointSaved`].
    CheckpointSaved = "checkpoint_saved",
    /// See [`CoordinatorEvent::CheckpointFailed`].
    CheckpointFailed = "checkpoint_failed",
    /// See [`CoordinatorEvent::Unsubscribed`].
    Unsubscribed = "unsubscribed",
    /// See [`CoordinatorEvent::Published`].
    Published = "published",
    /// See [`CoordinatorEvent::PublishFailed`].
    PublishFailed = "publish_failed",
    /// See [`CoordinatorEvent::Delivered`].
    Delivered = "delivered",
    /// See [`CoordinatorEvent::DecodeFailed`].
    DecodeFailed = "decode_failed",
    /// See [`CoordinatorEvent::Shutdown`].
    Shutdown = "shutdown",
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
    /// True for the per-message kinds (`Published`, `Delivered`, ...): high volume, so reporters
    /// usually opt out of them through [`Reporter::interest`](crate::Reporter::interest).
    pub const fn is_per_message(self) -> bool {
        matches!(
            self,
            EventKind::Published | EventKind::Delivered | EventKind::CheckpointSaved
        )
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

/// One state change of a coordinator, reported through a [`Reporter`](crate::Reporter).
///
/// Events are reported exactly once, in the order they happened, from the task that made the
/// change, and before its effect reaches the application: `ReplayStarted` is reported before the
/// first replayed message is yielded.
///
/// Server addresses are redacted: no user, password or token ever appears in an event.
///
/// ```
/// use herald::{CoordinatorEvent, EventKind, Severity};
/// let event = CoordinatorEvent::EventsLost {
///     stream: "HERALD".into(),
///     consumer: "node-a".into(),
///     first: 10,
///     last: 14,
/// };
/// assert_eq!(event.kind(), EventKind::EventsLost);
/// assert_eq!(event.severity(), Severity::Error);
/// assert_eq!(
///     event.to_string(),
///     "consumer node-a on stream HERALD lost events 10..=14 (5 events) to retention before they were delivered"
/// );
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CoordinatorEvent {
    /// The coordinator connected to a server (the embedded backend: at start).
    Connected {
        /// The server's address, with credentials redacted.
        server: Arc<str>,
    },
    /// The connection to the server was lost; reconnection starts.
    Disconnected {
        /// The server's address, with credentials redacted.
        server: Arc<str>,
        /// Why, as far as the client knows.
        cause: Arc<str>,
    },
    /// A reconnection attempt is about to be made after `delay`.
    Reconnecting {
        /// Attempts so far, starting at 1.
        attempt: u32,
        /// How long the client waits before this attempt.
        delay: Duration,
    },
    /// The connection is back after `downtime`.
    Reconnected {
        /// The server's address, with credentials redacted.
        server: Arc<str>,
        /// Time between `Disconnected` and now.
        downtime: Duration,
    },
    /// The server entered lame duck mode: it will shut down soon, clients should move.
    LameDuck {
        /// The server's address, with credentials redacted.
        server: Arc<str>,
    },
    /// The client could not keep up and the server or client dropped messages.
    SlowConsumer {
        /// The client-side subscription id that fell behind.
        sid: u64,
    },
    /// The server sent an error that is not tied to one operation.
    ServerError {
        /// The server's message (never contains credentials).
        message: Arc<str>,
    },
    /// The coordinator's stream exists with the expected configuration.
    StreamReady {
        /// The stream.
        stream: Arc<str>,
        /// True when Herald created it, false when it already existed.
        created: bool,
        /// Messages older than this are removed.
        max_age: Duration,
        /// At most this many messages are kept, if set.
        max_msgs: Option<u64>,
        /// At most this many bytes are kept, if set.
        max_bytes: Option<u64>,
        /// The first sequence in the stream (0 when empty).
        first_seq: u64,
        /// The last sequence ever assigned (0 when nothing was ever published).
        last_seq: u64,
    },
    /// A subscription started.
    Subscribed {
        /// The stream.
        stream: Arc<str>,
        /// The consumer's unique name.
        consumer: Arc<str>,
        /// The filter, as a full subject.
        filter: Arc<str>,
        /// The requested start position.
        start: StartPosition,
        /// The checkpoint found in the store, if any.
        checkpoint: Option<u64>,
    },
    /// Idle heartbeats were not received in time.
    HeartbeatMissed {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// Consecutive heartbeat checks missed (the consumer is recreated from the second).
        missed: u32,
    },
    /// The consumer disappeared from the server.
    ConsumerDeleted {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
    },
    /// The subscription will recreate its consumer after `delay`.
    Resubscribing {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// Attempts so far for this fault, starting at 1.
        attempt: u32,
        /// Backoff before the attempt (capped and jittered).
        delay: Duration,
        /// What made the subscription resubscribe.
        cause: ResubscribeCause,
    },
    /// The consumer was recreated and resumes at `resume_from` (= last processed + 1).
    ConsumerRecreated {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// The first stream sequence the new consumer delivers.
        resume_from: u64,
    },
    /// Messages published before the (re)subscription are about to be delivered.
    ReplayStarted {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// First stream sequence of the replay.
        from: u64,
        /// Last stream sequence of the stream when the replay started.
        to: u64,
    },
    /// The replay reached `to` (or the end of the matching messages): the subscription is live.
    ReplayCompleted {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// Messages delivered during the replay.
        events: u64,
        /// Time from `ReplayStarted` to the last replayed message.
        elapsed: Duration,
    },
    /// Retention removed stream sequences `first..=last` before they were delivered.
    ///
    /// For a subscription whose filter does not cover the whole stream, the range names the
    /// stream sequences that may have held matching events: the server no longer knows their
    /// subjects.
    EventsLost {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// First lost stream sequence.
        first: u64,
        /// Last lost stream sequence.
        last: u64,
    },
    /// The stream's sequences went backwards (it was deleted and recreated): the subscription
    /// starts over at the new stream's first sequence, and its checkpoint with it.
    StreamReset {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// The position the subscription had reached on the old stream.
        position: u64,
        /// The new stream's last sequence.
        last_seq: u64,
    },
    /// The checkpoint was written to its store.
    CheckpointSaved {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// The saved sequence: everything up to it has been processed.
        seq: u64,
    },
    /// The checkpoint could not be read or written; the subscription does not skip ahead.
    CheckpointFailed {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// The sequence that should have been saved (0 when loading failed).
        seq: u64,
        /// What went wrong.
        error: Arc<str>,
    },
    /// A subscription ended.
    Unsubscribed {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// The last sequence the application acknowledged (0 when none).
        last_processed: u64,
    },
    /// A message was stored in the stream.
    Published {
        /// The stream.
        stream: Arc<str>,
        /// The full subject.
        subject: Arc<str>,
        /// The message's stream sequence.
        seq: u64,
        /// True when the message id was seen before and nothing new was stored.
        duplicate: bool,
    },
    /// A publish attempt failed.
    PublishFailed {
        /// The stream.
        stream: Arc<str>,
        /// The full subject.
        subject: Arc<str>,
        /// Attempts so far, starting at 1.
        attempt: u32,
        /// True when Herald will retry before the deadline.
        will_retry: bool,
        /// What went wrong.
        error: Arc<str>,
    },
    /// A message was handed to the application.
    Delivered {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// The message's stream sequence.
        seq: u64,
    },
    /// A message's payload could not be decoded into the subscription's type.
    DecodeFailed {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// The message's stream sequence.
        seq: u64,
        /// The decoder's error.
        error: Arc<str>,
    },
    /// The coordinator shut down; subscriptions end.
    Shutdown {
        /// The stream.
        stream: Arc<str>,
        /// Subscriptions that were open.
        subscriptions: u64,
    },
}

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
        }
    }

    /// How much attention the event deserves.
    pub fn severity(&self) -> Severity {
        self.kind().severity()
    }

    /// The stream the event is about; `None` for connection events.
    pub fn stream(&self) -> Option<&Arc<str>> {
        match self {
            Self::StreamReady { stream, .. }
            | Self::Subscribed { stream, .. }
            | Self::HeartbeatMissed { stream, .. }
            | Self::ConsumerDeleted { stream, .. }
            | Self::Resubscribing { stream, .. }
            | Self::ConsumerRecreated { stream, .. }
            | Self::ReplayStarted { stream, .. }
            | Self::ReplayCompleted { stream, .. }
            | Self::EventsLost { stream, .. }
            | Self::StreamReset { stream, .. }
            | Self::CheckpointSaved { stream, .. }
            | Self::CheckpointFailed { stream, .. }
            | Self::Unsubscribed { stream, .. }
            | Self::Published { stream, .. }
            | Self::PublishFailed { stream, .. }
            | Self::Delivered { stream, .. }
            | Self::DecodeFailed { stream, .. }
            | Self::Shutdown { stream, .. } => Some(stream),
            Self::Connected { .. }
            | Self::Disconnected { .. }
            | Self::Reconnecting { .. }
            | Self::Reconnected { .. }
            | Self::LameDuck { .. }
            | Self::SlowConsumer { .. }
            | Self::ServerError { .. } => None,
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
            Self::EventsLost { first, last, .. } => Some(lost_count(*first, *last)),
            _ => None,
        }
    }

    /// The consumer the event is about, for subscription events.
    pub fn consumer(&self) -> Option<&Arc<str>> {
        match self {
            Self::Subscribed { consumer, .. }
            | Self::HeartbeatMissed { consumer, .. }
            | Self::ConsumerDeleted { consumer, .. }
            | Self::Resubscribing { consumer, .. }
            | Self::ConsumerRecreated { consumer, .. }
            | Self::ReplayStarted { consumer, .. }
            | Self::ReplayCompleted { consumer, .. }
            | Self::EventsLost { consumer, .. }
            | Self::StreamReset { consumer, .. }
            | Self::CheckpointSaved { consumer, .. }
            | Self::CheckpointFailed { consumer, .. }
            | Self::Unsubscribed { consumer, .. }
            | Self::Delivered { consumer, .. }
            | Self::DecodeFailed { consumer, .. } => Some(consumer),
            _ => None,
        }
    }
}

impl EventKind {
    /// The severity every event of this kind has.
    pub const fn severity(self) -> Severity {
        match self {
            EventKind::Published | EventKind::Delivered | EventKind::CheckpointSaved => {
                Severity::Trace
            }
            EventKind::Connected
            | EventKind::StreamReady
            | EventKind::Subscribed
            | EventKind::ReplayStarted
            | EventKind::ReplayCompleted
            | EventKind::Unsubscribed
            | EventKind::Shutdown => Severity::Info,
            EventKind::Disconnected
            | EventKind::Reconnecting
            | EventKind::Reconnected
            | EventKind::LameDuck
            | EventKind::SlowConsumer
            | EventKind::HeartbeatMissed
            | EventKind::Resubscribing
            | EventKind::ConsumerRecreated
            | EventKind::PublishFailed
            | EventKind::DecodeFailed => Severity::Warn,
            EventKind::ServerError
            | EventKind::ConsumerDeleted
            | EventKind::EventsLost
            | EventKind::StreamReset
            | EventKind::CheckpointFailed => Severity::Error,
        }
    }
}

/// A duration written for people: `850µs`, `42ms`, `1.5s`.
struct Human(Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_millis(1) {
            write!(f, "{}µs", d.as_micros())
        } else if d < Duration::from_secs(1) {
            write!(f, "{}ms", d.as_millis())
        } else if d < Duration::from_secs(120) {
            write!(f, "{:.1}s", d.as_secs_f64())
        } else {
            write!(f, "{}min", d.as_secs() / 60)
        }
    }
}

/// How many sequences `first..=last` holds (never overflows).
pub(crate) fn lost_count(first: u64, last: u64) -> u64 {
    last.saturating_sub(first).saturating_add(1)
}

impl fmt::Display for CoordinatorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected { server } => write!(f, "connected to {server}"),
            Self::Disconnected { server, cause } => {
                write!(f, "disconnected from {server}: {cause}")
            }
            Self::Reconnecting { attempt, delay } => {
                write!(f, "reconnecting (attempt {attempt}) in {}", Human(*delay))
            }
            Self::Reconnected { server, downtime } => {
                write!(f, "reconnected to {server} after {} down", Human(*downtime))
            }
            Self::LameDuck { server } => {
                write!(f, "server {server} entered lame duck mode and will shut down")
            }
            Self::SlowConsumer { sid } => {
                write!(f, "subscription {sid} is a slow consumer: messages were dropped")
            }
            Self::ServerError { message } => write!(f, "server error: {message}"),
            Self::StreamReady {
                stream,
                created,
                max_age,
                first_seq,
                last_seq,
                ..
            } => write!(
                f,
                "stream {stream} {} (max age {}, {})",
                if *created { "created" } else { "ready" },
                Human(*max_age),
                if *last_seq == 0 || first_seq > last_seq {
                    format!("empty, next sequence {}", last_seq + 1)
                } else {
                    format!("sequences {first_seq}..={last_seq}")
                }
            ),
            Self::Subscribed {
                stream,
                consumer,
                filter,
                start,
                checkpoint,
            } => {
                write!(
                    f,
                    "consumer {consumer} subscribed to {filter} on stream {stream} from {start}"
                )?;
                match checkpoint {
                    Some(seq) => write!(f, " (checkpoint {seq})"),
                    None => f.write_str(" (no checkpoint)"),
                }
            }
            Self::HeartbeatMissed {
                stream,
                consumer,
                missed,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} missed heartbeats ({missed} in a row)"
            ),
            Self::ConsumerDeleted { stream, consumer } => {
                write!(f, "consumer {consumer} on stream {stream} was deleted")
            }
            Self::Resubscribing {
                stream,
                consumer,
                attempt,
                delay,
                cause,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} resubscribing (attempt {attempt}) in {}: {cause}",
                Human(*delay)
            ),
            Self::ConsumerRecreated {
                stream,
                consumer,
                resume_from,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} recreated, resuming at sequence {resume_from}"
            ),
            Self::ReplayStarted {
                stream,
                consumer,
                from,
                to,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} replaying sequences {from}..={to}"
            ),
            Self::ReplayCompleted {
                stream,
                consumer,
                events,
                elapsed,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} replayed {events} events in {}",
                Human(*elapsed)
            ),
            Self::EventsLost {
                stream,
                consumer,
                first,
                last,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} lost events {first}..={last} ({} events) to retention before they were delivered",
                lost_count(*first, *last)
            ),
            Self::StreamReset {
                stream,
                consumer,
                position,
                last_seq,
            } => write!(
                f,
                "stream {stream} was reset (last sequence {last_seq}, below position {position} of consumer {consumer}): starting over at its first sequence"
            ),
            Self::CheckpointSaved {
                stream,
                consumer,
                seq,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} saved checkpoint {seq}"
            ),
            Self::CheckpointFailed {
                stream,
                consumer,
                seq,
                error,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} failed to checkpoint sequence {seq}: {error}"
            ),
            Self::Unsubscribed {
                stream,
                consumer,
                last_processed,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} unsubscribed at sequence {last_processed}"
            ),
            Self::Published {
                stream,
                subject,
                seq,
                duplicate,
            } => {
                write!(f, "published {subject} to stream {stream} as sequence {seq}")?;
                if *duplicate {
                    f.write_str(" (duplicate, not stored again)")?;
                }
                Ok(())
            }
            Self::PublishFailed {
                stream,
                subject,
                attempt,
                will_retry,
                error,
            } => write!(
                f,
                "publish of {subject} to stream {stream} failed (attempt {attempt}, {}): {error}",
                if *will_retry { "will retry" } else { "giving up" }
            ),
            Self::Delivered {
                stream,
                consumer,
                seq,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} delivered sequence {seq}"
            ),
            Self::DecodeFailed {
                stream,
                consumer,
                seq,
                error,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} could not decode sequence {seq}: {error}"
            ),
            Self::Shutdown {
                stream,
                subscriptions,
            } => write!(
                f,
                "coordinator for stream {stream} shut down ({subscriptions} subscriptions ended)"
            ),
        }
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

    #[test]
    fn events_round_trip_through_serde() {
        let event = CoordinatorEvent::Resubscribing {
            stream: "S".into(),
            consumer: "c".into(),
            attempt: 2,
            delay: Duration::from_millis(150),
            cause: ResubscribeCause::SequenceGap {
                expected: 4,
                received: 9,
            },
        };
        let json = serde_json::to_string(&event).expect("serialize");
        assert!(json.contains("\"kind\":\"resubscribing\""), "{json}");
        let back: CoordinatorEvent = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, event);
        assert_eq!(
            event.to_string(),
            "consumer c on stream S resubscribing (attempt 2) in 150ms: consumer sequence gap (expected 4, received 9)"
        );
    }
}
