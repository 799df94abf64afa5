//! The NATS JetStream backend, through async-nats.
//!
//! Streams use limits retention; consumers are pull consumers with idle heartbeats and
//! `AckPolicy::None`: Herald owns the position (the checkpoint), so the server needs no acks.
//! Everything here was checked against nats-server 2.9.10, the oldest server Herald supports:
//! no 2.10+ API is used.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::Stream as _;

use super::{
    ConnectionChange, ConnectionListener, ConsumerItem, ConsumerSpec, DeliverFrom, Fault,
    RawMessage, Stored, StreamBounds, StreamReadyInfo, StreamSpec,
};
use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind, Result};
use crate::Storage;

/// How to authenticate to the NATS server.
#[derive(Clone, Default)]
enum Auth {
    #[default]
    None,
    UserPassword(String, String),
    Token(String),
    NkeySeed(String),
    CredentialsFile(PathBuf),
}

/// Connection options for the NATS backend: servers, auth, TLS, timeouts.
///
/// `Debug` never shows a password, token, seed or the credentials in a URL.
///
/// ```
/// use herald::{Coordinator, NatsOptions};
/// use std::time::Duration;
/// let options = NatsOptions::new("nats://10.0.0.1:4222,nats://10.0.0.2:4222")
///     .name("billing-node-1")
///     .user_and_password("billing", "s3cret")
///     .ping_interval(Duration::from_secs(2));
/// assert!(!format!("{options:?}").contains("s3cret"));
/// let builder = Coordinator::builder().nats_options(options);
/// ```
#[derive(Clone)]
pub struct NatsOptions {
    urls: String,
    name: Option<String>,
    connection_timeout: Duration,
    ping_interval: Duration,
    request_timeout: Duration,
    reconnect_backoff: Backoff,
    auth: Auth,
    root_certificates: Option<PathBuf>,
    client_certificate: Option<(PathBuf, PathBuf)>,
    require_tls: bool,
}

impl fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::None => "none",
            Auth::UserPassword(..) => "user and password",
            Auth::Token(_) => "token",
            Auth::NkeySeed(_) => "nkey",
            Auth::CredentialsFile(_) => "credentials file",
        };
        f.debug_struct("NatsOptions")
            .field("urls", &redact_url(&self.urls))
            .field("name", &self.name)
            .field("connection_timeout", &self.connection_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("auth", &auth)
            .field("root_certificates", &self.root_certificates)
            .field("require_tls", &self.require_tls)
            .finish_non_exhaustive()
    }
}

