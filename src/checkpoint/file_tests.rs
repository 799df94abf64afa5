//! Tests of [`FileCheckpointStore`](super::FileCheckpointStore): atomic saves, typed errors,
//! one owner per checkpoint.

use super::*;

fn key() -> CheckpointKey {
    CheckpointKey {
        stream: "S".into(),
        durable: "d".into(),
        filter: "S.>".into(),
    }
}

/// A checkpoint at `seq` of a stream whose identity is not known.
fn at(seq: u64) -> Checkpoint {
    Checkpoint::new(seq, None)
}

#[tokio::test]
async fn file_store_keeps_the_streams_identity_and_reads_files_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileCheckpointStore::new(dir.path());
    let created = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::from_nanos(1_790_000_000_987_654_321);
    let saved = Checkpoint::new(9, Some(created));
    store.save(&key(), saved).await.expect("save");
    assert_eq!(store.load(&key()).await.expect("load"), Some(saved));

    // A file written before the identity was kept still loads, with no identity.
    let old = r#"{"version":1,"stream":"S","durable":"d","filter":"S.>","seq":5}"#;
    std::fs::write(store.path_for(&key()), old).expect("write old format");
    assert_eq!(store.load(&key()).await.expect("load"), Some(at(5)));
}

#[tokio::test]
async fn file_store_round_trips_and_replaces_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileCheckpointStore::new(dir.path().join("nested"));
    assert_eq!(store.load(&key()).await.expect("load"), None);
    store.save(&key(), at(41)).await.expect("save");
    store.save(&key(), at(42)).await.expect("save");
    assert_eq!(store.load(&key()).await.expect("load"), Some(at(42)));
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
    let err = store.save(&key(), at(1)).await.expect_err("must fail");
    assert_eq!(err.kind(), ErrorKind::CheckpointIo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_of_one_key_never_corrupt_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileCheckpointStore::new(dir.path());
    for round in 0..300u64 {
        let written: Vec<u64> = (1..=4).map(|writer| round * 4 + writer).collect();
        let saves: Vec<_> = written
            .iter()
            .map(|&seq| {
                let store = store.clone();
                tokio::spawn(async move { store.save(&key(), at(seq)).await })
            })
            .collect();
        for save in saves {
            save.await.expect("join").expect("save");
        }
        let loaded = store
            .load(&key())
            .await
            .expect("load")
            .expect("a checkpoint")
            .seq;
        assert!(written.contains(&loaded), "round {round}: loaded {loaded}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_second_owner_gets_a_clear_error_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = FileCheckpointStore::new(dir.path());
    first.save(&key(), at(7)).await.expect("save");
    assert_eq!(first.load(&key()).await.expect("load"), Some(at(7)));
    // Its clones are the same owner: a subscription dropped and opened again.
    let clone = first.clone();
    assert_eq!(clone.load(&key()).await.expect("load again"), Some(at(7)));

    let second = FileCheckpointStore::new(dir.path());
    for err in [
        second.load(&key()).await.expect_err("locked"),
        second.save(&key(), at(8)).await.expect_err("locked"),
    ] {
        assert_eq!(err.kind(), ErrorKind::CheckpointLocked, "{err}");
        assert!(!err.is_transient());
        let message = err.to_string();
        assert!(message.contains("S/d (S.>)"), "{message}");
        assert!(message.contains("S.d.checkpoint.lock"), "{message}");
        assert!(message.contains("owned by another"), "{message}");
    }
    // Another key is not locked.
    let other = CheckpointKey {
        durable: "e".into(),
        ..key()
    };
    assert_eq!(second.load(&other).await.expect("other key"), None);

    drop(first);
    assert!(clone.load(&key()).await.is_ok(), "a clone keeps the lock");
    drop(clone);
    assert_eq!(second.load(&key()).await.expect("load"), Some(at(7)));
    second.save(&key(), at(8)).await.expect("save");
    assert_eq!(second.load(&key()).await.expect("load"), Some(at(8)));
}

#[tokio::test]
async fn release_lets_another_owner_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = FileCheckpointStore::new(dir.path());
    let second = FileCheckpointStore::new(dir.path());
    first.load(&key()).await.expect("load");
    assert!(second.load(&key()).await.is_err());
    first.release(&key());
    second.load(&key()).await.expect("load after release");
    let err = first
        .load(&key())
        .await
        .expect_err("now the second owns it");
    assert_eq!(err.kind(), ErrorKind::CheckpointLocked, "{err}");
}

#[tokio::test]
async fn leftovers_of_a_crashed_save_are_removed_by_the_next_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileCheckpointStore::new(dir.path());
    let path = store.path_for(&key());
    let mut stale = path.as_os_str().to_owned();
    stale.push(".4000000000.3.tmp");
    let legacy = path.with_extension("json.tmp");
    std::fs::write(&stale, b"{").expect("write");
    std::fs::write(&legacy, b"{").expect("write");
    assert_eq!(store.load(&key()).await.expect("load"), None);
    assert!(!std::path::Path::new(&stale).exists());
    assert!(!legacy.exists());
}

#[tokio::test]
async fn a_deleted_directory_is_created_again_and_locked_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileCheckpointStore::new(dir.path().join("state"));
    store.save(&key(), at(1)).await.expect("save");
    std::fs::remove_dir_all(dir.path().join("state")).expect("remove");
    store.save(&key(), at(2)).await.expect("save");
    assert_eq!(store.load(&key()).await.expect("load"), Some(at(2)));
    let other = FileCheckpointStore::new(dir.path().join("state"));
    let err = other.load(&key()).await.expect_err("locked again");
    assert_eq!(err.kind(), ErrorKind::CheckpointLocked, "{err}");
}

#[tokio::test]
async fn a_directory_made_unusable_after_the_load_fails_saves_with_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints");
    let store = FileCheckpointStore::new(&checkpoints);
    assert_eq!(store.load(&key()).await.expect("load"), None);
    // The load created the directory, for its lock file.
    assert!(checkpoints.is_dir());
    std::fs::remove_dir_all(&checkpoints).expect("remove");
    std::fs::write(&checkpoints, b"not a directory").expect("write");
    let err = store.save(&key(), at(1)).await.expect_err("must fail");
    assert_eq!(err.kind(), ErrorKind::CheckpointIo, "{err}");
}
