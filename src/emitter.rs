//! The coordinator's one way to report: ask `interest`, build the event only when wanted,
//! deliver it, and contain a panicking reporter.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::event::{CoordinatorEvent, EventKind};
use crate::reporter::Reporter;

/// The coordinator's side of reporting: the reporter, and the count of its panics.
///
/// Every event goes through [`Emitter::emit`], which asks `interest` first and builds the event
/// only when it is wanted.
#[derive(Debug)]
pub(crate) struct Emitter<R> {
    reporter: R,
    panics: AtomicU64,
    /// Set by the last event (`Shutdown`): nothing is delivered after it.
    ended: AtomicBool,
}

#[cfg_attr(herald_no_reporting, allow(dead_code))]
impl<R: Reporter> Emitter<R> {
    pub(crate) fn new(reporter: R) -> Self {
        Self {
            reporter,
            panics: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        }
    }

    /// Reports the last event: after it, the reporter hears nothing more from this coordinator
    /// (a subscription task that ends later, a late connection change).
    pub(crate) fn emit_last(&self, kind: EventKind, build: impl FnOnce() -> CoordinatorEvent) {
        let event = self.wants(kind).then(|| {
            #[cfg(feature = "testing")]
            crate::testing::count_built();
            build()
        });
        if !self.ended.swap(true, Ordering::AcqRel) {
            if let Some(event) = event {
                self.report(event);
            }
        }
    }

    /// Reports the event `build` makes, if the reporter wants `kind`.
    ///
    /// Built with `RUSTFLAGS="--cfg herald_no_reporting"`, this does nothing at all: the
    /// baseline `scripts/zero-cost` compares `NullReporter` against.
    #[inline(always)]
    pub(crate) fn emit(&self, kind: EventKind, build: impl FnOnce() -> CoordinatorEvent) {
        #[cfg(not(herald_no_reporting))]
        if self.wants(kind) {
            #[cfg(feature = "testing")]
            crate::testing::count_built();
            self.deliver(build());
        }
        #[cfg(herald_no_reporting)]
        let _ = (kind, build);
    }

    /// Whether the reporter wants `kind`. A panicking `interest` counts as a "no".
    #[inline(always)]
    pub(crate) fn wants(&self, kind: EventKind) -> bool {
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
        if !self.ended.load(Ordering::Acquire) {
            self.report(event);
        }
    }

    fn report(&self, event: CoordinatorEvent) {
        if catch_unwind(AssertUnwindSafe(|| self.reporter.report_owned(event))).is_err() {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    pub(crate) fn reporter(&self) -> &R {
        &self.reporter
    }
}

/// Reports `CoordinatorEvent::$kind { fields }` through an [`Emitter`], building it only when the
/// reporter wants `$kind`: the kind is written once, and nothing in `fields` is evaluated for a
/// declined kind.
macro_rules! emit {
    ($emitter:expr, $kind:ident { $($field:tt)* }) => {
        $emitter.emit($crate::event::EventKind::$kind, || {
            $crate::event::CoordinatorEvent::$kind { $($field)* }
        })
    };
}
pub(crate) use emit;

/// Like [`emit!`], for events about one subscription: `stream` and `consumer` come from its
/// [`Names`], cloned only when the event is built.
macro_rules! emit_for {
    ($emitter:expr, $names:expr, $kind:ident { $($field:tt)* }) => {{
        let names: &$crate::emitter::Names = &$names;
        $crate::emitter::emit!($emitter, $kind {
            stream: names.stream.clone(),
            consumer: names.consumer.clone(),
            $($field)*
        })
    }};
}
pub(crate) use emit_for;

/// The names a subscription's events carry.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    pub(crate) stream: Arc<str>,
    pub(crate) consumer: Arc<str>,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::reporter::{from_fn, NullReporter};

    fn lost() -> CoordinatorEvent {
        CoordinatorEvent::SlowConsumer { sid: 1 }
    }

    #[test]
    fn emitter_never_builds_unwanted_events_and_counts_panics() {
        let built = AtomicU64::new(0);
        let emitter = Emitter::new(NullReporter);
        emitter.emit(EventKind::SlowConsumer, || {
            built.fetch_add(1, Ordering::Relaxed);
            lost()
        });
        assert_eq!(built.load(Ordering::Relaxed), 0);

        let panicky = Emitter::new(from_fn(|_| panic!("reporter bug")));
        panicky.emit(EventKind::SlowConsumer, lost);
        panicky.emit(EventKind::SlowConsumer, lost);
        assert_eq!(panicky.panics(), 2);
    }
}
