//! Subscriptions: an async stream of [`Message`]s that survives every fault, resuming at exactly
//! the right sequence.
//!
//! - this file: [`Subscription`], the stream the application reads;
//! - `builder.rs`: [`Subscribe`](builder::Subscribe), its options, and subscribing;
//! - `resume.rs`: **the resume algorithm** (cursor, loss, faults, resubscribe);
//! - `replay.rs`: which messages are replayed, and when the replay is reported;
//! - `message.rs`: [`Message`] and its acknowledgement;
//! - `json.rs`: [`JsonSubscription`](json::JsonSubscription), typed payloads.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use self::message::Message;
use self::resume::Resume;
use crate::checkpoint::progress::Acks;
use crate::emitter::emit_for;
use crate::error::Result;
use crate::reporter::{NullReporter, Reporter};

pub(crate) mod builder;
mod cursor;
pub(crate) mod json;
pub(crate) mod message;
mod replay;
mod resume;

/// An async stream of [`Message`]s that survives reconnects, missed heartbeats, deleted consumers
/// and restarts; made by [`Coordinator::subscribe`](crate::Coordinator::subscribe).
///
/// It yields every message matching its filter exactly once and in stream order. Faults are
/// reported through the coordinator's reporter and recovered; the stream ends only when the
/// subscription is closed (`None`), when the coordinator shuts down (one
/// `Err` of kind [`Shutdown`](crate::ErrorKind::Shutdown), then `None`), or on an unrecoverable error.
///
/// ```
/// use herald::{Coordinator, StartPosition};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let coordinator = Coordinator::builder().connect().await?;
/// let mut sub = coordinator.subscribe("alerts.>").start(StartPosition::All).await?;
/// coordinator.publish("alerts.42", "changed").await?;
/// let msg = sub.next().await.expect("open")?;
/// assert_eq!((msg.seq, msg.key()), (1, "alerts.42"));
/// msg.ack();
/// sub.close().await;
/// # Ok(()) }
/// ```
pub struct Subscription<R: Reporter = NullReporter> {
    resume: Resume<R>,
    checkpointer: Option<tokio::task::JoinHandle<()>>,
}

impl<R: Reporter> fmt::Debug for Subscription<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("consumer", &self.resume.spec.name)
            .field("filter", &self.resume.spec.filter)
            .field("cursor", &self.resume.cursor)
            .field("last_acked", &self.resume.acks.acked())
            .finish_non_exhaustive()
    }
}

impl<R: Reporter> Subscription<R> {
    fn new(resume: Resume<R>, checkpointer: tokio::task::JoinHandle<()>) -> Self {
        Self {
            resume,
            checkpointer: Some(checkpointer),
        }
    }

    /// The next message; `None` when the subscription has ended. Same as
    /// [`StreamExt::next`](futures::StreamExt::next).
    pub async fn next(&mut self) -> Option<Result<Message>> {
        futures::StreamExt::next(self).await
    }

    /// The consumer's name: `<node>:<durable>`, unique per node, stream and filter.
    pub fn consumer_name(&self) -> &str {
        &self.resume.spec.name
    }

    /// The highest sequence the application acknowledged (0 when none).
    pub fn last_acked(&self) -> u64 {
        self.resume.acks.acked()
    }

    /// The highest acknowledged sequence that has been saved in the checkpoint store.
    pub fn last_saved(&self) -> u64 {
        self.resume.acks.saved()
    }

    pub(crate) fn acks(&self) -> &Acks {
        &self.resume.acks
    }

    /// Reports that message `seq` could not be decoded into the subscription's type.
    pub(crate) fn report_decode_failed(&self, seq: u64, error: &serde_json::Error) {
        emit_for!(
            self.resume.state.emitter,
            self.resume.names,
            DecodeFailed {
                seq,
                error: error.to_string().into(),
            }
        );
    }

    /// Ends the subscription: saves the checkpoint, deletes the consumer, reports `Unsubscribed`.
    pub async fn close(mut self) {
        self.resume.stop();
        self.resume.acks.close();
        if let Some(handle) = self.checkpointer.take() {
            let _ = handle.await;
        }
        let _ = self
            .resume
            .state
            .backend
            .delete_consumer(&self.resume.spec.name)
            .await;
        self.report_unsubscribed();
    }

    fn report_unsubscribed(&mut self) {
        // A replay the application finished is reported complete before the end.
        self.resume.report_replay_done();
        let resume = &self.resume;
        resume
            .state
            .unregister(&resume.names.consumer, &resume.signals);
        let last_processed = resume.acks.acked();
        emit_for!(
            resume.state.emitter,
            resume.names,
            Unsubscribed { last_processed }
        );
    }
}

impl<R: Reporter> Stream for Subscription<R> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.resume.poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(message)) => Poll::Ready(Some(Ok(message))),
            Poll::Ready(Err(error)) => {
                if !this.resume.is_done() {
                    this.resume.stop();
                    this.resume.acks.close();
                    this.report_unsubscribed();
                }
                Poll::Ready(error.map(Err))
            }
        }
    }
}

impl<R: Reporter> Drop for Subscription<R> {
    fn drop(&mut self) {
        // The checkpointer saves what was acknowledged and exits on its own.
        self.resume.acks.close();
        if !self.resume.is_done() {
            self.report_unsubscribed();
        }
    }
}
