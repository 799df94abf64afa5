//! Instants from durations that may be very large (a heartbeat of a day, a deadline of
//! `Duration::MAX`): never an overflow panic, at worst a time that never comes.

use std::time::Duration;

use tokio::time::Instant;

/// About thirty years: as good as never, and far from any overflow.
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `start + d`, or a far-future instant when that overflows.
pub(crate) fn after_from(start: Instant, d: Duration) -> Instant {
    start.checked_add(d).unwrap_or_else(|| start + FAR)
}

/// `now + d`, or a far-future instant when that overflows.
pub(crate) fn after(d: Duration) -> Instant {
    after_from(Instant::now(), d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_never_overflow() {
        let now = Instant::now();
        assert!(after_from(now, Duration::MAX) > now + Duration::from_secs(3600 * 24 * 365));
        assert_eq!(
            after_from(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }
}
