//! [`NatsConsumer`]: a pull consumer's messages and faults, as the coordinator reads them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer;
use futures::Stream as _;

use crate::backend::seam::{ConsumerItem, Fault, RawMessage};
use crate::error::{Error, ErrorKind};

/// A pull consumer's message stream.
///
/// With `AckPolicy::None` the server never redelivers, so a message lost between server and
/// client (a client buffer overflowing) at the tail of the stream would leave the subscription
/// waiting forever: no later message reveals the gap. While idle, the consumer therefore asks
/// the server every six heartbeats how far it has delivered, and reports a fault when that is
/// beyond the last message received.
pub(crate) struct NatsConsumer {
    pub(super) messages: Pin<Box<consumer::pull::Stream>>,
    pub(super) ended: bool,
    pub(super) handle: consumer::PullConsumer,
    pub(super) last_seq: u64,
    pub(super) idle_after: Duration,
    pub(super) idle: Pin<Box<tokio::time::Sleep>>,
    pub(super) check: Option<futures::future::BoxFuture<'static, Option<u64>>>,
}

impl fmt::Debug for NatsConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConsumer").finish_non_exhaustive()
    }
}

impl NatsConsumer {
    fn reset_idle(&mut self) {
        let next = crate::deadline::after(self.idle_after);
        self.idle.as_mut().reset(next);
    }

    pub(crate) fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ConsumerItem> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Pending;
        }
        use consumer::pull::MessagesErrorKind as K;
        let item = loop {
            if let Some(check) = this.check.as_mut() {
                if let Poll::Ready(delivered) = check.as_mut().poll(cx) {
                    this.check = None;
                    this.reset_idle();
                    if let Some(delivered) = delivered.filter(|d| *d > this.last_seq) {
                        let received = this.last_seq;
                        return Poll::Ready(ConsumerItem::Fault(Fault::Other(Error::new(
                            ErrorKind::Server,
                            format!(
                                "the server delivered up to sequence {delivered} but the client received up to {received}"
                            ),
                        ))));
                    }
                }
            }
            match this.messages.as_mut().poll_next(cx) {
                Poll::Ready(item) => {
                    // Activity is proof enough; an answer computed meanwhile could be stale.
                    this.check = None;
                    this.reset_idle();
                    break item;
                }
                Poll::Pending => {}
            }
            if this.check.is_some() || this.idle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let handle = this.handle.clone();
            this.check = Some(Box::pin(async move {
                handle
                    .get_info()
                    .await
                    .ok()
                    .map(|info| info.delivered.stream_sequence)
            }));
        };
        Poll::Ready(match item {
            Some(Ok(message)) => match message.info() {
                Ok(info) => ConsumerItem::Message(RawMessage {
                    seq: {
                        this.last_seq = info.stream_sequence;
                        info.stream_sequence
                    },
                    consumer_seq: info.consumer_sequence,
                    subject: Arc::from(message.subject.as_str()),
                    published_at: SystemTime::from(info.published),
                    pending: info.pending,
                    payload: message.message.payload.clone(),
                }),
                Err(e) => ConsumerItem::Fault(Fault::Other(Error::new(
                    ErrorKind::Server,
                    format!("a message had no JetStream metadata: {e}"),
                ))),
            },
            Some(Err(e)) => match e.kind() {
                K::MissingHeartbeat => ConsumerItem::Fault(Fault::HeartbeatMissed),
                K::ConsumerDeleted => {
                    this.ended = true;
                    ConsumerItem::Fault(Fault::ConsumerDeleted)
                }
                K::NoResponders => ConsumerItem::Fault(Fault::Disconnected),
                _ => ConsumerItem::Fault(Fault::Other(Error::with_source(
                    ErrorKind::Server,
                    "pull consumer failed",
                    e,
                ))),
            },
            None => {
                this.ended = true;
                ConsumerItem::Fault(Fault::ConsumerDeleted)
            }
        })
    }
}
