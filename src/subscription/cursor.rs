//! A subscription's cursor: where it starts, and what retention took after it.

use crate::backend::StreamBounds;
use crate::position::StartPosition;

/// Where a new subscription starts, given its start position, checkpoint and the stream.
pub(super) fn initial_cursor(
    start: StartPosition,
    checkpoint: Option<u64>,
    bounds: StreamBounds,
) -> Option<u64> {
    match start {
        StartPosition::New => Some(bounds.last),
        StartPosition::All => Some(bounds.first.saturating_sub(1)),
        StartPosition::Sequence(seq) => Some(seq.saturating_sub(1)),
        StartPosition::Time(_) => None,
        StartPosition::LastProcessed => {
            Some(checkpoint.unwrap_or_else(|| bounds.first.saturating_sub(1)))
        }
    }
}

/// The stream sequences retention removed after `cursor`: `cursor + 1 ..= first - 1`.
pub(super) fn lost_range(cursor: u64, bounds: StreamBounds) -> Option<(u64, u64)> {
    (bounds.first > cursor + 1 && cursor < bounds.last).then(|| (cursor + 1, bounds.first - 1))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn b(first: u64, last: u64) -> StreamBounds {
        StreamBounds {
            first,
            last,
            created: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn lost_range_is_exact() {
        assert_eq!(lost_range(3, b(4, 10)), None);
        assert_eq!(lost_range(3, b(7, 10)), Some((4, 6)));
        // Everything after the cursor expired: the stream is empty.
        assert_eq!(lost_range(3, b(11, 10)), Some((4, 10)));
        // Nothing was published after the cursor.
        assert_eq!(lost_range(10, b(11, 10)), None);
    }

    #[test]
    fn initial_cursor_follows_the_start_position() {
        let bounds = b(5, 9);
        assert_eq!(initial_cursor(StartPosition::New, Some(7), bounds), Some(9));
        assert_eq!(initial_cursor(StartPosition::All, Some(7), bounds), Some(4));
        assert_eq!(
            initial_cursor(StartPosition::Sequence(6), None, bounds),
            Some(5)
        );
        assert_eq!(
            initial_cursor(StartPosition::LastProcessed, Some(7), bounds),
            Some(7)
        );
        assert_eq!(
            initial_cursor(StartPosition::LastProcessed, None, bounds),
            Some(4)
        );
        assert_eq!(
            initial_cursor(StartPosition::Time(SystemTime::UNIX_EPOCH), None, bounds),
            None
        );
    }
}
