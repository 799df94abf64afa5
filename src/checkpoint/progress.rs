//! Acknowledgements and the task that turns them into saved checkpoints.
//!
//! `Message::ack` only raises an atomic high-water mark, so acking costs
//! a few nanoseconds and never waits for I/O. One small task per subscription saves the mark
//! through the [`CheckpointStore`] after `every` acknowledgements or at least every `interval`
//! while some are unsaved, and once more when the subscription closes.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use futures::task::AtomicWaker;
use futures::FutureExt;
use tokio::sync::Notify;

use crate::checkpoint::{Checkpoint, CheckpointKey, CheckpointPolicy, CheckpointStore};
use crate::emitter::{emit_for, Emitter, Names};
use crate::reporter::Reporter;

/// The acknowledgement state shared by a subscription, its messages and its checkpointer.
#[derive(Debug)]
pub(crate) struct Acks {
    /// The checkpoint these acknowledgements advance.
    pub(crate) key: CheckpointKey,
    acked: AtomicU64,
    saved: AtomicU64,
    /// One more at every stream reset: acknowledgements of the old stream's messages and saves
    /// begun before it do not count for the new stream.
    epoch: AtomicU32,
    /// The creation time of the stream the acknowledgements belong to (its identity); changed
    /// only together with `epoch`, under this lock.
    stream: parking_lot::Mutex<Option<SystemTime>>,
    /// Set at a reset: the new position must be saved even though it is lower.
    unsaved_reset: AtomicBool,
    every: u64,
    closing: AtomicBool,
    wake: Notify,
    /// Sequences that must not be passed by the checkpoint (undecodable messages under
    /// `DecodePolicy::Hold`); `holding` keeps the hot path free of the lock when empty.
    held: parking_lot::Mutex<std::collections::BTreeSet<u64>>,
    holding: AtomicBool,
    /// Woken when `saved` advances or the saver stops: a subscription waiting for room.
    saved_waker: AtomicWaker,
    /// Set while the store fails: delivery goes on (each failure is reported), since waiting
    /// for a store that is down would stop the subscription.
    failing: AtomicBool,
    /// Set when the saver has stopped, after its last save.
    finished: AtomicBool,
    finished_notify: Notify,
}

impl Acks {
    /// Acknowledgements that start at `initial` of the stream created at `stream`.
    pub(crate) fn new(
        key: CheckpointKey,
        initial: u64,
        every: u64,
        stream: Option<SystemTime>,
    ) -> Self {
        Self {
            key,
            acked: AtomicU64::new(initial),
            saved: AtomicU64::new(initial),
            epoch: AtomicU32::new(0),
            stream: parking_lot::Mutex::new(stream),
            unsaved_reset: AtomicBool::new(false),
            every: every.max(1),
            closing: AtomicBool::new(false),
            wake: Notify::new(),
            held: parking_lot::Mutex::new(std::collections::BTreeSet::new()),
            holding: AtomicBool::new(false),
            saved_waker: AtomicWaker::new(),
            failing: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            finished_notify: Notify::new(),
        }
    }

    /// Ready when fewer than `every` acknowledged sequences wait to be saved: the bound on what
    /// a crash can make the application process again. A subscription polls this before it
    /// hands out the next message, so a slow store slows delivery instead of widening the
    /// window. A failing store does not stop delivery: its failures are reported instead.
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let full = || {
            !self.finished.load(Ordering::Acquire)
                && !self.failing.load(Ordering::Acquire)
                && self.saveable().saturating_sub(self.saved()) >= self.every
        };
        if !full() {
            return Poll::Ready(());
        }
        self.saved_waker.register(cx.waker());
        if full() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// Resolves once the saver has stopped after its last save (immediately if it has).
    pub(crate) async fn finished(&self) {
        let notified = self.finished_notify.notified();
        if !self.finished.load(Ordering::Acquire) {
            notified.await;
        }
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.finished_notify.notify_waiters();
        self.saved_waker.wake();
    }

    /// Keeps the checkpoint below `seq` until [`release`](Self::release)`(seq)`.
    pub(crate) fn hold(&self, seq: u64) {
        let mut held = self.held.lock();
        held.insert(seq);
        self.holding.store(true, Ordering::Release);
    }

    /// The sequences the checkpoint is kept below, oldest first.
    pub(crate) fn held(&self) -> Vec<u64> {
        self.held.lock().iter().copied().collect()
    }

    /// Lets the checkpoint move past `seq` again.
    pub(crate) fn release(&self, seq: u64) {
        let mut held = self.held.lock();
        held.remove(&seq);
        self.holding.store(!held.is_empty(), Ordering::Release);
        drop(held);
        self.wake.notify_one();
    }

    /// What may be saved now: the acknowledged mark, kept below the first held sequence.
    pub(crate) fn saveable(&self) -> u64 {
        let acked = self.acked();
        if !self.holding.load(Ordering::Acquire) {
            return acked;
        }
        match self.held.lock().first() {
            Some(first) => acked.min(first - 1),
            None => acked,
        }
    }

