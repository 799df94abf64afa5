//! [`Builder`]: every setting of a coordinator, with production defaults, validated at
//! [`connect`](Builder::connect).

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::memory::{MemoryBackend, MemoryServer};
use crate::backend::nats::{NatsBackend, NatsOptions};
use crate::backend::seam::Storage;
use crate::backend::{Backend, ConnectionChange, StreamSpec};
use crate::backoff::Backoff;
use crate::coordinator::connection::connection_listener;
use crate::coordinator::Coordinator;
use crate::emitter::{emit, Emitter};
use crate::error::{Error, ErrorKind, Result};
use crate::reporter::{NullReporter, Reporter};
use crate::setters::setters;
use crate::state::{Config, CoordinatorState, Subscriptions};

/// The longest `max_age` Herald accepts: ten years. Longer is almost certainly a unit mistake.
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl Coordinator {
    /// Starts configuring a coordinator: the embedded backend and [`NullReporter`] by default.
    pub fn builder() -> Builder {
        Builder::default()
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

    setters! {
        /// The stream's name (default `HERALD`): `[A-Za-z0-9_-]`.
        fn stream(name: impl Into<String>) => stream = name.into();
        /// The subject prefix the stream captures (`<prefix>.>`); default: the stream name.
        fn subject_prefix(prefix: impl Into<String>) => subject_prefix = Some(prefix.into());
        /// Retention: messages older than this are removed (default one hour; at most
        /// [`MAX_AGE_LIMIT`]).
        fn max_age(max_age: Duration) => max_age = max_age;
        /// Retention: keep at most this many messages.
        fn max_msgs(max: u64) => max_msgs = Some(max);
        /// Retention: keep at most this many bytes.
        fn max_bytes(max: u64) => max_bytes = Some(max);
        /// The largest payload `publish` accepts (default 1 MiB, NATS's default).
        fn max_payload(bytes: usize) => max_payload = bytes;
        /// How long message ids are remembered for idempotent publish (default two minutes).
        fn duplicate_window(window: Duration) => duplicate_window = window;
        /// File (default) or memory storage on the NATS server.
        fn storage(storage: Storage) => storage = storage;
        /// Stream replicas in a JetStream cluster (1 to 5, default 1).
        fn replicas(replicas: usize) => replicas = replicas;
        /// This node's id, the first part of its consumer names (default: random per coordinator).
        /// Set a stable id so a restarted process replaces its own consumers.
        fn node_id(id: impl Into<String>) => node_id = Some(id.into());
        /// Idle heartbeat interval for subscriptions (default 5 s); missed heartbeats are noticed
        /// within two intervals.
        fn heartbeat(interval: Duration) => heartbeat = interval;
        /// Backoff for resubscribes and publish retries (default 50 ms doubling to 5 s, jittered).
        fn backoff(backoff: Backoff) => backoff = backoff;
        /// How long `publish` retries transient failures before giving up (default 30 s).
        fn publish_deadline(deadline: Duration) => publish_deadline = deadline;
    }

    /// Sets the reporter that receives every [`CoordinatorEvent`](crate::CoordinatorEvent); the default is
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
        let shut = Arc::new(AtomicBool::new(false));
        let listener = connection_listener(emitter.clone(), subscriptions.clone(), shut.clone());
        let backend = match self.backend {
            BackendChoice::Memory(server) => {
                let backend = MemoryBackend::new(server, spec.clone());
                backend.add_listener(listener.clone());
                Backend::Memory(backend)
            }
            BackendChoice::Nats(options) => Backend::Nats(Arc::new(
                NatsBackend::connect(*options, spec.clone(), listener.clone()).await?,
            )),
        };
        let max_payload = match &backend {
            Backend::Nats(nats) => nats.max_payload(),
            Backend::Memory(_) => self.max_payload,
        };
        let server = backend.server_name();
        // The listener learns of the first connection here: what it hears later is news.
        listener(ConnectionChange::Connected {
            server: server.clone(),
        });
        emit!(emitter, Connected { server });
        let ready = match backend.ensure_stream().await {
            Ok(ready) => ready,
            Err(error) => {
                // A coordinator that never was must not stay a listener of a shared server.
                backend.close(&listener).await;
                return Err(error);
            }
        };
        emit!(
            emitter,
            StreamReady {
                stream: spec.name.clone(),
                created: ready.created,
                max_age: spec.max_age,
                max_msgs: spec.max_msgs,
                max_bytes: spec.max_bytes,
                first_seq: ready.bounds.first.min(ready.bounds.last),
                last_seq: ready.bounds.last,
            }
        );
        Ok(Coordinator {
            state: Arc::new(CoordinatorState {
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
                savers: Default::default(),
                listener,
                shut,
            }),
        })
    }
}
