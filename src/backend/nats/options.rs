//! [`NatsOptions`]: servers, authentication, TLS and timeouts, and how they become async-nats
//! connect options that report every connection change.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::seam::{ConnectionChange, ConnectionListener};
use crate::backoff::Backoff;
use crate::error::{Error, ErrorKind, Result};
use crate::redact::{redact_text, redact_url};
use crate::setters::setters;

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
    pub(super) urls: String,
    name: Option<String>,
    connection_timeout: Duration,
    ping_interval: Duration,
    pub(super) request_timeout: Duration,
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

    setters! {
        /// The client name shown by the server's monitoring.
        fn name(name: impl Into<String>) => name = Some(name.into());
        /// How long one connection attempt may take.
        fn connection_timeout(timeout: Duration) => connection_timeout = timeout;
        /// How often the client pings the server; a server that stops answering is noticed after
        /// a couple of pings.
        fn ping_interval(interval: Duration) => ping_interval = interval;
        /// How long a JetStream API request or publish acknowledgement may take.
        fn request_timeout(timeout: Duration) => request_timeout = timeout;
        /// Delays between reconnection attempts (reconnects never stop).
        fn reconnect_backoff(backoff: Backoff) => reconnect_backoff = backoff;
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

    setters! {
        /// Authenticates with a token.
        fn token(token: impl Into<String>) => auth = Auth::Token(token.into());
        /// Authenticates with an nkey seed (`SU...`).
        fn nkey(seed: impl Into<String>) => auth = Auth::NkeySeed(seed.into());
        /// Authenticates with a credentials file (JWT and nkey seed).
        fn credentials_file(path: impl Into<PathBuf>) => auth = Auth::CredentialsFile(path.into());
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

    pub(super) async fn connect_options(
        &self,
        addrs: &[async_nats::ServerAddr],
        server: Arc<str>,
        listener: ConnectionListener,
    ) -> Result<async_nats::ConnectOptions> {
        // async-nats ignores credentials written in the URL: honour them unless set explicitly.
        let auth = match (&self.auth, credentials_in(addrs)) {
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
                        async_nats::Event::ClientError(e @ async_nats::ClientError::Other(_)) => {
                            ConnectionChange::AttemptFailed {
                                error: redact_text(&format!("client error: {e}")).into(),
                            }
                        }
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

/// The credentials written in the first server URL that has some, decoded: a URL keeps its
/// user and password percent-encoded (`%40` for `@`, and whatever the URL parser encoded),
/// and the server wants them as they were typed.
fn credentials_in(addrs: &[async_nats::ServerAddr]) -> Option<Auth> {
    addrs.iter().find_map(|a| {
        let user = percent_decode(a.username()?);
        Some(match a.password() {
            Some(password) => Auth::UserPassword(user, percent_decode(password)),
            None => Auth::Token(user),
        })
    })
}

/// Decodes `%XX` escapes; anything else, including a `%` not followed by two hex digits, is
/// kept as it is, and so is the whole text when the decoded bytes are not UTF-8.
fn percent_decode(text: &str) -> String {
    fn hex(digit: u8) -> Option<u8> {
        char::from(digit)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) => hex(*high).zip(hex(*low)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::split_server_list;

    #[test]
    fn debug_never_shows_a_comma_password() {
        for urls in [
            "nats://alice:pa55,w0rd@host:4222",
            "nats://a:1,nats://alice:pa55,w0rd,s3cr@b:2,c:3",
            "alice:pa55,w0rd@host:4222",
        ] {
            let options = NatsOptions::new(urls).user_and_password("bob", "s3cr");
            let shown = format!("{options:?}");
            for part in ["alice", "pa55", "w0rd", "s3cr", "bob"] {
                assert!(!shown.contains(part), "{part:?} shows in {shown}");
            }
            assert!(shown.contains("***@"), "{shown}");
        }
    }

    #[test]
    fn credentials_in_urls_are_decoded_and_keep_their_commas() {
        let addrs: Vec<async_nats::ServerAddr> =
            split_server_list("nats://a:1,nats://alice:pa55,w0rd@b:2,nats://c:3")
                .into_iter()
                .map(|u| u.parse().expect("address"))
                .collect();
        assert_eq!(addrs.len(), 3);
        assert!(matches!(
            credentials_in(&addrs),
            Some(Auth::UserPassword(user, password)) if user == "alice" && password == "pa55,w0rd"
        ));
        // Escapes, and characters the URL parser escapes itself (`:` in a password).
        let addrs: Vec<async_nats::ServerAddr> =
            ["nats://al%40ice:p%2Cq:r%zz@b:2".parse().expect("address")].into();
        assert!(matches!(
            credentials_in(&addrs),
            Some(Auth::UserPassword(user, password)) if user == "al@ice" && password == "p,q:r%zz"
        ));
        let addrs: Vec<async_nats::ServerAddr> = ["tok%2B1@b".parse().expect("address")].into();
        assert!(matches!(credentials_in(&addrs), Some(Auth::Token(t)) if t == "tok+1"));
        assert_eq!(percent_decode("%e2%82%ac%"), "\u{20ac}%");
        assert_eq!(percent_decode("%ff"), "%ff");
    }
}
