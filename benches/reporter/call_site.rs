//! The coordinator's call site, copied, and the rows that report on the calling thread.

use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::{CoordinatorEvent, EventKind, Reporter};

/// A copy of Herald's `Emitter` (src/reporter.rs), which the crate does not export.
pub(crate) struct Emitter<R> {
    reporter: R,
    panics: AtomicU64,
}

impl<R: Reporter> Emitter<R> {
    pub(crate) fn new(reporter: R) -> Self {
        Self {
            reporter,
            panics: AtomicU64::new(0),
        }
    }

    #[inline(always)]
    pub(crate) fn emit(&self, kind: EventKind, build: impl FnOnce() -> CoordinatorEvent) {
        if self.wants(kind) {
            self.deliver(build());
        }
    }

    #[inline(always)]
    fn wants(&self, kind: EventKind) -> bool {
        match catch_unwind(AssertUnwindSafe(|| self.reporter.interest(kind))) {
            Ok(wanted) => wanted,
            Err(_) => {
                self.panics.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    #[inline(never)]
    fn deliver(&self, event: CoordinatorEvent) {
        if catch_unwind(AssertUnwindSafe(|| self.reporter.report_owned(event))).is_err() {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The names every `Delivered` event carries (cheap `Arc<str>` clones).
#[derive(Clone)]
pub(crate) struct Names {
    stream: Arc<str>,
    consumer: Arc<str>,
}

impl Names {
    pub(crate) fn new() -> Self {
        Self {
            stream: "HERALD".into(),
            consumer: "node-7f3a-alert-cache".into(),
        }
    }

    #[inline(always)]
    pub(crate) fn delivered(&self, seq: u64) -> CoordinatorEvent {
        CoordinatorEvent::Delivered {
            stream: self.stream.clone(),
            consumer: self.consumer.clone(),
            seq,
        }
    }
}

/// One way of reporting an event: `run(iters)` reports `iters` events and returns the time
/// the sends took (never the reader's catching up).
pub(crate) trait Case {
    fn run(&mut self, iters: u64) -> Duration;
}

/// The empty loop: what reporting nothing costs.
pub(crate) struct Baseline {
    pub(crate) seq: u64,
}

impl Case for Baseline {
    fn run(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.seq += 1;
            black_box(self.seq);
        }
        start.elapsed()
    }
}

/// The coordinator's call site with reporter `R`, on the calling thread.
pub(crate) struct Emit<R> {
    emitter: Emitter<R>,
    names: Names,
    seq: u64,
}

impl<R: Reporter> Emit<R> {
    pub(crate) fn new(reporter: R) -> Self {
        Self {
            emitter: Emitter::new(reporter),
            names: Names::new(),
            seq: 0,
        }
    }
}

impl<R: Reporter> Case for Emit<R> {
    fn run(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.seq += 1;
            let seq = self.seq;
            self.emitter
                .emit(EventKind::Delivered, || self.names.delivered(seq));
            black_box(seq);
        }
        start.elapsed()
    }
}
