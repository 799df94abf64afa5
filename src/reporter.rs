//! The [`Reporter`] trait: where a coordinator sends its [`CoordinatorEvent`]s.
//!
//! A coordinator never builds an event nobody wants. Every call site reads
//!
//! ```text
//! if reporter.interest(kind) { reporter.report(&build()) }
//! ```
//!
//! so with [`NullReporter`] (the default) `interest` is a constant `false`, the branch and the
//! event construction are removed by the optimiser, and reporting costs nothing. A reporter that
//! filters at run time pays one call to `interest` per call site and builds only the kinds it
//! asked for.
//!
//! Implementations are provided for [`NullReporter`], `&'static R`, `Box<R>`, `Arc<R>` (with
//! `R: ?Sized`, so `Arc<dyn Reporter>` works), closures through [`from_fn`], and tuples of up to
//! eight reporters (fan-out: each member is only given the kinds it asked for).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::event::{CoordinatorEvent, EventKind};

/// Receives a coordinator's events.
///
/// `Reporter` is dyn-compatible: `Arc<dyn Reporter>` and `Box<dyn Reporter>` are reporters too.
///
/// # Overriding default impls
///
/// [`interest`](Reporter::interest) defaults to `true` (every kind). Override it to decline kinds
/// you do not handle, in particular the per-message kinds ([`EventKind::is_per_message`]): an
/// event whose kind is declined is never built, so declining is the way to make a reporter cheap.
/// The answer for a kind should not change often; it is asked at every call site.
///
/// # Contract
///
/// - `report` is called from the coordinator's own tasks, in the order the changes happened.
///   Keep it fast and never block: hand the event to a channel or a counter. The bundled
///   reporters drop and count rather than block.
/// - A panic in `report` or `interest` is caught, counted
///   ([`Coordinator::reporter_panics`](crate::Coordinator::reporter_panics)) and otherwise
///   ignored: a reporter cannot stop a coordinator.
///
/// ```
/// use herald::{CoordinatorEvent, EventKind, Reporter};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// /// Counts lost events, ignores everything else.
/// #[derive(Default)]
/// struct LossCounter(AtomicU64);
///
/// impl Reporter for LossCounter {
///     fn interest(&self, kind: EventKind) -> bool {
///         kind == EventKind::EventsLost
///     }
///     fn report(&self, event: &CoordinatorEvent) {
///         if let CoordinatorEvent::EventsLost { first, last, .. } = event {
///             self.0.fetch_add(last - first + 1, Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait Reporter: Send + Sync + 'static {
    /// Whether events of `kind` should be built and passed to [`report`](Reporter::report).
    ///
    /// Called before every event is built; the default accepts every kind.
    #[inline]
    fn interest(&self, kind: EventKind) -> bool {
        let _ = kind;
        true
    }

    /// Handles one event. Only called for kinds whose [`interest`](Reporter::interest) was true.
    fn report(&self, event: &CoordinatorEvent);

    /// Handles one event that was built for this reporter alone, by value.
    ///
    /// The coordinator calls this one; the default lends the event to
    /// [`report`](Reporter::report). Override it when the reporter keeps events (a channel):
    /// keeping this one saves cloning it.
    #[inline]
    fn report_owned(&self, event: CoordinatorEvent) {
        self.report(&event)
    }
}

/// The default reporter: wants nothing, costs nothing.
///
/// `interest` is a constant `false`, so with `Coordinator<NullReporter>` no event is ever built
/// and the reporting code is removed from the optimised program.
///
/// ```
/// use herald::{EventKind, NullReporter, Reporter};
/// assert!(!NullReporter.interest(EventKind::EventsLost));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NullReporter;

impl Reporter for NullReporter {
    #[inline(always)]
    fn interest(&self, _kind: EventKind) -> bool {
        false
    }

    #[inline(always)]
    fn report(&self, _event: &CoordinatorEvent) {}
}

/// Forwards every method to the reporter behind a pointer, so `&'static R`, `Box<R>` and
/// `Arc<R>` (with `R: ?Sized`: `Arc<dyn Reporter>`) are reporters too.
macro_rules! forward_reporter {
    ($($pointer:ty),+) => {$(
        impl<R: Reporter + ?Sized> Reporter for $pointer {
            #[inline]
            fn interest(&self, kind: EventKind) -> bool {
                (**self).interest(kind)
            }

            #[inline]
            fn report(&self, event: &CoordinatorEvent) {
                (**self).report(event)
            }

            #[inline]
            fn report_owned(&self, event: CoordinatorEvent) {
                (**self).report_owned(event)
            }
        }
    )+};
}

forward_reporter!(&'static R, Box<R>, Arc<R>);

macro_rules! tuple_reporter {
    ($($name:ident . $idx:tt),+) => {
        /// Fan-out: `interest` is the OR of the members', and each member is only given the
        /// kinds it asked for.
        impl<$($name: Reporter),+> Reporter for ($($name,)+) {
            #[inline]
            fn interest(&self, kind: EventKind) -> bool {
                $(self.$idx.interest(kind))||+
            }

            #[inline]
            fn report(&self, event: &CoordinatorEvent) {
                let kind = event.kind();
                $(if self.$idx.interest(kind) { self.$idx.report(event); })+
            }
        }
    };
}

tuple_reporter!(A.0);
tuple_reporter!(A.0, B.1);
tuple_reporter!(A.0, B.1, C.2);
tuple_reporter!(A.0, B.1, C.2, D.3);
tuple_reporter!(A.0, B.1, C.2, D.3, E.4);
tuple_reporter!(A.0, B.1, C.2, D.3, E.4, F.5);
tuple_reporter!(A.0, B.1, C.2, D.3, E.4, F.5, G.6);
tuple_reporter!(A.0, B.1, C.2, D.3, E.4, F.5, G.6, H.7);

/// A reporter made of a closure; see [`from_fn`].
#[derive(Clone, Copy)]
pub struct FnReporter<F> {
    f: F,
}

impl<F> std::fmt::Debug for FnReporter<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnReporter").finish_non_exhaustive()
    }
}

