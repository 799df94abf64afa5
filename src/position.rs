//! Where a subscription starts: [`StartPosition`]. Plain data, shared by the subscription
//! that acts on it and the events that report it.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Where a new subscription starts.
///
/// Positions other than [`LastProcessed`](StartPosition::LastProcessed) ignore any saved
/// checkpoint (the checkpoint is still updated as messages are acknowledged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// Only messages published after the subscription starts.
    New,
    /// Every message the stream still holds.
    All,
    /// From this stream sequence on (1-based).
    Sequence(u64),
    /// From the first message published at or after this time.
    Time(SystemTime),
    /// From the saved checkpoint + 1; with no checkpoint, like [`All`](StartPosition::All).
    /// The default: a restarted process picks up exactly where it stopped.
    #[default]
    LastProcessed,
}

impl fmt::Display for StartPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::New => f.write_str("new messages"),
            Self::All => f.write_str("the first stored message"),
            Self::Sequence(seq) => write!(f, "sequence {seq}"),
            Self::Time(t) => match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => write!(
                    f,
                    "time {}.{:03}s since the epoch",
                    d.as_secs(),
                    d.subsec_millis()
                ),
                Err(_) => f.write_str("a time before the epoch"),
            },
            Self::LastProcessed => f.write_str("the last processed message"),
        }
    }
}
