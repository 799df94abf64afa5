//! Replay bookkeeping for the resume algorithm: which messages are replayed, and when the
//! replay is reported started and completed.
//!
//! A replay is the range `from..=to` a (re)subscribe found published but not yet delivered.
//! `ReplayStarted` is reported just before its first message reaches the application;
//! `ReplayCompleted` once the application has taken its last one, when it asks for the next
//! message (or when the subscription ends). A replay interrupted by another resubscribe goes
//! on to the new end of the stream: one `ReplayStarted`, one `ReplayCompleted`.

use std::time::{Duration, Instant};

use crate::backend::StreamBounds;

/// A pending or running replay.
#[derive(Clone, Copy, Debug)]
struct Replay {
    from: Option<u64>,
    to: u64,
    started: Option<Instant>,
    events: u64,
}

/// What the resume algorithm must report after a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Seen {
    /// The message is part of a replay.
    pub(super) replayed: bool,
    /// The replay starts with this message: `ReplayStarted { from, to }`.
    pub(super) started: Option<(u64, u64)>,
}

/// The replay state of one subscription.
#[derive(Debug, Default)]
pub(super) struct Replays {
    current: Option<Replay>,
    /// A replay whose last message was handed out: `(events, elapsed)`, reported as
    /// `ReplayCompleted` when the application asks for more.
    done: Option<(u64, Duration)>,
}

impl Replays {
    /// A (re)subscribe found the stream at `bounds` and delivers from `from` (`None`: a time).
    pub(super) fn resumed(&mut self, from: Option<u64>, bounds: StreamBounds) {
        let pending = bounds.last >= from.unwrap_or(bounds.first) && bounds.last >= bounds.first;
        self.current = match self.current.filter(|r| r.started.is_some()) {
            Some(running) if pending => Some(Replay {
                to: bounds.last.max(running.to),
                ..running
            }),
            Some(running) => {
                self.finish(running);
                None
            }
            None => pending.then_some(Replay {
                from,
                to: bounds.last,
                started: None,
                events: 0,
            }),
        };
    }

    /// Message `seq` goes to the application; `pending` matching messages follow it.
    pub(super) fn message(&mut self, seq: u64, pending: u64) -> Seen {
        let Some(mut replay) = self.current else {
            return Seen::default();
        };
        let replayed = seq <= replay.to;
        let mut started = None;
        if replayed {
            replay.events += 1;
            if replay.started.is_none() {
                replay.started = Some(Instant::now());
                started = Some((*replay.from.get_or_insert(seq), replay.to));
            }
        }
        // Done at `to`, when nothing matching is left, or when a message beyond it arrives.
        let done = !replayed || seq >= replay.to || pending == 0;
        self.current = (!done).then_some(replay);
        if done {
            self.finish(replay);
        }
        Seen { replayed, started }
    }

    /// The stream was reset: a running replay of the old stream is over.
    pub(super) fn end(&mut self) {
        if let Some(replay) = self.current.take() {
            self.finish(replay);
        }
    }

    /// Nothing matching is pending: a running replay is over.
    pub(super) fn idle(&mut self) {
        if let Some(replay) = self.current.take() {
            self.finish(replay);
        }
    }

    /// The completed replay to report now, if any: `(events, elapsed)`.
    pub(super) fn take_done(&mut self) -> Option<(u64, Duration)> {
        self.done.take()
    }

    fn finish(&mut self, replay: Replay) {
        if let Some(started) = replay.started {
            self.done = Some((replay.events, started.elapsed()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(first: u64, last: u64) -> StreamBounds {
        StreamBounds {
            first,
            last,
            created: std::time::SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn completion_waits_for_the_application_and_an_interrupted_replay_has_one_end() {
        let mut replays = Replays::default();
        replays.resumed(Some(4), bounds(1, 7));
        let first = replays.message(4, 3);
        assert_eq!(first.started, Some((4, 7)));
        assert!(first.replayed);
        // A resubscribe after 5: the stream grew to 9, the same replay goes on to 9.
        assert_eq!(replays.message(5, 2).started, None);
        replays.resumed(Some(6), bounds(1, 9));
        assert_eq!(replays.message(6, 3).started, None);
        assert!(replays.take_done().is_none());
        let last = replays.message(9, 0);
        assert!(last.replayed);
        // Reported by the caller when the application asks for more: events 4, 5, 6, 9.
        assert_eq!(replays.take_done().map(|(events, _)| events), Some(4));
        assert!(!replays.message(10, 0).replayed);
        assert!(replays.take_done().is_none());
    }
}
