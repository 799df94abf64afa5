//! The seam between the coordinator and the engines that store and deliver messages.
//!
//! A backend knows streams, consumers and connections; it knows nothing of reporters, resume
//! positions or checkpoints. It answers calls and returns what happened ([`ConsumerItem`],
//! [`ConnectionChange`]); the coordinator above decides what that means. The enum is closed and
//! dispatched statically: no trait objects on the message path.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::error::{Error, Result};

pub(crate) mod memory;
pub(crate) mod nats;

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
    pub(crate) storage: crate::Storage,
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

#[derive(Debug)]
pub(crate) enum ConsumerItem {
    Message(RawMessage),
    Fault(Fault),
}

/// A change of connection state, as the backend sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConnectionChange {
    Connected { server: Arc<str> },
    Disconnected { server: Arc<str>, cause: Arc<str> },
    Reconnecting { attempt: u32, delay: Duration },
    LameDuck { server: Arc<str> },
    SlowConsumer { sid: u64 },
    ServerError { message: Arc<str> },
}

/// Receives connection changes; called from the backend's own task, one change at a time.
pub(crate) type ConnectionListener = Arc<dyn Fn(ConnectionChange) + Send + Sync>;

/// The result of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) seq: u64,
    pub(crate) duplicate: bool,
}

/// The engines Herald runs on.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Memory(memory::MemoryBackend),
    Nats(Arc<nats::NatsBackend>),
}

impl Backend {
    /// The address shown in events (credentials redacted).
    pub(crate) fn server_name(&self) -> Arc<str> {
        match self {
            Backend::Memory(b) => b.server_name(),
            Backend::Nats(b) => b.server_name(),
        }
    }

    pub(crate) async fn ensure_stream(&self) -> Result<StreamReadyInfo> {
        match self {
            Backend::Memory(b) => b.ensure_stream(),
            Backend::Nats(b) => b.ensure_stream().await,
        }
    }

    pub(crate) async fn publish(
        &self,
        subject: &Arc<str>,
        payload: Bytes,
        msg_id: Option<&str>,
    ) -> Result<Stored> {
        match self {
            Backend::Memory(b) => b.publish(subject, payload, msg_id),
            Backend::Nats(b) => b.publish(subject, payload, msg_id).await,
        }
    }

    /// Publishes many messages, pipelined where the backend can; one result per message.
    /// The items are borrowed: the caller keeps them to retry the ones that fail transiently.
    pub(crate) async fn publish_batch(&self, items: &[(Arc<str>, Bytes)]) -> Vec<Result<Stored>> {
        match self {
            Backend::Memory(b) => items
                .iter()
                .map(|(subject, payload)| b.publish(subject, payload.clone(), None))
                .collect(),
            Backend::Nats(b) => b.publish_batch(items).await,
        }
    }

    pub(crate) async fn bounds(&self) -> Result<StreamBounds> {
        match self {
            Backend::Memory(b) => b.bounds(),
            Backend::Nats(b) => b.bounds().await,
        }
    }

    pub(crate) async fn create_consumer(&self, spec: &ConsumerSpec) -> Result<Consumer> {
        match self {
            Backend::Memory(b) => b.create_consumer(spec).map(Consumer::Memory),
            Backend::Nats(b) => b
                .create_consumer(spec)
                .await
                .map(|c| Consumer::Nats(Box::new(c))),
        }
    }

    /// Deletes a consumer; a consumer that does not exist is not an error.
    pub(crate) async fn delete_consumer(&self, name: &str) -> Result<()> {
        match self {
            Backend::Memory(b) => {
                b.delete_consumer(name);
                Ok(())
            }
            Backend::Nats(b) => b.delete_consumer(name).await,
        }
    }
}

/// A live consumer: a stream of messages and faults.
#[derive(Debug)]
pub(crate) enum Consumer {
    Memory(memory::MemoryConsumer),
    Nats(Box<nats::NatsConsumer>),
}

impl Consumer {
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<ConsumerItem> {
        match self {
            Consumer::Memory(c) => c.poll_next(cx),
            Consumer::Nats(c) => Pin::new(&mut **c).poll_next(cx),
        }
    }
}
