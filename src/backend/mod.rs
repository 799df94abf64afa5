//! The seam between the coordinator and the engines that store and deliver messages.
//!
//! A backend knows streams, consumers and connections; it knows nothing of reporters, resume
//! positions or checkpoints. It answers calls and returns what happened ([`ConsumerItem`],
//! [`ConnectionChange`]); the coordinator above decides what that means. The enum is closed and
//! dispatched statically: no trait objects on the message path.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::Result;

pub(crate) mod memory;
pub(crate) mod nats;
pub(crate) mod seam;

pub(crate) use self::seam::{
    ConnectionChange, ConnectionListener, ConsumerItem, ConsumerSpec, DeliverFrom, Fault, Outgoing,
    PublishAck, RawMessage, StreamBounds, StreamReadyInfo, StreamSpec,
};

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

    pub(crate) async fn publish(&self, message: Outgoing<'_>) -> Result<PublishAck> {
        match self {
            Backend::Memory(b) => b.publish(message),
            Backend::Nats(b) => b.publish(message).await,
        }
    }

    /// Publishes many messages, pipelined where the backend can; one result per message.
    /// The messages are borrowed: the caller keeps them to retry the ones that fail transiently.
    /// An acknowledgement still awaited at `deadline` fails with a timeout.
    pub(crate) async fn publish_batch(
        &self,
        batch: &[Outgoing<'_>],
        deadline: tokio::time::Instant,
    ) -> Vec<Result<PublishAck>> {
        match self {
            Backend::Memory(b) => batch.iter().map(|message| b.publish(*message)).collect(),
            Backend::Nats(b) => b.publish_batch(batch, deadline).await,
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

    /// Closes the connection (NATS) or stops listening to the server (embedded): the
    /// coordinator shut down, and `listener` hears nothing more.
    pub(crate) async fn close(&self, listener: &ConnectionListener) {
        match self {
            Backend::Memory(b) => b.remove_listener(listener),
            Backend::Nats(b) => b.close().await,
        }
    }

    /// Of the stream sequences `first..=last` that retention removed, the part that could have
    /// held a message matching `filter`: exact on the embedded backend (it remembers removed
    /// subjects), the whole range on NATS (which does not).
    pub(crate) fn removed_matching(
        &self,
        filter: &str,
        first: u64,
        last: u64,
    ) -> Option<(u64, u64)> {
        match self {
            Backend::Memory(b) => b.removed_matching(filter, (first, last)),
            Backend::Nats(_) => Some((first, last)),
        }
    }

    /// The instance of the consumer `name` on the server (which a consumer of the same name
    /// created again does not share), or `None` when there is none.
    pub(crate) async fn consumer_instance(&self, name: &str) -> Result<Option<u128>> {
        match self {
            Backend::Memory(b) => b.consumer_instance(name),
            Backend::Nats(b) => b.consumer_instance(name).await,
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
    /// This consumer's instance on the server.
    pub(crate) fn instance(&self) -> u128 {
        match self {
            Consumer::Memory(c) => c.instance(),
            Consumer::Nats(c) => c.instance(),
        }
    }

    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<ConsumerItem> {
        match self {
            Consumer::Memory(c) => c.poll_next(cx),
            Consumer::Nats(c) => Pin::new(&mut **c).poll_next(cx),
        }
    }
}
