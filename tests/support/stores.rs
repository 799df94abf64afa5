//! A checkpoint store for tests: slow, recording every save, and able to fail, crash, hang or
//! panic on demand, in front of a [`MemoryCheckpointStore`] that outlives it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use herald::{
    Checkpoint, CheckpointKey, CheckpointStore, Error, ErrorKind, MemoryCheckpointStore, Result,
};
use parking_lot::Mutex;

/// What a [`TestStore`] does besides storing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Quirk {
    #[default]
    None,
    /// `load` never returns.
    HangingLoads,
    /// `save` panics.
    PanickingSaves,
}

/// A checkpoint store in front of a [`MemoryCheckpointStore`]: each save takes `delay`, and
/// the values it stored are recorded in order.
#[derive(Debug, Default)]
pub(crate) struct TestStore {
    inner: MemoryCheckpointStore,
    delay: Duration,
    quirk: Quirk,
    /// The saved values, in order; its lock makes "not crashed, so store" one step.
    saves: Mutex<Vec<u64>>,
    failing: AtomicBool,
    crashed: AtomicBool,
}

impl TestStore {
    /// A store whose saves take `delay` each and land in `inner`.
    pub(crate) fn over(inner: MemoryCheckpointStore, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            delay,
            ..Self::default()
        })
    }

    /// A store with `quirk`.
    pub(crate) fn with(quirk: Quirk) -> Arc<Self> {
        Arc::new(Self {
            quirk,
            ..Self::default()
        })
    }

    /// The values saved so far, in order.
    pub(crate) fn saves(&self) -> Vec<u64> {
        self.saves.lock().clone()
    }

    /// The last value saved (0 when none).
    pub(crate) fn last_saved(&self) -> u64 {
        self.saves.lock().last().copied().unwrap_or(0)
    }

    /// From now on, saves fail (`true`) or work again (`false`).
    pub(crate) fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Release);
    }

    /// The process died: no save completes after this returns, not even one in flight.
    pub(crate) fn crash(&self) {
        let _saves = self.saves.lock();
        self.crashed.store(true, Ordering::Release);
    }
}

impl CheckpointStore for TestStore {
    fn load<'a>(&'a self, key: &'a CheckpointKey) -> BoxFuture<'a, Result<Option<Checkpoint>>> {
        Box::pin(async move {
            if self.quirk == Quirk::HangingLoads {
                std::future::pending::<()>().await;
            }
            self.inner.load(key).await
        })
    }

    fn save<'a>(&'a self, key: &'a CheckpointKey, at: Checkpoint) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            assert!(self.quirk != Quirk::PanickingSaves, "the store broke down");
            tokio::time::sleep(self.delay).await;
            // The memory store stores when called; its future only reports.
            let stored = {
                let mut saves = self.saves.lock();
                let down =
                    self.crashed.load(Ordering::Acquire) || self.failing.load(Ordering::Acquire);
                (!down).then(|| {
                    saves.push(at.seq);
                    self.inner.save(key, at)
                })
            };
            match stored {
                Some(stored) => stored.await,
                None => Err(Error::new(ErrorKind::CheckpointIo, "the disk is gone")),
            }
        })
    }
}