impl NatsOptions {
    /// Options for the servers at `urls` (comma-separated), with production defaults: a 5 s
    /// connection timeout, a 3 s ping interval (a frozen server is noticed within seconds), a
    /// 5 s request timeout, unlimited reconnects with jittered backoff from 100 ms to 5 s.
    pub fn new(urls: impl Into<String>) -> Self {
        Self {
            urls: urls.into(),
            name: None,
            connection_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            reconnect_backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(5),
            },
            auth: Auth::None,
            root_certificates: None,
            client_certificate: None,
            require_tls: false,
        }
    }

    /// The client name shown by the server's monitoring.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long one connection attempt may take.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How often the client pings the server; a server that stops answering is noticed after
    /// a couple of pings.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// How long a JetStream API request or publish acknowledgement may take.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Delays between reconnection attempts (reconnects never stop).
    pub fn reconnect_backoff(mut self, backoff: Backoff) -> Self {
        self.reconnect_backoff = backoff;
        self
    }

    /// Authenticates with a user and password.
    pub fn user_and_password(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.auth = Auth::UserPassword(user.into(), password.into());
        self
    }

    /// Authenticates with a token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Authenticates with an nkey seed (`SU...`).
    pub fn nkey(mut self, seed: impl Into<String>) -> Self {
        self.auth = Auth::NkeySeed(seed.into());
        self
    }

    /// Authenticates with a credentials file (JWT and nkey seed).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CredentialsFile(path.into());
        self
    }

    /// Trusts the CA certificate(s) in this PEM file.
    pub fn root_certificates(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_certificates = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM) for mutual TLS.
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_certificate = Some((cert.into(), key.into()));
        self
    }

    /// Refuses to connect without TLS.
    pub fn require_tls(mut self, required: bool) -> Self {
        self.require_tls = required;
        self
    }

    async fn connect_options(
        &self,
        addrs: &[async_nats::ServerAddr],
        listener: ConnectionListener,
    ) -> Result<async_nats::ConnectOptions> {
        // async-nats ignores credentials written in the URL: honour them unless set explicitly.
        let from_url = addrs.iter().find_map(|a| {
            let user = a.username()?.to_string();
            Some(match a.password() {
                Some(password) => Auth::UserPassword(user, password.to_string()),
                None => Auth::Token(user),
            })
        });
        let auth = match (&self.auth, from_url) {
            (Auth::None, Some(auth)) => auth,
            (auth, _) => auth.clone(),
        };
        let mut options = match &auth {
            Auth::CredentialsFile(path) => async_nats::ConnectOptions::new()
                .credentials_file(path)
                .await
                .map_err(|e| {
                    Error::with_source(
                        ErrorKind::Authentication,
                        format!("could not read the credentials file {}", path.display()),
                        e,
                    )
                })?,
            _ => async_nats::ConnectOptions::new(),
        };
        options = match &auth {
            Auth::UserPassword(user, password) => {
                options.user_and_password(user.clone(), password.clone())
            }
            Auth::Token(token) => options.token(token.clone()),
            Auth::NkeySeed(seed) => options.nkey(seed.clone()),
            Auth::None | Auth::CredentialsFile(_) => options,
        };
        if let Some(name) = &self.name {
            options = options.name(name);
        }
        if let Some(ca) = &self.root_certificates {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.client_certificate {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let server: Arc<str> = redact_url(&self.urls).into();
        let backoff = self.reconnect_backoff;
        let on_reconnect = listener.clone();
        Ok(options
            .require_tls(self.require_tls)
            .connection_timeout(self.connection_timeout)
            .ping_interval(self.ping_interval)
            .request_timeout(Some(self.request_timeout))
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| {
                let attempt = u32::try_from(attempts).unwrap_or(u32::MAX).max(1);
                // The first attempt after a disconnect is immediate, as async-nats's default.
                let delay = if attempt <= 1 {
                    Duration::ZERO
                } else {
                    backoff.delay(attempt - 1)
                };
                on_reconnect(ConnectionChange::Reconnecting { attempt, delay });
                delay
            })
            .event_callback(move |event| {
                let listener = listener.clone();
                let server = server.clone();
                async move {
                    let change = match event {
                        async_nats::Event::Connected => ConnectionChange::Connected { server },
                        async_nats::Event::Disconnected => ConnectionChange::Disconnected {
                            server,
                            cause: "connection lost".into(),
                        },
                        async_nats::Event::LameDuckMode => ConnectionChange::LameDuck { server },
                        async_nats::Event::SlowConsumer(sid) => {
                            ConnectionChange::SlowConsumer { sid }
                        }
                        async_nats::Event::ServerError(e) => ConnectionChange::ServerError {
                            message: redact_text(&e.to_string()).into(),
                        },
                        async_nats::Event::ClientError(e) => ConnectionChange::ServerError {
                            message: redact_text(&format!("client error: {e}")).into(),
                        },
                        async_nats::Event::Draining | async_nats::Event::Closed => return,
                    };
                    listener(change);
                }
            }))
    }
}

/// Hides credentials in a NATS URL or a comma-separated list of them:
/// `nats://user:pass@host:4222` becomes `nats://***@host:4222`.
///
/// ```
/// assert_eq!(herald::redact_url("nats://u:p@h:4222"), "nats://***@h:4222");
/// assert_eq!(herald::redact_url("tls://token@a,nats://b"), "tls://***@a,nats://b");
/// assert_eq!(herald::redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
/// ```
pub fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let url = url.trim();
            let (scheme, rest) = match url.find("://") {
                Some(i) => url.split_at(i + 3),
                None => ("", url),
            };
            match rest.rfind('@') {
                Some(at) => format!("{scheme}***{}", &rest[at..]),
                None => url.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Redacts every URL-like word in a free text (server and client error messages).
fn redact_text(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains('@') {
                redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A coordinator's connection to NATS JetStream.
#[derive(Clone)]
pub(crate) struct NatsBackend {
    client: async_nats::Client,
    js: jetstream::Context,
    spec: Arc<StreamSpec>,
    server: Arc<str>,
}

impl fmt::Debug for NatsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBackend")
            .field("server", &self.server)
            .field("stream", &self.spec.name)
            .finish()
    }
}

fn connect_error(e: async_nats::ConnectError, server: &str) -> Error {
    use async_nats::ConnectErrorKind as K;
    let (kind, what) = match e.kind() {
        K::AuthorizationViolation | K::Authentication => (
            ErrorKind::Authentication,
            "the server rejected the credentials",
        ),
        K::Tls => (ErrorKind::Tls, "TLS failed"),
        K::TimedOut => (ErrorKind::Timeout, "the connection timed out"),
        K::ServerParse => (ErrorKind::InvalidConfig, "the server address is invalid"),
        // async-nats reports a failed TLS handshake as I/O; its text names the certificate.
        K::Io if is_tls_failure(&e.to_string()) => (ErrorKind::Tls, "TLS failed"),
        K::Dns | K::Io | K::MaxReconnects => (ErrorKind::Connect, "the server is unreachable"),
    };
    Error::new(
        kind,
        format!(
            "could not connect to {server}: {what} ({})",
            redact_text(&e.to_string())
        ),
    )
}

fn is_tls_failure(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "issuer"]
        .iter()
        .any(|needle| text.contains(needle))
}

