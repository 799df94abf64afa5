//! What crosses the seam between the coordinator and a backend: the specs the coordinator asks
//! for, and what a backend answers (bounds, messages, faults, connection changes). Plain data:
//! a backend returns what happened, the coordinator decides what it means.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How the stream stores messages (NATS backend; the embedded backend always uses memory).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// On disk: survives server restarts. The default.
    #[default]
    File,
    /// In the server's memory: faster, lost when the server restarts.
    Memory,
}

/// The result of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishAck {
    /// The message's stream sequence (for a duplicate: the original message's).
    pub seq: u64,
    /// True when the message id was already stored within the duplicate window.
    pub duplicate: bool,
}

/// The stream a coordinator works on, as the backend must create or reconcile it.
#[derive(Clone, Debug)]
pub(crate) struct StreamSpec {
    pub(crate) name: Arc<str>,
    /// The subjects the stream captures: `<prefix>.>`.
    pub(crate) subjects: Arc<str>,
    pub(crate) max_age: Duration,
    pub(crate) max_msgs: Option<u64>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) max_payload: usize,
    pub(crate) duplicate_window: Duration,
    pub(crate) storage: Storage,
    pub(crate) replicas: usize,
}

/// What the backend reports when a stream is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamReadyInfo {
    pub(crate) created: bool,
    pub(crate) bounds: StreamBounds,
}

/// The stream's current extent. `first > last` means the stream holds no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamBounds {
    /// The lowest sequence still stored (or `last + 1` when empty).
    pub(crate) first: u64,
    /// The highest sequence ever assigned (0 when nothing was published).
    pub(crate) last: u64,
    /// When the stream was created: its identity. A stream deleted and created again has
    /// another, even when its sequences have not gone backwards yet.
    pub(crate) created: SystemTime,
}

/// Where a new consumer starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeliverFrom {
    Sequence(u64),
    Time(SystemTime),
}

#[derive(Clone, Debug)]
pub(crate) struct ConsumerSpec {
    pub(crate) name: Arc<str>,
    pub(crate) filter: Arc<str>,
    pub(crate) from: DeliverFrom,
    pub(crate) heartbeat: Duration,
}

/// One message to publish: its full subject, payload and message id.
///
/// The id goes with every attempt of one publish, so a retry after a timeout or a disconnect
/// is stored once. `idempotent` is set when the application chose the id; the embedded backend,
/// whose publish cannot half-succeed, remembers only those.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outgoing<'a> {
    pub(crate) subject: &'a Arc<str>,
    pub(crate) payload: &'a Bytes,
    pub(crate) msg_id: &'a str,
    pub(crate) idempotent: bool,
}

/// A stored message as a consumer delivers it.
#[derive(Clone, Debug)]
pub(crate) struct RawMessage {
    pub(crate) seq: u64,
    /// 1 for the first message a consumer delivers, +1 for each next one.
    pub(crate) consumer_seq: u64,
    pub(crate) subject: Arc<str>,
    pub(crate) payload: Bytes,
    pub(crate) published_at: SystemTime,
    /// Matching messages after this one; 0 means the consumer has caught up. The embedded
    /// backend only distinguishes 0 from "at least 1".
    pub(crate) pending: u64,
}

/// A consumer-level fault. Every one of them leads to the same path: report, back off,
/// resubscribe at last + 1.
#[derive(Debug)]
pub(crate) enum Fault {
    HeartbeatMissed,
    ConsumerDeleted,
    Disconnected,
    Other(Error),
}

/// What a consumer yields: a message, a fault, or news about the stream positions it passed.
#[derive(Debug)]
pub(crate) enum ConsumerItem {
    Message(RawMessage),
    Fault(Fault),
    /// Retention removed messages this consumer had not delivered, within `first..=last`:
    /// the range could have held matching messages (on the embedded backend: it did).
    Lost {
        first: u64,
        last: u64,
    },
    /// The consumer has delivered everything matching up to stream sequence `scanned` and
    /// nothing is pending: a filtered subscription's position may move there.
    Idle {
        scanned: u64,
    },
}

/// A change of connection state, as the backend sees it. `AttemptFailed`: a connection attempt
/// failed, and the client goes on trying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConnectionChange {
    Connected { server: Arc<str> },
    Disconnected { server: Arc<str>, cause: Arc<str> },
    Reconnecting { attempt: u32, delay: Duration },
    LameDuck { server: Arc<str> },
    SlowConsumer { sid: u64 },
    ServerError { message: Arc<str> },
    AttemptFailed { error: Arc<str> },
}

/// Receives connection changes; called from the backend's own task, one change at a time.
pub(crate) type ConnectionListener = Arc<dyn Fn(ConnectionChange) + Send + Sync>;
