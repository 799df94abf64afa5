//! Durable positions: where a subscription resumes after a restart.
//!
//! A subscription keeps the highest stream sequence the application acknowledged and saves it
//! through a [`CheckpointStore`] in batches (see [`CheckpointPolicy`]). After a restart it
//! resumes at checkpoint + 1, so at most the unsaved window is delivered again.
//!
//! Two stores are bundled: [`MemoryCheckpointStore`] (for tests, and for processes that do not
//! need to survive a restart) and [`FileCheckpointStore`] (atomic replace: write, fsync, rename;
//! one owner per checkpoint, through a lock file).
//! Implement the trait to keep checkpoints in your own database.
//!
//! - this file: [`CheckpointKey`], [`Checkpoint`], [`CheckpointStore`], [`CheckpointPolicy`],
//!   [`MemoryCheckpointStore`];
//! - `file.rs`: [`FileCheckpointStore`](file::FileCheckpointStore);
//! - `progress.rs`: acknowledgements and the task that saves them.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::Result;

mod durable;
pub(crate) mod file;
pub(crate) mod progress;

/// Identifies one subscription's checkpoint: the stream, the durable name and the filter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckpointKey {
    /// The stream.
    pub stream: Arc<str>,
    /// The subscription's durable name.
    pub durable: Arc<str>,
    /// The subscription's filter, as a full subject.
    pub filter: Arc<str>,
}

impl fmt::Display for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.stream, self.durable, self.filter)
    }
}

/// A saved position: every sequence up to `seq` of one stream has been processed.
///
/// The stream is named by the [`CheckpointKey`]; `stream_created` tells *which* stream of that
/// name: a stream deleted and created again starts its sequences over, so a checkpoint of the
/// old one must not skip the new one's first messages. A subscription that loads a checkpoint
/// of another stream (its creation time differs) starts at the new stream's beginning and
/// reports [`StreamReset`](crate::CoordinatorEvent::StreamReset). `None` (a checkpoint written
/// before Herald kept the identity, or by a store that cannot keep it) is trusted as is.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use herald::Checkpoint;
///
/// let created = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
/// let checkpoint = Checkpoint::new(42, Some(created));
/// // Stores keep the identity as whole nanoseconds since the Unix epoch.
/// let nanos = checkpoint.stream_created_nanos();
/// assert_eq!(nanos, Some(1_700_000_000_123_456_789));
/// assert_eq!(Checkpoint::from_nanos(42, nanos), checkpoint);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Every sequence up to this one has been processed.
    pub seq: u64,
    /// When the stream `seq` belongs to was created, which identifies it; `None` when unknown.
    pub stream_created: Option<SystemTime>,
}

impl Checkpoint {
    /// The checkpoint at `seq` of the stream created at `stream_created`.
    pub const fn new(seq: u64, stream_created: Option<SystemTime>) -> Self {
        Self {
            seq,
            stream_created,
        }
    }

    /// The stream's creation time as nanoseconds since the Unix epoch, the form stores keep
    /// (exact: a `u64` of nanoseconds reaches the year 2554).
    pub fn stream_created_nanos(&self) -> Option<u64> {
        self.stream_created.map(|created| {
            created
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        })
    }

    /// The checkpoint at `seq` of the stream created `nanos` after the Unix epoch, as read back
    /// from a store.
    pub fn from_nanos(seq: u64, nanos: Option<u64>) -> Self {
        Self::new(
            seq,
            nanos.map(|n| SystemTime::UNIX_EPOCH + Duration::from_nanos(n)),
        )
    }
}