/// The JetStream API error code inside an async-nats error, if there is one.
fn jetstream_code(error: &(dyn std::error::Error + 'static)) -> Option<jetstream::ErrorCode> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(js) = e.downcast_ref::<jetstream::Error>() {
            return Some(js.error_code());
        }
        current = e.source();
    }
    None
}

/// Errors whose kind may carry a JetStream API error code.
trait JetStreamCode: std::error::Error + Send + Sync + Sized + 'static {
    fn code(&self) -> Option<jetstream::ErrorCode> {
        jetstream_code(self)
    }
}

impl JetStreamCode for jetstream::context::GetStreamError {
    fn code(&self) -> Option<jetstream::ErrorCode> {
        match self.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(e) => Some(e.error_code()),
            _ => None,
        }
    }
}

impl JetStreamCode for jetstream::stream::ConsumerError {
    fn code(&self) -> Option<jetstream::ErrorCode> {
        match self.kind() {
            jetstream::stream::ConsumerErrorKind::JetStream(e) => Some(e.error_code()),
            _ => None,
        }
    }
}

impl JetStreamCode for jetstream::context::RequestError {}

fn request_error(what: &str, error: impl JetStreamCode) -> Error {
    let kind = match error.code() {
        Some(jetstream::ErrorCode::STREAM_NOT_FOUND) => ErrorKind::StreamNotFound,
        Some(jetstream::ErrorCode::CONSUMER_NOT_FOUND) => ErrorKind::ConsumerNotFound,
        Some(_) => ErrorKind::Server,
        None => {
            let text = error.to_string();
            if text.contains("timed out") || text.contains("timeout") {
                ErrorKind::Timeout
            } else {
                ErrorKind::Disconnected
            }
        }
    };
    Error::with_source(kind, what.to_string(), error)
}

