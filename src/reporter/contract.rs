//! The [`Reporter`] trait: the contract between a coordinator and whatever watches it, and the
//! forwarding impls that make `&'static R`, `Box<R>` and `Arc<R>` reporters too.

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
