//! [`FileCheckpointStore`]: one small JSON file per checkpoint, replaced atomically, and one
//! lock file per checkpoint so that it has a single owner.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::checkpoint::durable::{create_dir_durably, sync_dir, write_durably};
use crate::checkpoint::{Checkpoint, CheckpointKey, CheckpointStore};
use crate::error::{Error, ErrorKind, Result};

/// Keeps each checkpoint in its own small JSON file in a directory, replaced atomically, and
/// gives each checkpoint a single owner.
///
/// A save writes a temporary file of its own, fsyncs it, renames it over the old one and fsyncs
/// the directory: after a crash the file holds either the old or the new checkpoint, never a mix,
/// and saves that overlap never corrupt it. The file records its stream, durable name and filter;
/// loading a checkpoint written for another subscription is a
/// [`CheckpointMismatch`](ErrorKind::CheckpointMismatch) error, and a file that is not a
/// checkpoint is [`CheckpointCorrupt`](ErrorKind::CheckpointCorrupt).
///
/// # One owner per checkpoint
///
/// Two owners of one checkpoint (two processes subscribing with the same stream and durable name
/// on the same directory) would overwrite each other's progress. So the first `load` or `save`
/// of a checkpoint takes an exclusive lock on `<stream>.<durable>.checkpoint.lock` in the
/// directory (an advisory `flock` on Unix, `LockFileEx` on Windows) and keeps it:
///
/// - this store and its clones share their locks: they may load and save the checkpoint again
///   (a subscription dropped and opened again, in the same process);
/// - any other owner — another process, or another `FileCheckpointStore` made with
///   [`new`](Self::new), even in the same process — gets a
///   [`CheckpointLocked`](ErrorKind::CheckpointLocked) error that names the checkpoint and its
///   lock file: the subscribe call fails instead of two subscriptions taking turns;
/// - the lock is released by [`release`](CheckpointStore::release), or when the last clone of
///   this store is dropped (a subscription drops its store once it has saved its last
///   checkpoint), or when the process exits, however it exits.
///
/// The directory is created (and made durable) when a checkpoint is first loaded or saved. Lock
/// files stay in the directory: they are empty, and deleting one while its owner runs would let
/// a second owner in. Where the platform cannot lock files at all (the standard library
/// reports it as unsupported), checkpoints are kept without a lock.
///
/// ```no_run
/// use herald::FileCheckpointStore;
/// let store = FileCheckpointStore::new("/var/lib/my-service/herald");
/// let same_owner = store.clone(); // shares the locks of `store`
/// ```
#[derive(Clone, Debug)]
pub struct FileCheckpointStore {
    dir: PathBuf,
    locks: Arc<Locks>,
}

/// The lock files held by one store and its clones, by path; closing a file releases its lock.
#[derive(Debug, Default)]
struct Locks {
    held: Mutex<HashMap<PathBuf, File>>,
}

#[derive(Serialize, Deserialize)]
struct FileCheckpoint {
    version: u32,
    stream: String,
    durable: String,
    filter: String,
    seq: u64,
    /// The stream's creation time in nanoseconds since the Unix epoch (absent in files written
    /// before Herald kept it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream_created_ns: Option<u64>,
}

/// Makes every temporary file name unique within this process; the process id makes it unique
/// across processes.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

impl FileCheckpointStore {
    /// A store that keeps its files in `dir` (created when a checkpoint is first loaded or saved).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            locks: Arc::default(),
        }
    }

    /// The file that holds `key`'s checkpoint. Stream and durable names are validated to
    /// `[A-Za-z0-9_-]`, so they are safe in a file name.
    pub fn path_for(&self, key: &CheckpointKey) -> PathBuf {
        self.dir
            .join(format!("{}.{}.checkpoint.json", key.stream, key.durable))
    }

    /// The file whose lock makes this store the owner of `key`'s checkpoint.
    fn lock_path_for(&self, key: &CheckpointKey) -> PathBuf {
        self.dir
            .join(format!("{}.{}.checkpoint.lock", key.stream, key.durable))
    }

    fn target(&self, key: &CheckpointKey) -> Target {
        Target {
            dir: self.dir.clone(),
            path: self.path_for(key),
            lock: self.lock_path_for(key),
            key: key.clone(),
            locks: self.locks.clone(),
        }
    }
}

/// Where one checkpoint lives, and the locks of the store that owns it: what a blocking load
/// or save needs.
struct Target {
    dir: PathBuf,
    path: PathBuf,
    lock: PathBuf,
    key: CheckpointKey,
    locks: Arc<Locks>,
}

