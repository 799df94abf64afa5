//! The [`Coordinator`]: publish to the stream, subscribe to it, and report every state change.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::backend::memory::{MemoryBackend, MemoryServer};
use crate::backend::nats::{NatsBackend, NatsOptions};
use crate::backend::{Backend, ConnectionChange, ConnectionListener, StreamSpec};
use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{CoordinatorEvent, EventKind};
use crate::reporter::{Emitter, NullReporter, Reporter};
use crate::subscription::{Shared, Subscribe, SubscribeOptions};

/// The longest `max_age` Herald accepts: ten years. Longer is almost certainly a unit mistake.
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

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

/// Settings the coordinator's tasks read after connect.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) heartbeat: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) publish_deadline: Duration,
    pub(crate) max_payload: usize,
}

/// The open subscriptions, by consumer name; the connection listener tells them of reconnects.
type Subscriptions = Arc<Mutex<HashMap<Arc<str>, Arc<Shared>>>>;

/// The coordinator's shared state; subscriptions hold it too.
pub(crate) struct Inner<R> {
    pub(crate) emitter: Arc<Emitter<R>>,
    pub(crate) backend: Backend,
    pub(crate) stream: Arc<str>,
    pub(crate) prefix: Arc<str>,
    pub(crate) node: Arc<str>,
    pub(crate) config: Config,
    subscriptions: Subscriptions,
    shut: AtomicBool,
}

impl<R: Reporter> Inner<R> {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.shut.load(Ordering::Acquire) {
            return Err(Error::shutdown());
        }
        Ok(())
    }

    /// Claims a consumer name for a new subscription.
    pub(crate) fn register(&self, consumer: Arc<str>) -> Result<Arc<Shared>> {
        let mut subs = self.subscriptions.lock();
        if subs.contains_key(&consumer) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "a subscription with consumer {consumer} is already open on this coordinator; give the second one another durable name"
                ),
            ));
        }
        let shared = Arc::new(Shared::new());
        subs.insert(consumer, shared.clone());
        Ok(shared)
    }

    pub(crate) fn unregister(&self, consumer: &str) {
        self.subscriptions.lock().remove(consumer);
    }
}

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
    pub(crate) inner: Arc<Inner<R>>,
}

