//! The [`Coordinator`]: publish to the stream, subscribe to it, shut down; every state change
//! reported.
//!
//! - this file: the coordinator's API, and publishing with retries;
//! - `builder.rs`: [`Builder`](builder::Builder), its settings and their validation, `connect`;
//! - `connection.rs`: connection changes as events, and reconnects as resubscribes.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use crate::backend::memory::MemoryServer;
use crate::backend::{Backend, Outgoing, PublishAck};
use crate::deadline;
use crate::emitter::emit;
use crate::error::{Error, ErrorKind, Result};
use crate::reporter::{NullReporter, Reporter};
use crate::state::{CoordinatorState, Signals};
use crate::subscription::builder::Subscribe;

pub(crate) mod builder;
mod connection;

/// A cluster coordinator: one stream, many subscriptions, every state change reported.
///
/// Cheap to clone: clones share the connection, the stream and the reporter.
///
/// ```
/// use herald::{Coordinator, StartPosition};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let coordinator = Coordinator::builder() // embedded backend, NullReporter
///     .stream("CLUSTER")
///     .connect()
///     .await?;
/// let mut sub = coordinator.subscribe("pipelines.*").start(StartPosition::All).await?;
/// let seq = coordinator.publish("pipelines.7", "deleted").await?;
/// let msg = sub.next().await.expect("open")?;
/// assert_eq!(msg.seq, seq);
/// # Ok(()) }
/// ```
pub struct Coordinator<R: Reporter = NullReporter> {
    pub(crate) state: Arc<CoordinatorState<R>>,
}

impl<R: Reporter> Clone for Coordinator<R> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

impl<R: Reporter> fmt::Debug for Coordinator<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("stream", &self.state.stream)
            .field("node", &self.state.node)
            .field("server", &self.state.backend.server_name())
            .finish_non_exhaustive()
    }
}

impl<R: Reporter> Coordinator<R> {
    /// Publishes `payload` under `key` (the subject is `<prefix>.<key>`) and returns its stream
    /// sequence once the stream has stored it.
    ///
    /// Transient failures (disconnects, timeouts, no responders during a leader change) are
    /// retried with backoff until the publish deadline, each retry reported as
    /// `PublishFailed { will_retry: true }`.
    pub async fn publish(&self, key: &str, payload: impl Into<Bytes>) -> Result<u64> {
        self.publish_inner(key, payload.into(), None)
            .await
            .map(|ack| ack.seq)
    }

