//! Waiting for a condition with a deadline, instead of sleeping for a guessed time.

use std::fmt::Display;
use std::time::Duration;

/// How long a test waits for anything that should happen promptly: the core's
/// [`herald::testing::WAIT_DEADLINE`], long enough for a slow CI machine, short enough that a
/// hang fails the test instead of the suite.
pub(crate) const DEADLINE: Duration = herald::testing::WAIT_DEADLINE;

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(5);

/// Checks `ready` until it holds; panics with `state()`, what was seen instead, if it does not
/// hold within `limit`.
pub(crate) async fn wait_until<S: Display>(
    limit: Duration,
    mut ready: impl AsyncFnMut() -> bool,
    state: impl Fn() -> S,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !ready().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {}",
            state()
        );
        tokio::time::sleep(POLL).await;
    }
}