impl<R: Reporter> Clone for Coordinator<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Reporter> fmt::Debug for Coordinator<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("stream", &self.inner.stream)
            .field("node", &self.inner.node)
            .field("server", &self.inner.backend.server_name())
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Starts configuring a coordinator: the embedded backend and [`NullReporter`] by default.
    pub fn builder() -> Builder {
        Builder::default()
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
        let inner = &*self.inner;
        inner.check_open()?;
        let items = items.into_iter();
        let mut batch = Vec::with_capacity(items.size_hint().0);
        for (key, payload) in items {
            let payload = payload.into();
            batch.push((self.subject_for(key.as_ref(), &payload)?, payload));
        }
        let results = inner.backend.publish_batch(&batch).await;
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
            inner
                .emitter
                .emit(EventKind::Published, || CoordinatorEvent::Published {
                    stream: inner.stream.clone(),
                    subject,
                    seq: stored.seq,
                    duplicate: stored.duplicate,
                });
            seqs.push(stored.seq);
        }
        Ok(seqs)
    }

    /// Validates a key and payload; returns the full subject.
    fn subject_for(&self, key: &str, payload: &Bytes) -> Result<Arc<str>> {
        let inner = &*self.inner;
        crate::subject::validate_subject(key)?;
        if payload.len() > inner.config.max_payload {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "the payload is {} bytes; the maximum is {} bytes",
                    payload.len(),
                    inner.config.max_payload
                ),
            ));
        }
        Ok(format!("{}.{key}", inner.prefix).into())
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
        self.inner.check_open()?;
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
        let inner = &*self.inner;
        let deadline = Instant::now() + inner.config.publish_deadline;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match inner
                .backend
                .publish(&subject, payload.clone(), msg_id)
                .await
            {
                Ok(stored) => {
                    inner
                        .emitter
                        .emit(EventKind::Published, || CoordinatorEvent::Published {
                            stream: inner.stream.clone(),
                            subject: subject.clone(),
                            seq: stored.seq,
                            duplicate: stored.duplicate,
                        });
                    return Ok(PublishAck {
                        seq: stored.seq,
                        duplicate: stored.duplicate,
                    });
                }
                Err(error) => {
                    let delay = inner.config.backoff.delay(attempt);
                    let will_retry = error.is_transient() && Instant::now() + delay < deadline;
                    inner.emitter.emit(EventKind::PublishFailed, || {
                        CoordinatorEvent::PublishFailed {
                            stream: inner.stream.clone(),
                            subject: subject.clone(),
                            attempt,
                            will_retry,
                            error: error.to_string().into(),
                        }
                    });
                    if !will_retry {
                        if !error.is_transient() {
                            return Err(error);
                        }
                        return Err(Error::with_source(
                            ErrorKind::DeadlineExceeded,
                            format!(
                                "publish to {subject} did not succeed within {:?} ({attempt} attempts)",
                                inner.config.publish_deadline
                            ),
                            error,
                        ));
                    }
                    tokio::time::sleep(delay).await;
                    inner.check_open()?;
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
        Subscribe {
            coordinator: self,
            filter: filter.into(),
            options: SubscribeOptions::default(),
        }
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.inner.stream
    }

    /// The server the coordinator is connected to, with credentials redacted (`memory` on the
    /// embedded backend): safe to print and log.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> herald::Result<()> {
    /// let coordinator = herald::Coordinator::builder().connect().await?;
    /// println!("herald on {}", coordinator.server());
    /// # Ok(()) }
    /// ```
    pub fn server(&self) -> Arc<str> {
        self.inner.backend.server_name()
    }

    /// This node's id, the first part of every consumer name.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// The reporter.
    pub fn reporter(&self) -> &R {
        self.inner.emitter.reporter()
    }

    /// How many times the reporter panicked. Each panic was caught and the coordinator went on.
    pub fn reporter_panics(&self) -> u64 {
        self.inner.emitter.panics()
    }

    /// Ends every subscription (each yields one `Shutdown` error, then ends; checkpoints are
    /// saved and consumers deleted), reports `Shutdown`, and refuses further publishes and
    /// subscribes.
    pub async fn shutdown(&self) {
        if self.inner.shut.swap(true, Ordering::AcqRel) {
            return;
        }
        let subs: Vec<(Arc<str>, Arc<Shared>)> = self
            .inner
            .subscriptions
            .lock()
            .iter()
            .map(|(name, sub)| (name.clone(), sub.clone()))
            .collect();
        for (name, sub) in &subs {
            sub.shut_down();
            // Best effort: a consumer left behind expires after its inactivity threshold.
            let _ = self.inner.backend.delete_consumer(name).await;
        }
        if let Backend::Nats(nats) = &self.inner.backend {
            nats.flush().await;
        }
        let count = subs.len() as u64;
        self.inner
            .emitter
            .emit(EventKind::Shutdown, || CoordinatorEvent::Shutdown {
                stream: self.inner.stream.clone(),
                subscriptions: count,
            });
    }

    /// The embedded server, when the coordinator runs on the embedded backend.
    pub fn memory_server(&self) -> Option<&MemoryServer> {
        match &self.inner.backend {
            Backend::Memory(m) => Some(m.server()),
            Backend::Nats(_) => None,
        }
    }
}

enum BackendChoice {
    Memory(MemoryServer),
    Nats(Box<NatsOptions>),
}

/// Configures and connects a [`Coordinator`]; made by [`Coordinator::builder`].
///
/// Every setting has a production default; `connect` validates them all and says which one is
/// wrong.
pub struct Builder<R = NullReporter> {
    backend: BackendChoice,
    stream: String,
    subject_prefix: Option<String>,
    max_age: Duration,
    max_msgs: Option<u64>,
    max_bytes: Option<u64>,
    max_payload: usize,
    duplicate_window: Duration,
    storage: Storage,
    replicas: usize,
    node_id: Option<String>,
    heartbeat: Duration,
    backoff: Backoff,
    publish_deadline: Duration,
    reporter: R,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Memory(MemoryServer::new()),
            stream: "HERALD".into(),
            subject_prefix: None,
            max_age: Duration::from_secs(3600),
            max_msgs: None,
            max_bytes: None,
            max_payload: 1024 * 1024,
            duplicate_window: Duration::from_secs(120),
            storage: Storage::File,
            replicas: 1,
            node_id: None,
            heartbeat: Duration::from_secs(5),
            backoff: Backoff::default(),
            publish_deadline: Duration::from_secs(30),
            reporter: NullReporter,
        }
    }
}