impl NatsBackend {
    pub(crate) async fn connect(
        options: NatsOptions,
        spec: StreamSpec,
        listener: ConnectionListener,
    ) -> Result<Self> {
        let server: Arc<str> = redact_url(&options.urls).into();
        let addrs: Vec<async_nats::ServerAddr> = options
            .urls
            .split(',')
            .map(|u| u.trim().parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::InvalidConfig,
                    format!("the server address {server} is invalid"),
                    e,
                )
            })?;
        let client = options
            .connect_options(&addrs, listener)
            .await?
            .connect(addrs)
            .await
            .map_err(|e| connect_error(e, &server))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(options.request_timeout);
        let mut spec = spec;
        // The server's limit wins when it is lower than Herald's.
        let server_max = client.server_info().max_payload;
        if server_max > 0 {
            spec.max_payload = spec.max_payload.min(server_max);
        }
        Ok(Self {
            client,
            js,
            spec: Arc::new(spec),
            server,
        })
    }

    pub(crate) fn server_name(&self) -> Arc<str> {
        self.server.clone()
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.spec.max_payload
    }

    pub(crate) async fn flush(&self) {
        let _ = self.client.flush().await;
    }

    fn stream_config(&self) -> stream::Config {
        let spec = &*self.spec;
        stream::Config {
            name: spec.name.to_string(),
            subjects: vec![spec.subjects.to_string()],
            retention: stream::RetentionPolicy::Limits,
            max_age: spec.max_age,
            max_messages: spec
                .max_msgs
                .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX)),
            max_bytes: spec
                .max_bytes
                .map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX)),
            storage: match spec.storage {
                Storage::File => stream::StorageType::File,
                Storage::Memory => stream::StorageType::Memory,
            },
            num_replicas: spec.replicas,
            duplicate_window: spec.duplicate_window,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }

    pub(crate) async fn ensure_stream(&self) -> Result<StreamReadyInfo> {
        let name = &*self.spec.name;
        let created = match self.js.get_stream(name).await {
            Ok(mut existing) => {
                let info = existing
                    .info()
                    .await
                    .map_err(|e| request_error("could not read the stream's configuration", e))?;
                if info.config.retention != stream::RetentionPolicy::Limits {
                    return Err(Error::new(
                        ErrorKind::StreamMismatch,
                        format!(
                            "stream {name} exists with {:?} retention; Herald needs Limits retention and will not change someone else's stream: delete it or choose another stream name",
                            info.config.retention
                        ),
                    ));
                }
                false
            }
            Err(e) if e.code() == Some(jetstream::ErrorCode::STREAM_NOT_FOUND) => true,
            Err(e) => return Err(request_error("could not look up the stream", e)),
        };
        let info = self
            .js
            .create_or_update_stream(self.stream_config())
            .await
            .map_err(|e| {
                let text = e.to_string();
                let kind = if text.contains("subjects overlap") {
                    ErrorKind::StreamMismatch
                } else {
                    ErrorKind::Server
                };
                Error::with_source(kind, format!("could not create or update stream {name}"), e)
            })?;
        Ok(StreamReadyInfo {
            created,
            bounds: bounds_of(&info.state),
        })
    }

    pub(crate) async fn publish(
        &self,
        subject: &Arc<str>,
        payload: Bytes,
        msg_id: Option<&str>,
    ) -> Result<Stored> {
        let subject = async_nats::Subject::from(&**subject);
        let sent = match msg_id {
            None => self.js.publish(subject, payload).await,
            Some(id) => {
                self.js
                    .send_publish(
                        subject,
                        jetstream::message::PublishMessage::build()
                            .payload(payload)
                            .message_id(id),
                    )
                    .await
            }
        };
        self.settle(sent).await
    }

    /// Pipelined publish: keeps up to `WINDOW` acknowledgements in flight and returns one result
    /// per message, in order.
    pub(crate) async fn publish_batch(&self, items: &[(Arc<str>, Bytes)]) -> Vec<Result<Stored>> {
        const WINDOW: usize = 512;
        let mut results = Vec::with_capacity(items.len());
        let mut in_flight = std::collections::VecDeque::with_capacity(WINDOW);
        for (subject, payload) in items {
            if in_flight.len() == WINDOW {
                if let Some(pending) = in_flight.pop_front() {
                    results.push(self.settle(pending).await);
                }
            }
            let sent = self
                .js
                .publish(async_nats::Subject::from(&**subject), payload.clone())
                .await;
            in_flight.push_back(sent);
        }
        for pending in in_flight {
            results.push(self.settle(pending).await);
        }
        results
    }

    async fn settle(
        &self,
        sent: std::result::Result<
            jetstream::context::PublishAckFuture,
            jetstream::context::PublishError,
        >,
    ) -> Result<Stored> {
        let ack = match sent {
            Ok(future) => future.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(ack) => Ok(Stored {
                seq: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Err(e) => Err(self.publish_error(e).await),
        }
    }

    async fn publish_error(&self, e: jetstream::context::PublishError) -> Error {
        use jetstream::context::PublishErrorKind as K;
        let kind = match e.kind() {
            K::MaxPayloadExceeded => ErrorKind::PayloadTooLarge,
            K::TimedOut => ErrorKind::Timeout,
            K::BrokenPipe => ErrorKind::Disconnected,
            // "No responders" also looks like this during a leader change: only a stream that
            // is confirmed missing is reported as such.
            K::StreamNotFound => match self.js.get_stream(&*self.spec.name).await {
                // Deleted underneath us: Herald owns the stream's definition, so it recreates
                // it and the publish is retried.
                Err(ge) if ge.code() == Some(jetstream::ErrorCode::STREAM_NOT_FOUND) => {
                    if let Err(recreate) = self.ensure_stream().await {
                        return recreate;
                    }
                    ErrorKind::StreamNotFound
                }
                _ => ErrorKind::Timeout,
            },
            _ => ErrorKind::Server,
        };
        Error::with_source(
            kind,
            format!("publish to stream {} failed", self.spec.name),
            e,
        )
    }

    /// The stream's bounds; a stream deleted underneath Herald is recreated (empty).
    pub(crate) async fn bounds(&self) -> Result<StreamBounds> {
        match self.js.get_stream(&*self.spec.name).await {
            Ok(stream) => Ok(bounds_of(&stream.cached_info().state)),
            Err(e) if e.code() == Some(jetstream::ErrorCode::STREAM_NOT_FOUND) => {
                Ok(self.ensure_stream().await?.bounds)
            }
            Err(e) => Err(request_error("could not read the stream's state", e)),
        }
    }

    pub(crate) async fn create_consumer(&self, spec: &ConsumerSpec) -> Result<NatsConsumer> {
        let deliver_policy = match spec.from {
            DeliverFrom::Sequence(seq) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: seq.max(1),
            },
            DeliverFrom::Time(t) => consumer::DeliverPolicy::ByStartTime {
                start_time: t.into(),
            },
        };
        let config = consumer::pull::Config {
            name: Some(spec.name.to_string()),
            filter_subject: spec.filter.to_string(),
            deliver_policy,
            ack_policy: consumer::AckPolicy::None,
            // A consumer left behind by a crashed process disappears by itself.
            inactive_threshold: (spec.heartbeat * 12).max(Duration::from_secs(30)),
            // Herald owns the position, so the server keeps no consumer state on disk: creating
            // and deleting are cheaper, and a same-name consumer recreated while the old one's
            // files are being removed cannot trip over them (nats-server 2.9 error 10051).
            memory_storage: true,
            ..Default::default()
        };
        let consumer = self
            .js
            .create_consumer_on_stream(config, &*self.spec.name)
            .await
            .map_err(|e| request_error(&format!("could not create consumer {}", spec.name), e))?;
        let messages = consumer
            .stream()
            .heartbeat(spec.heartbeat)
            .expires((spec.heartbeat * 6).max(Duration::from_secs(30)))
            .max_messages_per_batch(500)
            .messages()
            .await
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Disconnected,
                    format!("could not start consuming {}", spec.name),
                    e,
                )
            })?;
        Ok(NatsConsumer {
            messages: Box::pin(messages),
            ended: false,
            handle: consumer,
            last_seq: 0,
            idle_after: spec.heartbeat * 6,
            idle: Box::pin(tokio::time::sleep(spec.heartbeat * 6)),
            check: None,
        })
    }

    pub(crate) async fn delete_consumer(&self, name: &str) -> Result<()> {
        let subject = format!("CONSUMER.DELETE.{}.{name}", self.spec.name);
        let response: std::result::Result<jetstream::response::Response<serde_json::Value>, _> =
            self.js.request(subject, &serde_json::json!({})).await;
        match response {
            Ok(jetstream::response::Response::Ok(_)) => Ok(()),
            Ok(jetstream::response::Response::Err { error }) => match error.error_code() {
                jetstream::ErrorCode::CONSUMER_NOT_FOUND
                | jetstream::ErrorCode::STREAM_NOT_FOUND => Ok(()),
                _ => Err(Error::with_source(
                    ErrorKind::Server,
                    format!("could not delete consumer {name}"),
                    error,
                )),
            },
            Err(e) => Err(request_error(
                &format!("could not delete consumer {name}"),
                e,
            )),
        }
    }
}

