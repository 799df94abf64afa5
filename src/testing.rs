//! Test support (the `testing` feature), for tests of Herald and of applications and reporters
//! built on it: a [`RecordingReporter`], one event of every kind ([`sample_events`]), and a
//! count of the events the coordinator built ([`events_built`]).
//!
//! Fault injection lives on [`MemoryServer`](crate::MemoryServer) itself.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::event::{CoordinatorEvent, EventKind, EventKindSet, ResubscribeCause};
use crate::position::StartPosition;
use crate::reporter::Reporter;

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

/// How long [`RecordingReporter::wait_for`] waits before it panics: long enough for a slow CI
/// machine, short enough that a hang fails the test instead of the suite.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(20);

/// Records every event of the kinds it wants, in order. Clones share one record, so keep a
/// clone and give the other to the coordinator.
///
/// ```
/// use herald::testing::RecordingReporter;
/// use herald::{Coordinator, EventKind};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let recorder = RecordingReporter::new(); // every kind but the per-message ones
/// let coordinator = Coordinator::builder().reporter(recorder.clone()).connect().await?;
/// coordinator.shutdown().await;
/// assert_eq!(
///     recorder.kinds(),
///     [EventKind::Connected, EventKind::StreamReady, EventKind::Shutdown]
/// );
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RecordingReporter {
    events: Arc<Mutex<Vec<CoordinatorEvent>>>,
    wants: EventKindSet,
}

impl Default for RecordingReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingReporter {
    /// Records every kind except the per-message ones ([`EventKind::is_per_message`]).
    pub fn new() -> Self {
        Self::kinds_of(EventKindSet::ALL.difference(EventKindSet::PER_MESSAGE))
    }

    /// Records every kind, per-message ones included.
    pub fn everything() -> Self {
        Self::kinds_of(EventKindSet::ALL)
    }

    /// Records the kinds in `wants` and declines the others (they are never built).
    pub fn kinds_of(wants: EventKindSet) -> Self {
        Self {
            events: Arc::default(),
            wants,
        }
    }

    /// The events recorded so far, in order.
    pub fn events(&self) -> Vec<CoordinatorEvent> {
        self.events.lock().clone()
    }

    /// The kinds of the events recorded so far, in order.
    pub fn kinds(&self) -> Vec<EventKind> {
        self.events
            .lock()
            .iter()
            .map(CoordinatorEvent::kind)
            .collect()
    }

    /// The kinds recorded, without those whose number depends on timing (connection,
    /// stream, checkpoint saves and per-message kinds): what a subscription scenario asserts on.
    pub fn subscription_kinds(&self) -> Vec<EventKind> {
        const TIMING: EventKindSet = EventKindSet::PER_MESSAGE.union(EventKindSet::of(&[
            EventKind::Connected,
            EventKind::Disconnected,
            EventKind::Reconnected,
            EventKind::Reconnecting,
            EventKind::StreamReady,
            EventKind::PublishFailed,
        ]));
        self.kinds()
            .into_iter()
            .filter(|kind| !TIMING.contains(*kind))
            .collect()
    }

    /// How many events of `kind` were recorded.
    pub fn count(&self, kind: EventKind) -> usize {
        self.events
            .lock()
            .iter()
            .filter(|e| e.kind() == kind)
            .count()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.events.lock().clear();
    }

