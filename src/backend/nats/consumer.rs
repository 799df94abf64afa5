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

/// A consumer's instance: its creation time in nanoseconds, which a consumer of the same name
/// created again does not share.
pub(super) fn instance_of(info: &consumer::Info) -> u128 {
    info.created.unix_timestamp_nanos().unsigned_abs()
}

/// What the server says of a consumer when asked while idle.
#[derive(Clone, Copy, Debug)]
pub(super) struct Progress {
    /// The last consumer sequence the server delivered.
    delivered: u64,
    /// The stream sequence the consumer has scanned to (for a filtered consumer, beyond the
    /// last match).
    scanned: u64,
    /// Matching messages not yet delivered.
    pending: u64,
    /// The instance of the consumer that answered: another than ours was created in its place.
    instance: u128,
}

/// A pull consumer's message stream.
///
/// With `AckPolicy::None` the server never redelivers, so a message lost between server and
/// client (a client buffer overflowing) at the tail of the stream would leave the subscription
/// waiting forever: no later message reveals the gap. While idle, the consumer therefore asks
/// the server every six heartbeats how far it has delivered (in consumer sequences, which count
/// only this consumer's deliveries) and reports a fault when that is beyond the last message
/// received; when nothing is lost or pending it reports how far the consumer has scanned.
///
/// Retention that removes matching messages before delivery shows in the server's pending
/// count: it drops by more than the one message delivered. The removed messages lie between
/// the previous delivery and this one (retention removes the oldest first), and that range is
/// reported as lost. Matching messages published meanwhile raise the count again and can hide
/// such a loss from this check.
pub(crate) struct NatsConsumer {
    pub(super) messages: Pin<Box<consumer::pull::Stream>>,
    pub(super) ended: bool,
    pub(super) handle: consumer::PullConsumer,
    pub(super) last_seq: u64,
    pub(super) last_consumer_seq: u64,
    pub(super) last_pending: Option<u64>,
    pub(super) scanned: u64,
    /// A message held back while the loss before it is reported.
    pub(super) held: Option<RawMessage>,
    pub(super) idle_after: Duration,
    pub(super) idle: Pin<Box<tokio::time::Sleep>>,
    pub(super) check: Option<futures::future::BoxFuture<'static, Option<Progress>>>,
    /// This consumer's instance on the server: its creation time in nanoseconds.
    pub(super) instance: u128,
}

impl fmt::Debug for NatsConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConsumer").finish_non_exhaustive()
    }
}

impl NatsConsumer {
    /// A consumer's stream of items; `start` is the first stream sequence it may deliver.
    pub(super) fn new(
        messages: consumer::pull::Stream,
        handle: consumer::PullConsumer,
        start: u64,
        heartbeat: Duration,
        instance: u128,
    ) -> Self {
        let idle_after = heartbeat.saturating_mul(6);
        Self {
            messages: Box::pin(messages),
            ended: false,
            handle,
            last_seq: start.saturating_sub(1),
            last_consumer_seq: 0,
            last_pending: None,
            scanned: start.saturating_sub(1),
            held: None,
            idle_after,
            idle: Box::pin(tokio::time::sleep_until(crate::deadline::after(idle_after))),
            check: None,
            instance,
        }
    }

    /// This consumer's instance on the server.
    pub(crate) fn instance(&self) -> u128 {
        self.instance
    }

    fn reset_idle(&mut self) {
        let next = crate::deadline::after(self.idle_after);
        self.idle.as_mut().reset(next);
    }

    /// What an idle check found: a consumer replaced by another of the same name (whose
    /// pulls would now share it), a lost tail, or how far the consumer scanned.
    fn checked(&mut self, progress: Progress) -> Option<ConsumerItem> {
        if progress.instance != self.instance {
            self.ended = true;
            return Some(ConsumerItem::Fault(Fault::ConsumerDeleted));
        }
        if progress.delivered > self.last_consumer_seq {
            let (delivered, received) = (progress.delivered, self.last_consumer_seq);
            return Some(ConsumerItem::Fault(Fault::Other(Error::new(
                ErrorKind::Server,
                format!(
                    "the server delivered up to consumer sequence {delivered} but the client received up to {received}"
                ),
            ))));
        }
        if progress.pending == 0 && progress.scanned > self.scanned.max(self.last_seq) {
            self.scanned = progress.scanned;
            return Some(ConsumerItem::Idle {
                scanned: progress.scanned,
            });
        }
        None
    }

    /// A delivered message, and the range retention removed before it if the pending count
    /// says so (the message is then held back for the next poll).
    fn delivered(&mut self, raw: RawMessage) -> ConsumerItem {
        let lost = self
            .last_pending
            .is_some_and(|before| raw.pending.saturating_add(1) < before)
            && raw.seq > self.last_seq + 1;
        let (first, last) = (self.last_seq + 1, raw.seq - 1);
        self.last_seq = raw.seq;
        self.last_consumer_seq = raw.consumer_seq;
        self.last_pending = Some(raw.pending);
        if lost {
            self.held = Some(raw);
            return ConsumerItem::Lost { first, last };
        }
        ConsumerItem::Message(raw)
    }

    pub(crate) fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ConsumerItem> {
        let this = self.get_mut();
        if let Some(raw) = this.held.take() {
            return Poll::Ready(ConsumerItem::Message(raw));
        }
        if this.ended {
            return Poll::Pending;
        }
        use consumer::pull::MessagesErrorKind as K;
        let item = loop {
            if let Some(check) = this.check.as_mut() {
                if let Poll::Ready(progress) = check.as_mut().poll(cx) {
                    this.check = None;
                    this.reset_idle();
                    if let Some(item) = progress.and_then(|p| this.checked(p)) {
                        return Poll::Ready(item);
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
                handle.get_info().await.ok().map(|info| Progress {
                    delivered: info.delivered.consumer_sequence,
                    scanned: info.delivered.stream_sequence,
                    pending: info.num_pending,
                    instance: instance_of(&info),
                })
            }));
        };
        Poll::Ready(match item {
            Some(Ok(message)) => match message.info() {
                Ok(info) => this.delivered(RawMessage {
                    seq: info.stream_sequence,
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
