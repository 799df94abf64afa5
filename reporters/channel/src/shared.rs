//! The state the reporters and the receiver share: drop accounting and the receiver's wake-up.
//!
//! Everything here is atomics. The reporter's hot path reads two words (`pending`, `parked`)
//! and writes nothing; the rest is touched only when an event is dropped or the receiver
//! parks.
//!
//! # The wake-up protocol
//!
//! The receiver parks (a thread or a task) only after announcing it: it registers its waker,
//! sets `parked`, then looks at the channel and at `pending` once more. A reporter that sent an
//! event or counted a drop looks at `parked` afterwards. A sequentially consistent fence sits
//! between the write and the read on both sides, so at least one of them sees the other: either
//! the receiver finds the new item, or the reporter finds the receiver parked and wakes it. No
//! wake-up is ever lost, and a reporter pays for a wake-up only when a receiver is waiting.

use std::fmt;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};

use futures::task::AtomicWaker;
use herald::EventKind;

/// Shared between every clone of a [`ChannelReporter`](crate::ChannelReporter) and the
/// [`Receiver`](crate::Receiver).
#[derive(Debug)]
pub(crate) struct Shared {
    /// Drops not yet announced to the receiver with a `Dropped` marker.
    pending: AtomicU64,
    /// True while the receiver is parked (or about to park) waiting for an item.
    parked: AtomicBool,
    /// Whom to wake when `parked` is set.
    waker: AtomicWaker,
    /// Every drop since the channel was made.
    dropped: AtomicU64,
    /// Every drop, per kind (indexed by [`EventKind::index`]).
    dropped_by_kind: [AtomicU64; EventKind::COUNT],
    /// Set when the receiver is gone.
    closed: AtomicBool,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            pending: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            dropped: AtomicU64::new(0),
            dropped_by_kind: std::array::from_fn(|_| AtomicU64::new(0)),
            closed: AtomicBool::new(false),
        }
    }

    /// Whether drops await a marker. A reporter that dropped an event sees its own drop here on
    /// its next report (program order); drops by other threads are seen soon after.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed) != 0
    }

    /// Called by a reporter after it made something visible to the receiver (an item in the
    /// channel, a drop in `pending`, the end of the channel).
    #[inline]
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) {
            self.wake();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake(&self) {
        // One wake per park: the first reporter to see `parked` clears it.
        if self.parked.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Counts one dropped event of `kind`, plus `unannounced` earlier drops whose marker could
    /// not be sent either, and tells a parked receiver.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_drop(&self, kind: EventKind, unannounced: u64, receiver_gone: bool) {
        if receiver_gone {
            self.closed.store(true, Ordering::Relaxed);
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.dropped_by_kind[kind.index()].fetch_add(1, Ordering::Relaxed);
        // The totals above happen before this release, so a receiver that takes these drops
        // from `pending` also sees them counted in `dropped`.
        self.pending.fetch_add(unannounced + 1, Ordering::SeqCst);
        self.notify();
    }

    /// Takes every drop not yet announced, for a marker the receiver emits itself.
    #[inline]
    pub(crate) fn take_pending(&self) -> u64 {
        // A plain load first: the common answer is 0, and reading does not steal the cache
        // line the reporters read on every event.
        if self.pending.load(Ordering::SeqCst) == 0 {
            return 0;
        }
        self.pending.swap(0, Ordering::SeqCst)
    }

    /// The receiver is about to wait: register `waker`, announce it, and fence so that the
    /// caller's next look at the channel sees everything a reporter did before it last missed
    /// the announcement.
    pub(crate) fn park(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
        self.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// The receiver is not waiting (it found something, or gave up).
    pub(crate) fn unpark(&self) {
        // Only write when set: the reporters read this word on every event.
        if self.parked.load(Ordering::Relaxed) {
            self.parked.store(false, Ordering::Relaxed);
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped_of(&self, kind: EventKind) -> u64 {
        self.dropped_by_kind[kind.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The `Debug` both ends start with: `name`, then the channel's `len` and `capacity` (each
    /// end reads them from its own side) and the drops so far.
    pub(crate) fn debug_struct<'a, 'b>(
        &self,
        f: &'a mut fmt::Formatter<'b>,
        name: &str,
        len: usize,
        capacity: usize,
    ) -> fmt::DebugStruct<'a, 'b> {
        let mut debug = f.debug_struct(name);
        debug
            .field("len", &len)
            .field("capacity", &capacity)
            .field("dropped", &self.dropped());
        debug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_drop_counter() {
        let shared = Shared::new();
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            shared.record_drop(*kind, 0, false);
            assert_eq!(shared.dropped_of(*kind), 1, "{kind}");
            assert_eq!(shared.dropped(), i as u64 + 1);
        }
    }
}
