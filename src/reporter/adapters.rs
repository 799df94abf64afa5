//! Reporters made of other things: tuples (fan-out), closures ([`from_fn`]) and a kind filter
//! ([`ReporterExt::only`]).

use crate::event::{CoordinatorEvent, EventKind};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::reporter::contract::Reporter;

macro_rules! tuple_reporter {
    ($($name:ident . $idx:tt),+) => {
        /// Fan-out: `interest` is the OR of the members', and each member is only given the
        /// kinds it asked for.
        impl<$($name: Reporter),+> Reporter for ($($name,)+) {
            #[inline]
            fn interest(&self, kind: EventKind) -> bool {
                $(self.$idx.interest(kind))||+
            }

            /// A member that panics does not starve the members after it: every member is
            /// given the event, then the first panic goes on to the coordinator, which counts it.
            #[inline]
            fn report(&self, event: &CoordinatorEvent) {
                let kind = event.kind();
                let mut panicked = None;
                $(
                    let member = AssertUnwindSafe(|| {
                        if self.$idx.interest(kind) {
                            self.$idx.report(event);
                        }
                    });
                    if let Err(payload) = catch_unwind(member) {
                        panicked.get_or_insert(payload);
                    }
                )+
                if let Some(payload) = panicked {
                    resume_unwind(payload);
                }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;
    use crate::reporter::null::NullReporter;

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
    fn a_panicking_member_does_not_starve_the_members_after_it() {
        let after = Arc::new(Recorder::default());
        let fan = (
            crate::reporter::adapters::from_fn(|_| panic!("first member bug")),
            after.clone(),
        );
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| fan.report(&lost())));
        assert!(
            result.is_err(),
            "the panic reaches the coordinator, which counts it"
        );
        assert_eq!(*after.seen.lock(), vec![EventKind::EventsLost]);
    }
}
