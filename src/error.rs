//! Herald's error type: one struct with a [`kind()`](Error::kind) to match on and a
//! `Display` that reads as a sentence.
//!
//! The shape follows async-nats (`Error<Kind>` with `kind()`): callers branch on
//! [`ErrorKind`], never on message strings.

use std::fmt;

/// A specialised `Result` whose error is Herald's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, as a value to match on.
///
/// `#[non_exhaustive]`: new kinds may be added in minor releases.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A stream name is empty or contains characters NATS does not allow.
    InvalidStreamName,
    /// A publish key or subject is empty, has an empty token, wildcards or whitespace.
    InvalidSubject,
    /// A subscription filter breaks the NATS token rules (`>` must be last, and so on).
    InvalidFilter,
    /// A durable name is empty or contains characters NATS does not allow in consumer names.
    InvalidDurableName,
    /// A configuration value is out of range (a zero `max_age`, a zero heartbeat, ...).
    InvalidConfig,
    /// A payload is larger than the configured maximum.
    PayloadTooLarge,
    /// A checkpoint could not be read because its content is not a valid checkpoint.
    CheckpointCorrupt,
    /// A checkpoint belongs to another stream, durable name or filter.
    CheckpointMismatch,
    /// A checkpoint could not be read or written (I/O, permissions, the user's store).
    CheckpointIo,
    /// A checkpoint is owned by another process or store (it holds the checkpoint's lock): two
    /// owners would overwrite each other's progress. Not transient: the owner keeps it as long
    /// as it runs.
    CheckpointLocked,
    /// The backend is not connected; the operation may succeed later.
    Disconnected,
    /// The server did not answer in time.
    Timeout,
    /// A publish was retried until its deadline without success.
    DeadlineExceeded,
    /// Connecting to the server failed (unreachable, refused, protocol error).
    Connect,
    /// The server rejected the credentials.
    Authentication,
    /// TLS could not be set up or the handshake failed.
    Tls,
    /// The stream does not exist.
    StreamNotFound,
    /// The stream exists with a configuration Herald must not change (e.g. another retention policy).
    StreamMismatch,
    /// The consumer does not exist (deleted by an operator, expired, or never created).
    ConsumerNotFound,
    /// Another owner keeps taking this subscription's consumer: a coordinator elsewhere with
    /// the same node id and durable name. Two owners would delete each other's consumer for
    /// ever; give each node its own id.
    ConsumerTaken,
    /// The server reported an error that has no more specific kind.
    Server,
    /// A payload could not be decoded into the subscription's type.
    Decode,
    /// The coordinator has been shut down.
    Shutdown,
    /// A database used by a store (`herald-sqlx`) failed: unreachable, a failed statement, a
    /// table it could not create, or a row it could not decode.
    Database,
}

impl ErrorKind {
    /// True for faults that go away by themselves: a retry after a backoff may succeed.
    ///
    /// Subscriptions retry transient faults forever; anything else ends them. A
    /// [`CheckpointLocked`](ErrorKind::CheckpointLocked) checkpoint is not transient: its
    /// owner may hold it for as long as it runs.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Disconnected
                | ErrorKind::Timeout
                | ErrorKind::Connect
                | ErrorKind::StreamNotFound
                | ErrorKind::ConsumerNotFound
                | ErrorKind::Server
        )
    }
}

/// An error from Herald: a [`kind`](Error::kind), a sentence, and sometimes an underlying cause.
///
/// ```
/// use herald::{Coordinator, ErrorKind};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = Coordinator::builder().stream("bad name").connect().await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidStreamName);
/// println!("{err}"); // a sentence that says what was wrong
/// # }
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

impl Error {
    /// Creates an error of `kind` with a message that completes the sentence.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Creates an error with an underlying cause, kept for [`std::error::Error::source`].
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when a retry after a backoff may succeed; see [`ErrorKind::is_transient`].
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    pub(crate) fn shutdown() -> Self {
        Self::new(ErrorKind::Shutdown, "the coordinator has been shut down")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_as_a_sentence_with_its_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let err = Error::with_source(ErrorKind::CheckpointIo, "could not write checkpoint /x", io);
        assert_eq!(
            err.to_string(),
            "could not write checkpoint /x: permission denied"
        );
        assert_eq!(err.kind(), ErrorKind::CheckpointIo);
        assert!(std::error::Error::source(&err).is_some());
    }
}
