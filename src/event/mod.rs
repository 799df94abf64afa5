//! The typed events a coordinator reports: one [`CoordinatorEvent`] per state change.
//!
//! Every variant carries the context a reader needs without looking anything up: the stream,
//! the consumer, the sequences, the durations, the cause. Names are `Arc<str>`, so cloning an
//! event never copies a string. Events are plain data: this module knows nothing of the
//! coordinator that sends them.
//!
//! - [`CoordinatorEvent`] (this file): the variants;
//! - `accessors.rs`: what every event can be asked: its kind, severity, stream, consumer,
//!   outbox;
//! - `kind.rs`: [`EventKind`], [`EventKindSet`], [`Severity`], [`ResubscribeCause`];
//! - `display.rs`: each event as a one-line sentence.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::position::StartPosition;

mod accessors;
mod display;
mod kind;

pub use self::kind::{EventKind, EventKindSet, ResubscribeCause, Severity};

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
    /// The application has taken the last replayed message: reported when it asks for the
    /// next message (or when the subscription ends), so an application that marks itself
    /// ready on this event has every replayed message in hand. The replay ends at `to`, or
    /// earlier when no matching message is left. A replay interrupted by another resubscribe
    /// goes on to the new end of the stream: one `ReplayStarted`, one `ReplayCompleted`.
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
    /// Retention (or a purge) removed stream sequences `first..=last` before they were
    /// delivered.
    ///
    /// For a `>` subscription the range is exact. For a filtered one it names only ranges that
    /// could have held a matching event: on the embedded backend, from the first to the last
    /// removed message that matched; on NATS, which no longer knows the removed subjects, the
    /// stream sequences between the last delivered (or scanned-past) message and the next, when
    /// the server's count of pending matching messages shows some were removed. A filtered
    /// subscription moves its position past non-matching traffic while idle, so a later resume
    /// does not call that traffic lost.
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
    /// A row of a transactional outbox was published and acknowledged by the stream. One per
    /// row, so opt-in like the other per-message kinds.
    OutboxRelayed {
        /// The outbox (its table's name).
        outbox: Arc<str>,
        /// The row's id in the outbox.
        row: u64,
        /// The stream sequence the row was stored at (the earlier one for a duplicate).
        seq: u64,
        /// True when the stream had already stored the row's message (a relay retried after
        /// a crash or a timeout): nothing new was stored.
        duplicate: bool,
        /// Time from the row's commit to the stream's acknowledgement.
        lag: Duration,
    },
    /// What an outbox still holds after the relay published a batch: how many rows, and how
    /// long the oldest has waited. Reported after every batch, so a drained outbox reports
    /// `pending: 0` once (and nothing more until rows arrive again).
    OutboxBacklog {
        /// The outbox (its table's name).
        outbox: Arc<str>,
        /// Rows committed and not yet relayed.
        pending: u64,
        /// How long the oldest waiting row has been committed.
        oldest_age: Duration,
    },
    /// Relaying failed (database or NATS); the relay retries after `delay`. Rows stay in the
    /// outbox until they are relayed: nothing is lost.
    OutboxRelayFailed {
        /// The outbox (its table's name).
        outbox: Arc<str>,
        /// Consecutive failures so far, starting at 1.
        attempt: u32,
        /// How long the relay waits before it tries again.
        delay: Duration,
        /// What went wrong.
        error: Arc<str>,
    },
    /// A message's checkpoint was committed in the application's own transaction, together
    /// with what the application wrote for it. One per message, so opt-in like the other
    /// per-message kinds.
    CheckpointCommitted {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// The committed sequence: everything up to it has been processed.
        seq: u64,
    },
    /// Committing a message's checkpoint with the application's transaction failed: nothing
    /// of that transaction was applied; the message was not acknowledged and will be
    /// delivered again after a restart.
    CheckpointCommitFailed {
        /// The stream.
        stream: Arc<str>,
        /// The consumer.
        consumer: Arc<str>,
        /// The message whose checkpoint (and transaction) was not committed.
        seq: u64,
        /// What went wrong.
        error: Arc<str>,
    },
}
