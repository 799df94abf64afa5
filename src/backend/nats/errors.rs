//! async-nats errors as Herald [`ErrorKind`]s, by their kinds and JetStream error codes, never by
//! their text (one exception, pinned by a test: a failed TLS handshake has no kind of its own).

use async_nats::jetstream;

use crate::error::{Error, ErrorKind};
use crate::redact::redact_text;

/// A failed connection as a Herald error, with the server's address redacted.
pub(super) fn connect_error(e: async_nats::ConnectError, server: &str) -> Error {
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

/// An async-nats error that may carry a JetStream API error code, or say it timed out.
pub(super) trait JetStreamCode: std::error::Error + Send + Sync + Sized + 'static {
    /// The JetStream API error code, when the server answered with one.
    fn code(&self) -> Option<jetstream::ErrorCode>;
    /// Whether the request got no answer in time.
    fn timed_out(&self) -> bool;
}

/// Whether a request error underneath `error` timed out.
fn request_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .source()
        .and_then(|source| source.downcast_ref::<jetstream::context::RequestError>())
        .is_some_and(JetStreamCode::timed_out)
}

impl JetStreamCode for jetstream::context::RequestError {
    fn code(&self) -> Option<jetstream::ErrorCode> {
        None
    }
    fn timed_out(&self) -> bool {
        self.kind() == jetstream::context::RequestErrorKind::TimedOut
    }
}

/// Implements [`JetStreamCode`] for an error whose kind has a `JetStream` variant; `timed_out`
/// says how that error tells a timeout.
macro_rules! jetstream_code {
    ($($error:ty => $kinds:ident, |$e:ident| $timed_out:expr;)+) => {$(
        impl JetStreamCode for $error {
            fn code(&self) -> Option<jetstream::ErrorCode> {
                match self.kind() {
                    $kinds::JetStream(e) => Some(e.error_code()),
                    _ => None,
                }
            }
            fn timed_out(&self) -> bool {
                let $e = self;
                $timed_out
            }
        }
    )+};
}

use jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use jetstream::stream::ConsumerErrorKind;

jetstream_code! {
    jetstream::context::GetStreamError => GetStreamErrorKind, |e| request_timed_out(e);
    jetstream::context::CreateStreamError => CreateStreamErrorKind,
        |e| e.kind() == CreateStreamErrorKind::TimedOut;
    jetstream::stream::ConsumerError => ConsumerErrorKind,
        |e| e.kind() == ConsumerErrorKind::TimedOut;
}

/// A failed JetStream API request as a Herald error: missing streams and consumers by their
/// codes, any other code a server error, no answer a timeout or a lost connection.
pub(super) fn request_error(what: &str, error: impl JetStreamCode) -> Error {
    let kind = match error.code() {
        Some(jetstream::ErrorCode::STREAM_NOT_FOUND) => ErrorKind::StreamNotFound,
        Some(jetstream::ErrorCode::CONSUMER_NOT_FOUND) => ErrorKind::ConsumerNotFound,
        Some(_) => ErrorKind::Server,
        None if error.timed_out() => ErrorKind::Timeout,
        None => ErrorKind::Disconnected,
    };
    Error::with_source(kind, what.to_string(), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// async-nats reports a failed TLS handshake as I/O: only its text tells.
    #[test]
    fn a_failed_tls_handshake_is_told_by_its_text_alone() {
        assert!(is_tls_failure("invalid peer certificate: UnknownIssuer"));
        assert!(is_tls_failure("TLS handshake eof"));
        assert!(!is_tls_failure("connection refused (os error 111)"));
    }
}
