//! Publishing: every publish carries a message id that stays the same across its retries, so
//! a timeout or a reconnect never stores a copy; transient failures are retried with backoff
//! until the publish deadline, and a stream deleted underneath is recreated.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use crate::backend::{Outgoing, PublishAck};
use crate::coordinator::Coordinator;
use crate::deadline;
use crate::emitter::emit;
use crate::error::{Error, ErrorKind, Result};
use crate::reporter::Reporter;

impl<R: Reporter> Coordinator<R> {
    /// Publishes `payload` under `key` (the subject is `<prefix>.<key>`) and returns its stream
    /// sequence once the stream has stored it.
    ///
    /// Transient failures (disconnects, timeouts, no responders during a leader change) are
    /// retried with backoff until the publish deadline, each retry reported as
    /// `PublishFailed { will_retry: true }`. Every attempt carries the same message id, so a
    /// retry after a timeout never stores the message twice (within the stream's duplicate
    /// window).
    pub async fn publish(&self, key: &str, payload: impl Into<Bytes>) -> Result<u64> {
        self.state.check_open()?;
        let payload = payload.into();
        let subject = self.subject_for(key, &payload)?;
        let id = nuid::next();
        let deadline = deadline::after(self.state.config.publish_deadline);
        let message = Outgoing {
            subject: &subject,
            payload: &payload,
            msg_id: id.as_str(),
            idempotent: false,
        };
        self.publish_until(message, deadline)
            .await
            .map(|ack| ack.seq)
    }

    /// Publishes many messages at once and returns their stream sequences, in order.
    ///
    /// On NATS the publishes are pipelined (hundreds of acknowledgements in flight), which is
    /// several times faster than awaiting each [`publish`](Self::publish). Every key and payload
    /// is validated before anything is sent: a bad item fails the whole batch and stores nothing.
    /// An item that fails transiently is retried on its own with its own message id, as
    /// `publish` does, so it may be stored after later items of the same batch but never twice;
    /// the publish deadline is the whole batch's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> herald::Result<()> {
    /// let coordinator = herald::Coordinator::builder().connect().await?;
    /// let seqs = coordinator
    ///     .publish_batch([("alerts.1", "changed"), ("alerts.2", "deleted")])
    ///     .await?;
    /// assert_eq!(seqs, vec![1, 2]);
    /// # Ok(()) }
    /// ```
    pub async fn publish_batch<I, K, P>(&self, items: I) -> Result<Vec<u64>>
    where
        I: IntoIterator<Item = (K, P)>,
        K: AsRef<str>,
        P: Into<Bytes>,
    {
        self.state.check_open()?;
        let items = items.into_iter();
        let mut owned = Vec::with_capacity(items.size_hint().0);
        for (key, payload) in items {
            let payload = payload.into();
            let subject = self.subject_for(key.as_ref(), &payload)?;
            owned.push((subject, payload, nuid::next()));
        }
        let acks = self.publish_owned(&owned, false).await?;
        Ok(acks.into_iter().map(|ack| ack.seq).collect())
    }

