//! [`FileCheckpointStore`]: one small JSON file per checkpoint, replaced atomically.

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointKey, CheckpointStore};
use crate::error::{Error, ErrorKind, Result};

/// Keeps each checkpoint in its own small JSON file in a directory, replaced atomically.
///
/// A save writes a temporary file, fsyncs it, renames it over the old one and fsyncs the
/// directory: after a crash the file holds either the old or the new checkpoint, never a mix.
/// The file records its stream, durable name and filter; loading a checkpoint written for another
/// subscription is a [`CheckpointMismatch`](ErrorKind::CheckpointMismatch) error, and a file that
/// is not a checkpoint is [`CheckpointCorrupt`](ErrorKind::CheckpointCorrupt).
///
/// ```no_run
/// use herald::FileCheckpointStore;
/// let store = FileCheckpointStore::new("/var/lib/my-service/herald");
/// ```
#[derive(Clone, Debug)]
pub struct FileCheckpointStore {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct FileCheckpoint {
    version: u32,
    stream: String,
    durable: String,
    filter: String,
    seq: u64,
}

impl FileCheckpointStore {
    /// A store that keeps its files in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file that holds `key`'s checkpoint. Stream and durable names are validated to
    /// `[A-Za-z0-9_-]`, so they are safe in a file name.
    pub fn path_for(&self, key: &CheckpointKey) -> PathBuf {
        self.dir
            .join(format!("{}.{}.checkpoint.json", key.stream, key.durable))
    }

    fn load_blocking(path: &Path, key: &CheckpointKey) -> Result<Option<u64>> {
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
        Ok(Some(file.seq))
    }

    fn save_blocking(dir: &Path, path: &Path, key: &CheckpointKey, seq: u64) -> Result<()> {
        use std::io::Write;
        let io = |what: &str, e: std::io::Error| {
            Error::with_source(
                ErrorKind::CheckpointIo,
                format!("could not {what} checkpoint {}", path.display()),
                e,
            )
        };
        std::fs::create_dir_all(dir).map_err(|e| io("create the directory for", e))?;
        let body = serde_json::to_vec(&FileCheckpoint {
            version: 1,
            stream: key.stream.to_string(),
            durable: key.durable.to_string(),
            filter: key.filter.to_string(),
            seq,
        })
        .map_err(|e| {
            Error::with_source(ErrorKind::CheckpointIo, "could not encode checkpoint", e)
        })?;
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
        file.write_all(&body).map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("fsync", e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| io("replace", e))?;
        // The rename is durable only once the directory entry is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn load<'a>(&'a self, key: &'a CheckpointKey) -> BoxFuture<'a, Result<Option<u64>>> {
        let path = self.path_for(key);
        let key = key.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::load_blocking(&path, &key))
                .await
                .map_err(|e| {
                    Error::with_source(ErrorKind::CheckpointIo, "checkpoint load task failed", e)
                })?
        })
    }

    fn save<'a>(&'a self, key: &'a CheckpointKey, seq: u64) -> BoxFuture<'a, Result<()>> {
        let dir = self.dir.clone();
        let path = self.path_for(key);
        let key = key.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::save_blocking(&dir, &path, &key, seq))
                .await
                .map_err(|e| {
                    Error::with_source(ErrorKind::CheckpointIo, "checkpoint save task failed", e)
                })?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CheckpointKey {
        CheckpointKey {
            stream: "S".into(),
            durable: "d".into(),
            filter: "S.>".into(),
        }
    }

    #[tokio::test]
    async fn file_store_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCheckpointStore::new(dir.path().join("nested"));
        assert_eq!(store.load(&key()).await.expect("load"), None);
        store.save(&key(), 41).await.expect("save");
        store.save(&key(), 42).await.expect("save");
        assert_eq!(store.load(&key()).await.expect("load"), Some(42));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .expect("read dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[tokio::test]
    async fn corrupt_truncated_empty_and_foreign_files_are_typed_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCheckpointStore::new(dir.path());
        let path = store.path_for(&key());
        for (content, kind) in [
            (&b""[..], ErrorKind::CheckpointCorrupt),
            (
                &b"{\"version\":1,\"stream\":\"S\""[..],
                ErrorKind::CheckpointCorrupt,
            ),
            (&b"not json"[..], ErrorKind::CheckpointCorrupt),
            (
                &br#"{"version":1,"stream":"OTHER","durable":"d","filter":"S.>","seq":5}"#[..],
                ErrorKind::CheckpointMismatch,
            ),
        ] {
            std::fs::write(&path, content).expect("write");
            let err = store.load(&key()).await.expect_err("must fail");
            assert_eq!(err.kind(), kind, "{err}");
        }
    }

    #[tokio::test]
    async fn unwritable_directory_is_a_checkpoint_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        // A directory that cannot exist: its parent is a file.
        let store = FileCheckpointStore::new(blocker.join("sub"));
        let err = store.save(&key(), 1).await.expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::CheckpointIo);
    }
}
