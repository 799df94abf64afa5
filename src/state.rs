//! What a coordinator shares with its subscriptions: the reporter, the backend, the names and
//! settings, and the open subscriptions with the [`Signals`] the coordinator sends them.
//!
//! It sits below both the [`Coordinator`](crate::Coordinator) and its subscriptions, so a
//! subscription holds an `Arc<CoordinatorState>` and never the coordinator itself.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use futures::task::AtomicWaker;
use parking_lot::Mutex;

use crate::backend::{Backend, ConnectionListener, StreamBounds};
use crate::backoff::Backoff;
use crate::checkpoint::progress::Acks;
use crate::checkpoint::Checkpoint;
use crate::emitter::Emitter;
use crate::error::{Error, ErrorKind, Result};

/// Settings the coordinator's tasks read after connect.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) heartbeat: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) publish_deadline: Duration,
    pub(crate) max_payload: usize,
}

/// The open subscriptions, by consumer name; the connection listener tells them of reconnects.
pub(crate) type Subscriptions = Arc<Mutex<HashMap<Arc<str>, Arc<Signals>>>>;

/// A coordinator's shared state: one per coordinator, held by every clone of it and by every
/// subscription.
pub(crate) struct CoordinatorState<R> {
    pub(crate) emitter: Arc<Emitter<R>>,
    pub(crate) backend: Backend,
    pub(crate) stream: Arc<str>,
    pub(crate) prefix: Arc<str>,
    pub(crate) node: Arc<str>,
    pub(crate) config: Config,
    pub(crate) subscriptions: Subscriptions,
    /// The acknowledgements of the latest subscription of each consumer name: a new
    /// subscription of the name waits for the old one's last save before it loads.
    pub(crate) savers: Mutex<HashMap<Arc<str>, Arc<Acks>>>,
    /// The connection listener, removed from the backend at shutdown.
    pub(crate) listener: ConnectionListener,
    /// Set by `shutdown`; the connection listener reads it too, so nothing follows `Shutdown`.
    pub(crate) shut: Arc<AtomicBool>,
}

impl<R> fmt::Debug for CoordinatorState<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatorState")
            .field("stream", &self.stream)
            .field("node", &self.node)
            .field("server", &self.backend.server_name())
            .finish_non_exhaustive()
    }
}

impl<R> CoordinatorState<R> {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.shut.load(Ordering::Acquire) {
            return Err(Error::shutdown());
        }
        Ok(())
    }

    /// Claims a consumer name for a new subscription.
    pub(crate) fn register(&self, consumer: Arc<str>) -> Result<Arc<Signals>> {
        let mut subs = self.subscriptions.lock();
        if subs.contains_key(&consumer) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "a subscription with consumer {consumer} is already open on this coordinator; give the second one another durable name"
                ),
            ));
        }
        let signals = Arc::new(Signals::default());
        subs.insert(consumer, signals.clone());
        Ok(signals)
    }

    /// Gives a consumer name back, if `signals` still holds it (a newer subscription may have
    /// claimed the name since).
    pub(crate) fn unregister(&self, consumer: &str, signals: &Arc<Signals>) {
        let mut subs = self.subscriptions.lock();
        if subs.get(consumer).is_some_and(|s| Arc::ptr_eq(s, signals)) {
            subs.remove(consumer);
        }
    }

    /// Waits until the previous subscription of `consumer` in this coordinator has saved its
    /// last checkpoint, so a new one loads what the old one acknowledged.
    pub(crate) async fn previous_saved(&self, consumer: &str) {
        let previous = self.savers.lock().get(consumer).cloned();
        if let Some(acks) = previous {
            acks.finished().await;
        }
    }

    /// Saves the last acknowledgements of every subscription, as each would when it ends; waits
    /// at most `limit` for stores that hang.
    pub(crate) async fn save_all(&self, limit: Duration) {
        let savers: Vec<Arc<Acks>> = self.savers.lock().values().cloned().collect();
        for acks in &savers {
            acks.close();
        }
        let all = futures::future::join_all(savers.iter().map(|acks| acks.finished()));
        let _ = tokio::time::timeout(limit, all).await;
    }

    /// The last position the application acknowledged on the latest subscription of
    /// `consumer` in this process, with its stream's identity.
    pub(crate) fn last_acked(&self, consumer: &str) -> Option<Checkpoint> {
        self.savers
            .lock()
            .get(consumer)
            .map(|acks| acks.acked_checkpoint())
    }

    /// Records the acknowledgements of a new subscription of `consumer`.
    pub(crate) fn track_saver(&self, consumer: Arc<str>, acks: Arc<Acks>) {
        self.savers.lock().insert(consumer, acks);
    }

    /// Creates the stream again after a call found it missing, and returns its (empty) bounds.
    ///
    /// Herald owns its stream's definition, so a stream deleted underneath it (by an operator,
    /// or lost with a restarted server's memory storage) is recreated: this is the one place
    /// that decides so. Backends only report `StreamNotFound`.
    pub(crate) async fn recreate_stream(&self) -> Result<StreamBounds> {
        Ok(self.backend.ensure_stream().await?.bounds)
    }
}

impl<R> Drop for CoordinatorState<R> {
    /// A coordinator dropped without `shutdown` leaves a shared embedded server too: the server
    /// must not keep its reporter alive, nor tell it of connection changes.
    fn drop(&mut self) {
        if let Backend::Memory(memory) = &self.backend {
            memory.remove_listener(&self.listener);
        }
    }
}

/// What the coordinator tells one open subscription, from another task: the connection came
/// back, or the coordinator shut down.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    closed: AtomicBool,
    reconnected: AtomicBool,
    shutdown: AtomicBool,
    waker: AtomicWaker,
}

impl Signals {
    /// The connection came back: the consumer may be gone with a restarted server.
    pub(crate) fn reconnected(&self) {
        self.reconnected.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ends the subscription because the coordinator shut down.
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Wakes `waker` on the next signal.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Whether a reconnect was signalled since the last call.
    pub(crate) fn take_reconnected(&self) -> bool {
        self.reconnected.swap(false, Ordering::AcqRel)
    }

    /// Forgets a reconnect signalled before the current consumer was made.
    pub(crate) fn clear_reconnected(&self) {
        self.reconnected.store(false, Ordering::Release);
    }
}