    /// Publishes a batch in order, each item with its own message id, pipelined like
    /// [`publish_batch`](Self::publish_batch): within the stream's duplicate window, an id
    /// published before stores nothing and its acknowledgement says `duplicate: true` with the
    /// original sequence. This is how a transactional outbox relays rows (an id derived from
    /// the row) without storing copies when it retries.
    ///
    /// Every key, payload and id is validated before anything is sent.
    pub async fn publish_batch_idempotent<I, K, P, M>(&self, items: I) -> Result<Vec<PublishAck>>
    where
        I: IntoIterator<Item = (K, P, M)>,
        K: AsRef<str>,
        P: Into<Bytes>,
        M: Into<String>,
    {
        self.state.check_open()?;
        let items = items.into_iter();
        let mut owned = Vec::with_capacity(items.size_hint().0);
        for (key, payload, msg_id) in items {
            let msg_id = msg_id.into();
            if msg_id.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "the message id must not be empty",
                ));
            }
            let payload = payload.into();
            owned.push((self.subject_for(key.as_ref(), &payload)?, payload, msg_id));
        }
        self.publish_owned(&owned, true).await
    }

    /// Publishes validated messages in order until the publish deadline.
    async fn publish_owned<M: std::ops::Deref<Target = str>>(
        &self,
        owned: &[(Arc<str>, Bytes, M)],
        idempotent: bool,
    ) -> Result<Vec<PublishAck>> {
        let state = &*self.state;
        let deadline = deadline::after(state.config.publish_deadline);
        let batch: Vec<Outgoing<'_>> = owned
            .iter()
            .map(|(subject, payload, id)| Outgoing {
                subject,
                payload,
                msg_id: id,
                idempotent,
            })
            .collect();
        let results = state.backend.publish_batch(&batch, deadline).await;
        let mut acks = Vec::with_capacity(results.len());
        for (result, message) in results.into_iter().zip(batch) {
            let ack = match result {
                Ok(ack) => {
                    self.report_published(message.subject, ack);
                    ack
                }
                Err(error) if error.is_transient() && Instant::now() < deadline => {
                    self.publish_until(message, deadline).await?
                }
                Err(error) if error.is_transient() => {
                    return Err(Error::with_source(
                        ErrorKind::DeadlineExceeded,
                        format!(
                            "the batch was not stored within {:?}",
                            state.config.publish_deadline
                        ),
                        error,
                    ))
                }
                Err(error) => return Err(error),
            };
            acks.push(ack);
        }
        Ok(acks)
    }

    /// Validates a key and payload; returns the full subject.
    fn subject_for(&self, key: &str, payload: &Bytes) -> Result<Arc<str>> {
        let state = &*self.state;
        crate::subject::validate_subject(key)?;
        if payload.len() > state.config.max_payload {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "the payload is {} bytes; the maximum is {} bytes",
                    payload.len(),
                    state.config.max_payload
                ),
            ));
        }
        Ok(format!("{}.{key}", state.prefix).into())
    }

    /// Publishes with a message id: within the stream's duplicate window, publishing the same id
    /// again stores nothing and returns the original sequence with `duplicate: true`.
    pub async fn publish_idempotent(
        &self,
        key: &str,
        payload: impl Into<Bytes>,
        msg_id: &str,
    ) -> Result<PublishAck> {
        if msg_id.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "the message id must not be empty",
            ));
        }
        self.state.check_open()?;
        let payload = payload.into();
        let subject = self.subject_for(key, &payload)?;
        let message = Outgoing {
            subject: &subject,
            payload: &payload,
            msg_id,
            idempotent: true,
        };
        let deadline = deadline::after(self.state.config.publish_deadline);
        self.publish_until(message, deadline).await
    }

    fn report_published(&self, subject: &Arc<str>, ack: PublishAck) {
        let state = &*self.state;
        emit!(
            state.emitter,
            Published {
                stream: state.stream.clone(),
                subject: subject.clone(),
                seq: ack.seq,
                duplicate: ack.duplicate,
            }
        );
    }

    /// Publishes one message, retrying transient failures until `deadline`.
    async fn publish_until(&self, message: Outgoing<'_>, deadline: Instant) -> Result<PublishAck> {
        let state = &*self.state;
        let subject = message.subject;
        let mut attempt = 0u32;
        loop {
            if attempt > 0 && Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::DeadlineExceeded,
                    format!(
                        "publish to {subject} did not succeed within {:?} ({attempt} attempts)",
                        state.config.publish_deadline
                    ),
                ));
            }
            attempt += 1;
            let error = match state.backend.publish(message).await {
                Ok(ack) => {
                    self.report_published(subject, ack);
                    return Ok(ack);
                }
                Err(error) => error,
            };
            // A stream deleted underneath is recreated, and the publish retried at once.
            let missing = error.kind() == ErrorKind::StreamNotFound;
            let delay = state.config.backoff.delay(attempt);
            let will_retry = error.is_transient() && (missing || deadline::after(delay) < deadline);
            emit!(
                state.emitter,
                PublishFailed {
                    stream: state.stream.clone(),
                    subject: subject.clone(),
                    attempt,
                    will_retry,
                    error: error.to_string().into(),
                }
            );
            if !will_retry {
                if !error.is_transient() {
                    return Err(error);
                }
                return Err(Error::with_source(
                    ErrorKind::DeadlineExceeded,
                    format!(
                        "publish to {subject} did not succeed within {:?} ({attempt} attempts)",
                        state.config.publish_deadline
                    ),
                    error,
                ));
            }
            if !(missing && state.recreate_stream().await.is_ok()) {
                tokio::time::sleep(delay).await;
            }
            state.check_open()?;
        }
    }
}
