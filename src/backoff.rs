//! Capped, jittered exponential backoff for resubscribes, reconnects and publish retries.
//!
//! "Equal jitter": the delay for attempt `n` is uniformly drawn from `[d/2, d]` where
//! `d = min(max, initial * 2^(n-1))`. Half of the delay is kept so retries never spin, and the
//! other half is random so a cluster of nodes that lost the same server does not come back in
//! lockstep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long to wait between retries.
///
/// ```
/// use herald::Backoff;
/// use std::time::Duration;
/// let backoff = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(5) };
/// let d = backoff.delay(3);
/// assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
/// assert!(backoff.delay(100) <= Duration::from_secs(5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    /// The delay before the first retry (before jitter).
    pub initial: Duration,
    /// The cap: no delay is longer than this.
    pub max: Duration,
}

impl Default for Backoff {
    /// 50 ms doubling up to 5 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The jittered delay before attempt `attempt` (1-based; 0 is treated as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let full = self
            .initial
            .checked_mul(1u32 << exp.min(31))
            .unwrap_or(self.max)
            .min(self.max);
        let half = full / 2;
        let jitter_nanos = (half.as_nanos() as u64).max(1);
        half + Duration::from_nanos(next_random() % jitter_nanos)
    }
}

/// A small, lock-free xorshift generator: jitter needs spread, not cryptographic quality.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_capped_and_never_reach_zero() {
        let b = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(80),
        };
        for attempt in 0..200 {
            let d = b.delay(attempt);
            assert!(d >= Duration::from_millis(5), "{attempt}: {d:?}");
            assert!(d <= Duration::from_millis(80), "{attempt}: {d:?}");
        }
        assert!(b.delay(10) >= Duration::from_millis(40));
    }
}