/// Where checkpoints are kept. Implement it to keep them in your own database.
///
/// `load` returns `Ok(None)` when no checkpoint exists yet. An error from `load` ends the
/// subscribe call (a subscription never guesses where to start); an error from `save` is reported
/// as [`CheckpointFailed`](crate::CoordinatorEvent::CheckpointFailed) and retried with the next
/// batch, and delivery goes on.
///
/// ```
/// use futures::future::BoxFuture;
/// use herald::{Checkpoint, CheckpointKey, CheckpointStore, Result};
///
/// struct Postgres; // your connection pool
///
/// impl CheckpointStore for Postgres {
///     fn load<'a>(&'a self, key: &'a CheckpointKey) -> BoxFuture<'a, Result<Option<Checkpoint>>> {
///         // SELECT seq, stream_created_ns FROM checkpoints WHERE ...
///         Box::pin(async move { Ok(None) })
///     }
///     fn save<'a>(&'a self, key: &'a CheckpointKey, at: Checkpoint) -> BoxFuture<'a, Result<()>> {
///         // UPSERT at.seq, at.stream_created_nanos() ...
///         Box::pin(async move { Ok(()) })
///     }
/// }
/// ```
///
/// `herald-sqlx` implements it on SQLite and PostgreSQL, and commits a message's checkpoint
/// inside the application's own transaction.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Reads the checkpoint for `key`, or `None` when there is none.
    fn load<'a>(&'a self, key: &'a CheckpointKey) -> BoxFuture<'a, Result<Option<Checkpoint>>>;

    /// Durably records that every sequence up to `at.seq` of the stream `at` names has been
    /// processed. Keep `at.stream_created` with it: [`load`](Self::load) returns both.
    fn save<'a>(&'a self, key: &'a CheckpointKey, at: Checkpoint) -> BoxFuture<'a, Result<()>>;

    /// Lets go of `key`'s checkpoint, once its subscription has ended and no load or save of it
    /// is running: a store that gives each checkpoint a single owner (like
    /// [`FileCheckpointStore`](crate::FileCheckpointStore)) lets another owner load it from then on.
    ///
    /// The default does nothing: most stores do not track owners.
    fn release(&self, key: &CheckpointKey) {
        let _ = key;
    }
}

impl<S: CheckpointStore + ?Sized> CheckpointStore for Arc<S> {
    fn load<'a>(&'a self, key: &'a CheckpointKey) -> BoxFuture<'a, Result<Option<Checkpoint>>> {
        (**self).load(key)
    }

    fn save<'a>(&'a self, key: &'a CheckpointKey, at: Checkpoint) -> BoxFuture<'a, Result<()>> {
        (**self).save(key, at)
    }

    fn release(&self, key: &CheckpointKey) {
        (**self).release(key)
    }
}

/// When a subscription saves its checkpoint: once acknowledgements run `every` stream
/// sequences past the saved one, or `interval` after the first unsaved acknowledgement, whichever
/// comes first; and always when it closes.
///
/// # The crash window
///
/// After a crash, a subscription that resumes from its checkpoint (`LastProcessed`) delivers
/// again exactly the messages after the last saved checkpoint that the crashed process had
/// been given: **at most `every - 1` acknowledged messages plus the most messages the
/// application holds unacknowledged at a time** — `every` for an application that acknowledges
/// each message before asking for the next. The bound holds under any load: while
/// acknowledgements stand `every` stream sequences past the saved checkpoint, the subscription
/// does not hand out the next message until a save completes (the save applies back-pressure). While the store *fails*,
/// delivery goes on and every failed save is reported as
/// [`CheckpointFailed`](crate::CoordinatorEvent::CheckpointFailed): the bound holds again from
/// the next successful save.
///
/// Smaller values shrink the window and cost more writes; a checkpoint committed in the
/// application's own transaction has no window at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPolicy {
    /// Save once acknowledgements are this many stream sequences past the saved checkpoint
    /// (at least 1): the crash window.
    pub every: u64,
    /// Save at most this long after the first unsaved acknowledgement (greater than zero).
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    /// Every 100 messages or every second.
    fn default() -> Self {
        Self {
            every: 100,
            interval: Duration::from_secs(1),
        }
    }
}

/// Keeps checkpoints in memory; clones share the same map.
///
/// Checkpoints survive a subscription being closed and reopened, or a new `Coordinator` in the
/// same process, but not a process restart.
///
/// ```
/// use herald::MemoryCheckpointStore;
/// let store = MemoryCheckpointStore::new();
/// let shared = store.clone(); // same checkpoints
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryCheckpointStore {
    map: Arc<Mutex<HashMap<CheckpointKey, Checkpoint>>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The checkpoint saved for `key`, if any.
    pub fn get(&self, key: &CheckpointKey) -> Option<Checkpoint> {
        self.map.lock().get(key).copied()
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn load<'a>(&'a self, key: &'a CheckpointKey) -> BoxFuture<'a, Result<Option<Checkpoint>>> {
        let found = self.get(key);
        Box::pin(async move { Ok(found) })
    }

    fn save<'a>(&'a self, key: &'a CheckpointKey, at: Checkpoint) -> BoxFuture<'a, Result<()>> {
        self.map.lock().insert(key.clone(), at);
        Box::pin(async { Ok(()) })
    }
}