impl Target {
    /// Takes the lock on the checkpoint, unless this store already holds it.
    fn own(&self) -> Result<()> {
        // Held while the lock is taken: two clones taking it at once would open the lock file
        // twice, and the second open would find the first one's lock.
        let mut held = self.locks.held.lock();
        if held.contains_key(&self.lock) {
            if self.lock.exists() {
                return Ok(());
            }
            // The directory or the lock file was deleted underneath: the lock held is on a
            // file nobody else can see any more. Take the lock again, on a file others see.
            held.remove(&self.lock);
        }
        create_dir_durably(&self.dir).map_err(|e| {
            Error::with_source(
                ErrorKind::CheckpointIo,
                format!(
                    "could not create the checkpoint directory {}",
                    self.dir.display()
                ),
                e,
            )
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock)
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::CheckpointIo,
                    format!("could not open the checkpoint lock {}", self.lock.display()),
                    e,
                )
            })?;
        match file.try_lock() {
            Ok(()) => self.remove_stale_temps(),
            Err(TryLockError::WouldBlock) => {
                return Err(Error::new(
                    ErrorKind::CheckpointLocked,
                    format!(
                        "checkpoint {} is owned by another process or FileCheckpointStore, which holds the lock {}: a checkpoint has one owner at a time (stop the other owner, or use another durable name or directory)",
                        self.key,
                        self.lock.display()
                    ),
                ))
            }
            // A platform without file locks: keeping checkpoints unlocked beats refusing them.
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(TryLockError::Error(e)) => {
                return Err(Error::with_source(
                    ErrorKind::CheckpointIo,
                    format!("could not lock checkpoint {}", self.lock.display()),
                    e,
                ))
            }
        }
        held.insert(self.lock.clone(), file);
        Ok(())
    }

    /// Removes the temporary files that saves interrupted by a crash left behind. Called with
    /// the lock just taken: every save holds the lock, so only this process may be writing one,
    /// and its own (named after its process id) are left alone.
    fn remove_stale_temps(&self) {
        let Some(name) = self.path.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        let prefix = format!("{name}.");
        let ours = format!("{}.", std::process::id());
        // Best effort: a leftover temporary file wastes a few bytes and harms nothing, so it
        // must not fail the load.
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(middle) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|n| n.strip_suffix("tmp"))
            else {
                continue;
            };
            if !middle.starts_with(&ours) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn load(&self) -> Result<Option<Checkpoint>> {
        self.own()?;
        let path = &self.path;
        let key = &self.key;
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::with_source(
                    ErrorKind::CheckpointIo,
                    format!("could not read checkpoint {}", path.display()),
                    e,
                ))
            }
        };
        let file: FileCheckpoint = serde_json::from_slice(&bytes).map_err(|e| {
            Error::with_source(
                ErrorKind::CheckpointCorrupt,
                format!(
                    "checkpoint {} is corrupt ({} bytes) and was not used",
                    path.display(),
                    bytes.len()
                ),
                e,
            )
        })?;
        if file.version != 1 {
            return Err(Error::new(
                ErrorKind::CheckpointCorrupt,
                format!(
                    "checkpoint {} has unknown version {}",
                    path.display(),
                    file.version
                ),
            ));
        }
        if *file.stream != *key.stream
            || *file.durable != *key.durable
            || *file.filter != *key.filter
        {
            return Err(Error::new(
                ErrorKind::CheckpointMismatch,
                format!(
                    "checkpoint {} belongs to {}/{} ({}), not to {key}",
                    path.display(),
                    file.stream,
                    file.durable,
                    file.filter
                ),
            ));
        }
        Ok(Some(Checkpoint::from_nanos(
            file.seq,
            file.stream_created_ns,
        )))
    }

    fn save(&self, at: Checkpoint) -> Result<()> {
        let path = &self.path;
        let io = |what: &str, e: std::io::Error| {
            Error::with_source(
                ErrorKind::CheckpointIo,
                format!("could not {what} checkpoint {}", path.display()),
                e,
            )
        };
        self.own()?;
        let body = serde_json::to_vec(&FileCheckpoint {
            version: 1,
            stream: self.key.stream.to_string(),
            durable: self.key.durable.to_string(),
            filter: self.key.filter.to_string(),
            seq: at.seq,
            stream_created_ns: at.stream_created_nanos(),
        })
        .map_err(|e| {
            Error::with_source(ErrorKind::CheckpointIo, "could not encode checkpoint", e)
        })?;
        // A name of its own: two saves writing one temporary file would interleave their bytes
        // and rename a mix (or a file the other one just renamed away).
        let mut temp = path.as_os_str().to_owned();
        temp.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        let temp = PathBuf::from(temp);
        let written = write_durably(&temp, &body)
            .map_err(|e| io("write", e))
            .and_then(|()| std::fs::rename(&temp, path).map_err(|e| io("replace", e)));
        if let Err(e) = written {
            // Best effort: the save already failed; a leftover is removed by the next owner.
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        // The rename is durable only once the directory entry is.
        sync_dir(&self.dir).map_err(|e| io("fsync the directory of", e))
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn load<'a>(&'a self, key: &'a CheckpointKey) -> BoxFuture<'a, Result<Option<Checkpoint>>> {
        let target = self.target(key);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || target.load())
                .await
                .map_err(|e| {
                    Error::with_source(ErrorKind::CheckpointIo, "checkpoint load task failed", e)
                })?
        })
    }

    fn save<'a>(&'a self, key: &'a CheckpointKey, at: Checkpoint) -> BoxFuture<'a, Result<()>> {
        // The target holds the locks: a store dropped during the save stays the owner until
        // the save is over.
        let target = self.target(key);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || target.save(at))
                .await
                .map_err(|e| {
                    Error::with_source(ErrorKind::CheckpointIo, "checkpoint save task failed", e)
                })?
        })
    }

    fn release(&self, key: &CheckpointKey) {
        // Closing the lock file releases the lock.
        self.locks.held.lock().remove(&self.lock_path_for(key));
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