    /// Records that every sequence up to `seq` is processed.
    ///
    /// Acknowledgements are cumulative, so an application that acknowledges a message after a
    /// later one was processed concurrently out of order; debug builds say so.
    /// A message of an `epoch` before the current one came from a stream since reset: its
    /// acknowledgement means nothing for the new stream.
    #[inline]
    pub(crate) fn ack(&self, seq: u64, epoch: u32) {
        if epoch != self.epoch.load(Ordering::Acquire) {
            return;
        }
        let previous = self.acked.fetch_max(seq, Ordering::AcqRel);
        debug_assert!(
            seq >= previous || self.closing.load(Ordering::Relaxed),
            "herald: message {seq} acknowledged after {previous}: acknowledgements are \
             cumulative (acking {previous} marked {seq} processed already); acknowledge in \
             delivery order"
        );
        if seq > previous && seq.saturating_sub(self.saved.load(Ordering::Relaxed)) >= self.every {
            self.wake.notify_one();
        }
    }

    /// Moves the acknowledged mark from `from` to `to` when it is exactly at `from`: the
    /// application acknowledged everything it was given, and nothing matching lies between.
    pub(crate) fn advance_idle(&self, from: u64, to: u64) {
        if to > from
            && self
                .acked
                .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.wake.notify_one();
        }
    }

    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    pub(crate) fn saved(&self) -> u64 {
        self.saved.load(Ordering::Acquire)
    }

    /// Starts over after the stream was reset (now the stream created at `stream`): positions
    /// from the old stream mean nothing.
    pub(crate) fn reset(&self, stream: SystemTime) {
        let mut identity = self.stream.lock();
        *identity = Some(stream);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.acked.store(0, Ordering::Release);
        self.saved.store(0, Ordering::Release);
        self.unsaved_reset.store(true, Ordering::Release);
        drop(identity);
        self.wake.notify_one();
    }

    /// The current epoch and the identity of its stream, read together.
    fn stream(&self) -> (u32, Option<SystemTime>) {
        let identity = self.stream.lock();
        (self.epoch.load(Ordering::Acquire), *identity)
    }

    /// The acknowledged position, with the identity of its stream.
    pub(crate) fn acked_checkpoint(&self) -> Checkpoint {
        let identity = self.stream.lock();
        Checkpoint::new(self.acked(), *identity)
    }

    /// The current epoch, which every message handed out carries.
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Asks the checkpointer to save what is acknowledged and stop.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// What saves one subscription's checkpoints: its acknowledgements, where they go, when, and
/// whom to tell.
pub(crate) struct Saver<R> {
    pub(crate) acks: Arc<Acks>,
    pub(crate) store: Arc<dyn CheckpointStore>,
    pub(crate) key: CheckpointKey,
    pub(crate) names: Names,
    pub(crate) policy: CheckpointPolicy,
    pub(crate) emitter: Arc<Emitter<R>>,
}

impl<R: Reporter> Saver<R> {
    /// Saves until the subscription closes, and reports `CheckpointFailed` if the saving ever
    /// dies (a panicking store): a subscription whose checkpoints stopped must not be silent.
    pub(crate) async fn supervise(self) {
        let died = AssertUnwindSafe(self.run()).catch_unwind().await.is_err();
        // The subscription is over: another owner may take the checkpoint (a file lock).
        self.store.release(&self.key);
        self.acks.finish();
        if died {
            emit_for!(
                self.emitter,
                self.names,
                CheckpointFailed {
                    seq: self.acks.saveable(),
                    error: "the checkpoint task panicked: no further checkpoint is saved".into(),
                }
            );
        }
    }

    /// Saves the acknowledgements through the store until the subscription closes. Reports
    /// `CheckpointSaved` and `CheckpointFailed`; a failed save is retried at the next batch and
    /// never moves `saved`.
    async fn run(&self) {
        let Saver {
            acks,
            store,
            key,
            names,
            policy,
            emitter,
        } = self;
        let mut ticker = tokio::time::interval(policy.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let closing = acks.closing.load(Ordering::Acquire);
            let (epoch, stream) = acks.stream();
            let acked = acks.saveable();
            let reset = acks.unsaved_reset.swap(false, Ordering::AcqRel);
            if acked > acks.saved() || reset {
                match store.save(key, Checkpoint::new(acked, stream)).await {
                    // A reset while saving: this was the old stream's position, save the new.
                    Ok(()) if acks.epoch() != epoch => {
                        acks.unsaved_reset.store(true, Ordering::Release);
                    }
                    Ok(()) => {
                        acks.saved.fetch_max(acked, Ordering::AcqRel);
                        acks.failing.store(false, Ordering::Release);
                        acks.saved_waker.wake();
                        emit_for!(emitter, names, CheckpointSaved { seq: acked });
                    }
                    Err(error) => {
                        if reset {
                            acks.unsaved_reset.store(true, Ordering::Release);
                        }
                        acks.failing.store(true, Ordering::Release);
                        acks.saved_waker.wake();
                        emit_for!(
                            emitter,
                            names,
                            CheckpointFailed {
                                seq: acked,
                                error: error.to_string().into(),
                            }
                        );
                    }
                }
            }
            if closing {
                return;
            }
            tokio::select! {
                _ = ticker.tick() => {}
                _ = acks.wake.notified() => {}
            }
        }
    }
}
