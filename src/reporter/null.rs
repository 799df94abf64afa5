//! [`NullReporter`]: the default. Wants nothing, costs nothing.

use crate::event::{CoordinatorEvent, EventKind};
use crate::reporter::contract::Reporter;

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