    /// Publishes many messages at once and returns their stream sequences, in order.
    ///
    /// On NATS the publishes are pipelined (hundreds of acknowledgements in flight), which is
    /// several times faster than awaiting each [`publish`](Self::publish). Every key and payload
    /// is validated before anything is sent: a bad item fails the whole batch and stores nothing.
    /// An item that fails transiently is retried on its own, as `publish` does, so it may be
    /// stored after later items of the same batch.
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
        let state = &*self.state;
        state.check_open()?;
        let items = items.into_iter();
        let mut batch = Vec::with_capacity(items.size_hint().0);
        for (key, payload) in items {
            let payload = payload.into();
            batch.push((self.subject_for(key.as_ref(), &payload)?, payload));
        }
        let results = state.backend.publish_batch(&batch).await;
        let mut seqs = Vec::with_capacity(results.len());
        for (result, (subject, payload)) in results.into_iter().zip(batch) {
            let stored = match result {
                Ok(stored) => stored,
                Err(error) if error.is_transient() => {
                    let ack = self.publish_subject(subject, payload, None).await?;
                    seqs.push(ack.seq);
                    continue;
                }
                Err(error) => return Err(error),
            };
            emit!(
                state.emitter,
                Published {
                    stream: state.stream.clone(),
                    subject,
                    seq: stored.seq,
                    duplicate: stored.duplicate,
                }
            );
            seqs.push(stored.seq);
        }
        Ok(seqs)
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
        self.publish_inner(key, payload.into(), Some(msg_id)).await
    }

    async fn publish_inner(
        &self,
        key: &str,
        payload: Bytes,
        msg_id: Option<&str>,
    ) -> Result<PublishAck> {
        self.state.check_open()?;
        let subject = self.subject_for(key, &payload)?;
        self.publish_subject(subject, payload, msg_id).await
    }

    /// Publishes to a validated subject, retrying transient failures until the deadline.
    async fn publish_subject(
        &self,
        subject: Arc<str>,
        payload: Bytes,
        msg_id: Option<&str>,
    ) -> Result<PublishAck> {
        let state = &*self.state;
        let deadline = deadline::after(state.config.publish_deadline);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match state
                .backend
                .publish(Outgoing {
                    subject: &subject,
                    payload: &payload,
                    msg_id,
                })
                .await
            {
                Ok(ack) => {
                    emit!(
                        state.emitter,
                        Published {
                            stream: state.stream.clone(),
                            subject: subject.clone(),
                            seq: ack.seq,
                            duplicate: ack.duplicate,
                        }
                    );
                    return Ok(ack);
                }
                Err(error) => {
                    // A stream deleted underneath is recreated, and the publish retried at once.
                    let missing = error.kind() == ErrorKind::StreamNotFound;
                    let delay = state.config.backoff.delay(attempt);
                    let will_retry =
                        error.is_transient() && (missing || deadline::after(delay) < deadline);
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
    }

    /// Starts configuring a subscription to the keys matching `filter` (NATS wildcards: `*` one
    /// token, `>` the rest); `.await` it to subscribe. Use `">"` for every key.
    ///
    /// ```
    /// use herald::{Coordinator, FileCheckpointStore, StartPosition};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> herald::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let coordinator = Coordinator::builder().connect().await?;
    /// let sub = coordinator
    ///     .subscribe("alerts.>")
    ///     .durable("alert-cache")
    ///     .start(StartPosition::LastProcessed)
    ///     .checkpoint_store(FileCheckpointStore::new(dir.path()))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn subscribe(&self, filter: impl Into<String>) -> Subscribe<'_, R> {
        Subscribe::new(&self.state, filter.into())
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.state.stream
    }

    /// The server the coordinator is connected to, with credentials redacted
    /// (`memory://embedded` on the embedded backend): safe to print and log.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> herald::Result<()> {
    /// let coordinator = herald::Coordinator::builder().connect().await?;
    /// println!("herald on {}", coordinator.server());
    /// # Ok(()) }
    /// ```
    pub fn server(&self) -> Arc<str> {
        self.state.backend.server_name()
    }

    /// This node's id, the first part of every consumer name.
    pub fn node_id(&self) -> &str {
        &self.state.node
    }

    /// The reporter.
    pub fn reporter(&self) -> &R {
        self.state.emitter.reporter()
    }

    /// How many times the reporter panicked. Each panic was caught and the coordinator went on.
    pub fn reporter_panics(&self) -> u64 {
        self.state.emitter.panics()
    }

    /// Ends every subscription (each yields one `Shutdown` error, then ends; checkpoints are
    /// saved and consumers deleted), reports `Shutdown`, and refuses further publishes and
    /// subscribes.
    pub async fn shutdown(&self) {
        if self.state.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        let subs: Vec<(Arc<str>, Arc<Signals>)> = self
            .state
            .subscriptions
            .lock()
            .iter()
            .map(|(name, sub)| (name.clone(), sub.clone()))
            .collect();
        for (name, sub) in &subs {
            sub.shut_down();
            // Best effort: a consumer left behind expires after its inactivity threshold.
            let _ = self.state.backend.delete_consumer(name).await;
        }
        if let Backend::Nats(nats) = &self.state.backend {
            nats.flush().await;
        }
        let count = subs.len() as u64;
        emit!(
            self.state.emitter,
            Shutdown {
                stream: self.state.stream.clone(),
                subscriptions: count,
            }
        );
    }

    /// The embedded server, when the coordinator runs on the embedded backend.
    pub fn memory_server(&self) -> Option<&MemoryServer> {
        match &self.state.backend {
            Backend::Memory(m) => Some(m.server()),
            Backend::Nats(_) => None,
        }
    }
}