    /// Waits until an event of `kind` has been recorded; panics, naming what was recorded
    /// instead, after [`WAIT_DEADLINE`].
    pub async fn wait_for(&self, kind: EventKind) {
        let deadline = tokio::time::Instant::now() + WAIT_DEADLINE;
        while self.count(kind) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} event within {WAIT_DEADLINE:?}; got {:?}",
                self.kinds()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Reporter for RecordingReporter {
    fn interest(&self, kind: EventKind) -> bool {
        self.wants.contains(kind)
    }

    fn report(&self, event: &CoordinatorEvent) {
        self.events.lock().push(event.clone());
    }
}

/// One event of every kind, in [`EventKind::ALL`] order, with distinctive values: the fixture
/// for tests of reporters (every kind must be handled, with its own fields).
///
/// ```
/// use herald::EventKind;
/// let events = herald::testing::sample_events();
/// let kinds: Vec<EventKind> = events.iter().map(|e| e.kind()).collect();
/// assert_eq!(kinds, EventKind::ALL);
/// ```
pub fn sample_events() -> Vec<CoordinatorEvent> {
    let s = || -> Arc<str> { "S".into() };
    let c = || -> Arc<str> { "node-a:cache".into() };
    let server = || -> Arc<str> { "nats://127.0.0.1:4222".into() };
    let outbox = || -> Arc<str> { "alerts_outbox".into() };
    let ms = Duration::from_millis;
    vec![
        CoordinatorEvent::Connected { server: server() },
        CoordinatorEvent::Disconnected {
            server: server(),
            cause: "io error".into(),
        },
        CoordinatorEvent::Reconnecting {
            attempt: 2,
            delay: ms(250),
        },
        CoordinatorEvent::Reconnected {
            server: server(),
            downtime: ms(1500),
        },
        CoordinatorEvent::LameDuck { server: server() },
        CoordinatorEvent::SlowConsumer { sid: 7 },
        CoordinatorEvent::ServerError {
            message: "authorization violation".into(),
        },
        CoordinatorEvent::StreamReady {
            stream: s(),
            created: false,
            max_age: ms(60_000),
            max_msgs: Some(1000),
            max_bytes: None,
            first_seq: 3,
            last_seq: 9,
        },
        CoordinatorEvent::Subscribed {
            stream: s(),
            consumer: c(),
            filter: "S.alerts.>".into(),
            start: StartPosition::Sequence(5),
            checkpoint: None,
        },
        CoordinatorEvent::HeartbeatMissed {
            stream: s(),
            consumer: c(),
            missed: 2,
        },
        CoordinatorEvent::ConsumerDeleted {
            stream: s(),
            consumer: c(),
        },
        CoordinatorEvent::Resubscribing {
            stream: s(),
            consumer: c(),
            attempt: 3,
            delay: ms(400),
            cause: ResubscribeCause::SequenceGap {
                expected: 4,
                received: 9,
            },
        },
        CoordinatorEvent::ConsumerRecreated {
            stream: s(),
            consumer: c(),
            resume_from: 12,
        },
        CoordinatorEvent::ReplayStarted {
            stream: s(),
            consumer: c(),
            from: 12,
            to: 20,
        },
        CoordinatorEvent::ReplayCompleted {
            stream: s(),
            consumer: c(),
            events: 9,
            elapsed: Duration::from_micros(2500),
        },
        CoordinatorEvent::EventsLost {
            stream: s(),
            consumer: c(),
            first: 10,
            last: 11,
        },
        CoordinatorEvent::StreamReset {
            stream: s(),
            consumer: c(),
            position: 40,
            last_seq: 2,
        },
        CoordinatorEvent::CheckpointSaved {
            stream: s(),
            consumer: c(),
            seq: 20,
        },
        CoordinatorEvent::CheckpointFailed {
            stream: s(),
            consumer: c(),
            seq: 21,
            error: "disk full".into(),
        },
        CoordinatorEvent::Unsubscribed {
            stream: s(),
            consumer: c(),
            last_processed: 21,
        },
        CoordinatorEvent::Published {
            stream: s(),
            subject: "S.alerts.1".into(),
            seq: 22,
            duplicate: true,
        },
        CoordinatorEvent::PublishFailed {
            stream: s(),
            subject: "S.alerts.1".into(),
            attempt: 1,
            will_retry: true,
            error: "timed out".into(),
        },
        CoordinatorEvent::Delivered {
            stream: s(),
            consumer: c(),
            seq: 22,
        },
        CoordinatorEvent::DecodeFailed {
            stream: s(),
            consumer: c(),
            seq: 23,
            error: "expected value".into(),
        },
        CoordinatorEvent::Shutdown {
            stream: s(),
            subscriptions: 1,
        },
        CoordinatorEvent::OutboxRelayed {
            outbox: outbox(),
            row: 42,
            seq: 24,
            duplicate: false,
            lag: ms(3),
        },
        CoordinatorEvent::OutboxBacklog {
            outbox: outbox(),
            pending: 120,
            oldest_age: ms(1500),
        },
        CoordinatorEvent::OutboxRelayFailed {
            outbox: outbox(),
            attempt: 2,
            delay: ms(500),
            error: "connection refused".into(),
        },
        CoordinatorEvent::CheckpointCommitted {
            stream: s(),
            consumer: c(),
            seq: 25,
        },
        CoordinatorEvent::CheckpointCommitFailed {
            stream: s(),
            consumer: c(),
            seq: 26,
            error: "serialization failure".into(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_events_cover_every_kind_once_in_order() {
        let kinds: Vec<EventKind> = sample_events().iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, EventKind::ALL);
    }
}
