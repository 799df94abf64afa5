//! Test support (the `testing` feature): observe what the coordinator does internally.
//!
//! Fault injection lives on [`MemoryServer`](crate::MemoryServer) itself.

use std::cell::Cell;

thread_local! {
    static BUILT: Cell<u64> = const { Cell::new(0) };
}

/// How many events have been built on this thread (the coordinator builds an event only when
/// its reporter's `interest` is true). Use a current-thread runtime so the count is the
/// coordinator's.
///
/// ```
/// let before = herald::testing::events_built();
/// // ... run a coordinator with NullReporter ...
/// assert_eq!(herald::testing::events_built(), before);
/// ```
pub fn events_built() -> u64 {
    BUILT.with(Cell::get)
}

pub(crate) fn count_built() {
    BUILT.with(|b| b.set(b.get() + 1));
}