impl<R> fmt::Debug for Builder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match &self.backend {
            BackendChoice::Memory(_) => "memory".to_string(),
            BackendChoice::Nats(o) => format!("{o:?}"),
        };
        f.debug_struct("Builder")
            .field("backend", &backend)
            .field("stream", &self.stream)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl<R: Reporter> Builder<R> {
    /// Uses the embedded backend with a private [`MemoryServer`] (the default).
    pub fn memory(mut self) -> Self {
        self.backend = BackendChoice::Memory(MemoryServer::new());
        self
    }

    /// Uses the embedded backend on a shared [`MemoryServer`].
    pub fn memory_server(mut self, server: MemoryServer) -> Self {
        self.backend = BackendChoice::Memory(server);
        self
    }

    /// Uses NATS JetStream at `url` (a comma-separated list is accepted); further NATS settings
    /// with [`nats_options`](Self::nats_options).
    pub fn nats(mut self, url: impl Into<String>) -> Self {
        self.backend = BackendChoice::Nats(Box::new(NatsOptions::new(url)));
        self
    }

    /// Uses NATS JetStream with full connection options (auth, TLS, timeouts).
    pub fn nats_options(mut self, options: NatsOptions) -> Self {
        self.backend = BackendChoice::Nats(Box::new(options));
        self
    }

    /// The stream's name (default `HERALD`): `[A-Za-z0-9_-]`.
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// The subject prefix the stream captures (`<prefix>.>`); default: the stream name.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = Some(prefix.into());
        self
    }

    /// Retention: messages older than this are removed (default one hour; at most
    /// [`MAX_AGE_LIMIT`]).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Retention: keep at most this many messages.
    pub fn max_msgs(mut self, max: u64) -> Self {
        self.max_msgs = Some(max);
        self
    }

    /// Retention: keep at most this many bytes.
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = Some(max);
        self
    }

    /// The largest payload `publish` accepts (default 1 MiB, NATS's default).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// How long message ids are remembered for idempotent publish (default two minutes).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// File (default) or memory storage on the NATS server.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Stream replicas in a JetStream cluster (1 to 5, default 1).
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// This node's id, the first part of its consumer names (default: random per coordinator).
    /// Set a stable id so a restarted process replaces its own consumers.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }

    /// Idle heartbeat interval for subscriptions (default 5 s); missed heartbeats are noticed
    /// within two intervals.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// Backoff for resubscribes and publish retries (default 50 ms doubling to 5 s, jittered).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long `publish` retries transient failures before giving up (default 30 s).
    pub fn publish_deadline(mut self, deadline: Duration) -> Self {
        self.publish_deadline = deadline;
        self
    }

    /// Sets the reporter that receives every [`CoordinatorEvent`]; the default is
    /// [`NullReporter`].
    pub fn reporter<R2: Reporter>(self, reporter: R2) -> Builder<R2> {
        Builder {
            backend: self.backend,
            stream: self.stream,
            subject_prefix: self.subject_prefix,
            max_age: self.max_age,
            max_msgs: self.max_msgs,
            max_bytes: self.max_bytes,
            max_payload: self.max_payload,
            duplicate_window: self.duplicate_window,
            storage: self.storage,
            replicas: self.replicas,
            node_id: self.node_id,
            heartbeat: self.heartbeat,
            backoff: self.backoff,
            publish_deadline: self.publish_deadline,
            reporter,
        }
    }

    fn validate(&self) -> Result<(String, String)> {
        use crate::subject::{validate_name, validate_subject};
        validate_name("stream name", ErrorKind::InvalidStreamName, &self.stream)?;
        let prefix = self
            .subject_prefix
            .clone()
            .unwrap_or_else(|| self.stream.clone());
        validate_subject(&prefix).map_err(|e| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!("invalid subject prefix: {e}"),
            )
        })?;
        let node = match &self.node_id {
            Some(id) => id.clone(),
            None => nuid::next().to_string(),
        };
        validate_name("node id", ErrorKind::InvalidConfig, &node)?;
        let invalid = |msg: String| Err(Error::new(ErrorKind::InvalidConfig, msg));
        if self.max_age.is_zero() {
            return invalid(
                "max_age must be greater than zero: Herald needs limits retention".into(),
            );
        }
        if self.max_age > MAX_AGE_LIMIT {
            return invalid(format!(
                "max_age {:?} is longer than ten years; use a shorter age (is the unit right?)",
                self.max_age
            ));
        }
        if self.max_msgs == Some(0) || self.max_bytes == Some(0) {
            return invalid("max_msgs and max_bytes must be greater than zero when set".into());
        }
        if self.max_payload == 0 {
            return invalid("max_payload must be greater than zero".into());
        }
        if self.heartbeat.is_zero() {
            return invalid("the heartbeat interval must be greater than zero".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid(format!("replicas must be 1 to 5, not {}", self.replicas));
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return invalid(
                "backoff needs an initial delay above zero and a max at least as long".into(),
            );
        }
        if self.publish_deadline.is_zero() {
            return invalid("the publish deadline must be greater than zero".into());
        }
        Ok((prefix, node))
    }

    /// Validates the settings, connects, creates or reconciles the stream, and reports
    /// `Connected` and `StreamReady`.
    pub async fn connect(self) -> Result<Coordinator<R>> {
        let (prefix, node) = self.validate()?;
        let spec = StreamSpec {
            name: self.stream.as_str().into(),
            subjects: format!("{prefix}.>").into(),
            max_age: self.max_age,
            max_msgs: self.max_msgs,
            max_bytes: self.max_bytes,
            max_payload: self.max_payload,
            // NATS refuses a duplicate window longer than the stream's max age.
            duplicate_window: self.duplicate_window.min(self.max_age),
            storage: self.storage,
            replicas: self.replicas,
        };
        let emitter = Arc::new(Emitter::new(self.reporter));
        let subscriptions = Subscriptions::default();
        let listener = connection_listener(emitter.clone(), subscriptions.clone());
        let backend = match self.backend {
            BackendChoice::Memory(server) => {
                let backend = MemoryBackend::new(server, spec.clone());
                backend.add_listener(listener);
                Backend::Memory(backend)
            }
            BackendChoice::Nats(options) => Backend::Nats(Arc::new(
                NatsBackend::connect(*options, spec.clone(), listener).await?,
            )),
        };
        let max_payload = match &backend {
            Backend::Nats(nats) => nats.max_payload(),
            Backend::Memory(_) => self.max_payload,
        };
        let server = backend.server_name();
        emitter.emit(EventKind::Connected, || CoordinatorEvent::Connected {
            server,
        });
        let ready = backend.ensure_stream().await?;
        emitter.emit(EventKind::StreamReady, || CoordinatorEvent::StreamReady {
            stream: spec.name.clone(),
            created: ready.created,
            max_age: spec.max_age,
            max_msgs: spec.max_msgs,
            max_bytes: spec.max_bytes,
            first_seq: ready.bounds.first.min(ready.bounds.last),
            last_seq: ready.bounds.last,
        });
        Ok(Coordinator {
            inner: Arc::new(Inner {
                emitter,
                backend,
                stream: spec.name,
                prefix: prefix.into(),
                node: node.into(),
                config: Config {
                    heartbeat: self.heartbeat,
                    backoff: self.backoff,
                    publish_deadline: self.publish_deadline,
                    max_payload,
                },
                subscriptions,
                shut: AtomicBool::new(false),
            }),
        })
    }
}