fn bounds_of(state: &stream::State) -> StreamBounds {
    if state.messages == 0 {
        StreamBounds {
            first: state.last_sequence + 1,
            last: state.last_sequence,
        }
    } else {
        StreamBounds {
            first: state.first_sequence,
            last: state.last_sequence,
        }
    }
}

/// A pull consumer's message stream.
///
/// With `AckPolicy::None` the server never redelivers, so a message lost between server and
/// client (a client buffer overflowing) at the tail of the stream would leave the subscription
/// waiting forever: no later message reveals the gap. While idle, the consumer therefore asks
/// the server every six heartbeats how far it has delivered, and reports a fault when that is
/// beyond the last message received.
pub(crate) struct NatsConsumer {
    messages: Pin<Box<consumer::pull::Stream>>,
    ended: bool,
    handle: consumer::PullConsumer,
    last_seq: u64,
    idle_after: Duration,
    idle: Pin<Box<tokio::time::Sleep>>,
    check: Option<futures::future::BoxFuture<'static, Option<u64>>>,
}

impl fmt::Debug for NatsConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConsumer").finish_non_exhaustive()
    }
}

impl NatsConsumer {
    fn reset_idle(&mut self) {
        let next = tokio::time::Instant::now() + self.idle_after;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_every_credential_form() {
        for (url, want) in [
            ("nats://user:pass@host:4222", "nats://***@host:4222"),
            ("nats://tok@host", "nats://***@host"),
            ("user:p@ss@host:4222", "***@host:4222"),
            ("nats://a:1,nats://u:p@b:2", "nats://a:1,nats://***@b:2"),
        ] {
            assert_eq!(redact_url(url), want);
        }
        assert_eq!(
            redact_text("failed to connect nats://u:p@h:1 now"),
            "failed to connect nats://***@h:1 now"
        );
    }
}
