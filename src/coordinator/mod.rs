//! The [`Coordinator`]: publish to the stream, subscribe to it, shut down; every state change
//! reported.
//!
//! - this file: the coordinator, subscribing and shutting down;
//! - `publish.rs`: publishing, with message ids and retries;
//! - `builder.rs`: [`Builder`](builder::Builder), its settings and their validation, `connect`;
//! - `connection.rs`: connection changes as events, and reconnects as resubscribes.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::backend::memory::MemoryServer;
use crate::backend::Backend;
use crate::emitter::emit;
use crate::event::{CoordinatorEvent, EventKind};
use crate::reporter::{NullReporter, Reporter};
use crate::state::{CoordinatorState, Signals};
use crate::subscription::builder::Subscribe;

pub(crate) mod builder;
mod connection;
mod publish;

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

    /// Reports the event `build` makes when the reporter wants `kind`, exactly as the
    /// coordinator reports its own: for crates that extend the coordinator (the outbox relay
    /// of `herald-sqlx`). With [`NullReporter`] nothing is built. A panicking reporter is
    /// contained and counted.
    ///
    /// The event reaches the reporter only while the coordinator is running: nothing is
    /// reported after [`Shutdown`](CoordinatorEvent::Shutdown).
    #[inline]
    pub fn report(&self, kind: EventKind, build: impl FnOnce() -> CoordinatorEvent) {
        self.state.emitter.emit(kind, build);
    }

    /// Whether the reporter wants events of `kind`: for work that is done only to be
    /// reported (a count taken from a database). Always `false` with [`NullReporter`].
    #[inline]
    pub fn wants(&self, kind: EventKind) -> bool {
        self.state.emitter.wants(kind)
    }

    /// The reporter.
    pub fn reporter(&self) -> &R {
        self.state.emitter.reporter()
    }

    /// How many times the reporter panicked. Each panic was caught and the coordinator went on.
    pub fn reporter_panics(&self) -> u64 {
        self.state.emitter.panics()
    }

    /// Ends every subscription (each yields one `Shutdown` error, then ends), deletes their
    /// consumers, saves every checkpoint (waiting at most the publish deadline for a store that
    /// hangs), closes the connection, reports `Shutdown`, and refuses further publishes and
    /// subscribes. When it returns, every acknowledgement is saved and no event follows
    /// `Shutdown`.
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
        self.state
            .save_all(self.state.config.publish_deadline)
            .await;
        self.state.backend.close(&self.state.listener).await;
        // Each subscription ended: said here, in order, since nothing follows `Shutdown`.
        for (name, _) in &subs {
            let last_processed = self.state.last_acked(name).map_or(0, |c| c.seq);
            emit!(
                self.state.emitter,
                Unsubscribed {
                    stream: self.state.stream.clone(),
                    consumer: name.clone(),
                    last_processed,
                }
            );
        }
        let count = subs.len() as u64;
        self.state
            .emitter
            .emit_last(EventKind::Shutdown, || CoordinatorEvent::Shutdown {
                stream: self.state.stream.clone(),
                subscriptions: count,
            });
    }

    /// The embedded server, when the coordinator runs on the embedded backend.
    pub fn memory_server(&self) -> Option<&MemoryServer> {
        match &self.state.backend {
            Backend::Memory(m) => Some(m.server()),
            Backend::Nats(_) => None,
        }
    }
}