impl<F> Reporter for FnReporter<F>
where
    F: Fn(&CoordinatorEvent) + Send + Sync + 'static,
{
    #[inline]
    fn report(&self, event: &CoordinatorEvent) {
        (self.f)(event)
    }
}

/// Makes a reporter from a closure that receives every event.
///
/// To decline kinds (and so never build them), wrap it: `from_fn(f).only(|kind| ...)`.
///
/// ```
/// use herald::reporter::from_fn;
/// use herald::Coordinator;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let coordinator = Coordinator::builder()
///     .reporter(from_fn(|event| println!("{event}")))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
pub fn from_fn<F>(f: F) -> FnReporter<F>
where
    F: Fn(&CoordinatorEvent) + Send + Sync + 'static,
{
    FnReporter { f }
}

/// A reporter restricted to the kinds a predicate accepts; see [`ReporterExt::only`].
#[derive(Clone, Copy, Debug)]
pub struct Only<R, P> {
    inner: R,
    predicate: P,
}

impl<R, P> Reporter for Only<R, P>
where
    R: Reporter,
    P: Fn(EventKind) -> bool + Send + Sync + 'static,
{
    #[inline]
    fn interest(&self, kind: EventKind) -> bool {
        (self.predicate)(kind) && self.inner.interest(kind)
    }

    #[inline]
    fn report(&self, event: &CoordinatorEvent) {
        self.inner.report(event)
    }

    #[inline]
    fn report_owned(&self, event: CoordinatorEvent) {
        self.inner.report_owned(event)
    }
}

/// Combinators available on every [`Reporter`].
pub trait ReporterExt: Reporter + Sized {
    /// Restricts the reporter to the kinds `predicate` accepts; other kinds are never built.
    ///
    /// ```
    /// use herald::reporter::{from_fn, ReporterExt};
    /// use herald::{EventKind, Reporter};
    /// let r = from_fn(|e| eprintln!("{e}")).only(|kind| !kind.is_per_message());
    /// assert!(!r.interest(EventKind::Delivered));
    /// assert!(r.interest(EventKind::EventsLost));
    /// ```
    fn only<P>(self, predicate: P) -> Only<Self, P>
    where
        P: Fn(EventKind) -> bool + Send + Sync + 'static,
    {
        Only {
            inner: self,
            predicate,
        }
    }
}

impl<R: Reporter> ReporterExt for R {}

/// The coordinator's side of reporting: the reporter, and the count of its panics.
///
/// Every event goes through [`Emitter::emit`], which asks `interest` first and builds the event
/// only when it is wanted.
#[derive(Debug)]
pub(crate) struct Emitter<R> {
    reporter: R,
    panics: AtomicU64,
}

#[cfg_attr(herald_no_reporting, allow(dead_code))]
impl<R: Reporter> Emitter<R> {
    pub(crate) fn new(reporter: R) -> Self {
        Self {
            reporter,
            panics: AtomicU64::new(0),
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

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    fn lost() -> CoordinatorEvent {
        CoordinatorEvent::EventsLost {
            stream: "S".into(),
            consumer: "c".into(),
            first: 1,
            last: 2,
        }
    }

    #[derive(Default)]
    struct Recorder {
        wants: Option<EventKind>,
        seen: Mutex<Vec<EventKind>>,
    }

    impl Reporter for Recorder {
        fn interest(&self, kind: EventKind) -> bool {
            self.wants.is_none_or(|k| k == kind)
        }
        fn report(&self, event: &CoordinatorEvent) {
            self.seen.lock().push(event.kind());
        }
    }

    #[test]
    fn tuples_give_each_member_only_the_kinds_it_asked_for() {
        let a = Arc::new(Recorder {
            wants: Some(EventKind::EventsLost),
            ..Default::default()
        });
        let b = Arc::new(Recorder {
            wants: Some(EventKind::Shutdown),
            ..Default::default()
        });
        let fan = (a.clone(), b.clone(), NullReporter);
        assert!(fan.interest(EventKind::EventsLost));
        assert!(fan.interest(EventKind::Shutdown));
        assert!(!fan.interest(EventKind::Delivered));
        fan.report(&lost());
        assert_eq!(*a.seen.lock(), vec![EventKind::EventsLost]);
        assert!(b.seen.lock().is_empty());
    }

    #[test]
    fn dyn_reporters_work_through_arc_and_box() {
        let r: Arc<dyn Reporter> = Arc::new(Recorder::default());
        let boxed: Box<dyn Reporter> = Box::new(NullReporter);
        assert!(r.interest(EventKind::Connected));
        assert!(!boxed.interest(EventKind::Connected));
        r.report(&lost());
    }

    #[test]
    fn emitter_never_builds_unwanted_events_and_counts_panics() {
        let built = AtomicU64::new(0);
        let emitter = Emitter::new(NullReporter);
        emitter.emit(EventKind::EventsLost, || {
            built.fetch_add(1, Ordering::Relaxed);
            lost()
        });
        assert_eq!(built.load(Ordering::Relaxed), 0);

        let panicky = Emitter::new(from_fn(|_| panic!("reporter bug")));
        panicky.emit(EventKind::EventsLost, lost);
        panicky.emit(EventKind::EventsLost, lost);
        assert_eq!(panicky.panics(), 2);
    }
}