/// Turns the backend's connection changes into events. A `Connected` after a `Disconnected` is a
/// reconnect: async-nats has no event of its own for it.
///
/// On a reconnect every subscription is told to resubscribe at its cursor + 1 at once, rather
/// than waiting for missed heartbeats to reveal that a restarted server lost its consumers.
fn connection_listener<R: Reporter>(
    emitter: Arc<Emitter<R>>,
    subscriptions: Subscriptions,
) -> ConnectionListener {
    let down_since: Mutex<Option<Instant>> = Mutex::new(None);
    Arc::new(move |change| match change {
        // The first connection is reported by `connect` itself, in order with `StreamReady`.
        ConnectionChange::Connected { server } => {
            if let Some(since) = down_since.lock().take() {
                emitter.emit(EventKind::Reconnected, || CoordinatorEvent::Reconnected {
                    server,
                    downtime: since.elapsed(),
                });
                for sub in subscriptions.lock().values() {
                    sub.reconnected();
                }
            }
        }
        ConnectionChange::Disconnected { server, cause } => {
            down_since.lock().get_or_insert_with(Instant::now);
            emitter.emit(EventKind::Disconnected, || CoordinatorEvent::Disconnected {
                server,
                cause,
            });
        }
        // async-nats also asks for a delay before the first connection: not a reconnect.
        ConnectionChange::Reconnecting { .. } if down_since.lock().is_none() => {}
        ConnectionChange::Reconnecting { attempt, delay } => {
            emitter.emit(EventKind::Reconnecting, || CoordinatorEvent::Reconnecting {
                attempt,
                delay,
            })
        }
        ConnectionChange::LameDuck { server } => emitter.emit(EventKind::LameDuck, || {
            CoordinatorEvent::LameDuck { server }
        }),
        ConnectionChange::SlowConsumer { sid } => emitter.emit(EventKind::SlowConsumer, || {
            CoordinatorEvent::SlowConsumer { sid }
        }),
        ConnectionChange::ServerError { message } => emitter.emit(EventKind::ServerError, || {
            CoordinatorEvent::ServerError { message }
        }),
    })
}
