//! [`ChannelReporter`]: the coordinator's side of the channel, which never blocks.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};
use herald::{CoordinatorEvent, EventKind, Reporter};

use crate::receiver::{Received, Receiver};
use crate::shared::Shared;

/// Creates a bounded channel of coordinator events: a [`ChannelReporter`] to give to the
/// coordinator and the [`Receiver`] to read from.
///
/// The channel holds at most `capacity` items (a `capacity` of 0 is taken as 1). When it is
/// full, [`report`](Reporter::report) drops the event, counts it, and the receiver later gets a
/// [`Received::Dropped`] marker in its place: the coordinator never waits for the receiver.
///
/// ```
/// use herald::{Coordinator, EventKind};
/// use herald_channel::Received;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let (reporter, mut events) = herald_channel::channel(1024);
/// let coordinator = Coordinator::builder().reporter(reporter).connect().await?;
/// match events.try_recv() {
///     Ok(Received::Event(event)) => assert_eq!(event.kind(), EventKind::Connected),
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok(()) }
/// ```
pub fn channel(capacity: usize) -> (ChannelReporter, Receiver) {
    let capacity = capacity.max(1);
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let shared = Arc::new(Shared::new());
    let reporter = ChannelReporter {
        tx,
        shared: shared.clone(),
        _last: Arc::new(LastReporter {
            shared: shared.clone(),
        }),
    };
    (reporter, Receiver::new(rx, shared))
}

/// A [`Reporter`] that sends every event to a bounded channel, made by [`channel`].
///
/// `report` clones the event (names are `Arc<str>`: no string is copied) and calls
/// [`try_send`](crossbeam_channel::Sender::try_send). It takes no lock, allocates nothing and
/// never waits: when the channel is full, or the [`Receiver`] is gone, the event is dropped and
/// counted, and the receiver is told where with a [`Received::Dropped`] marker.
///
/// Clones share the channel and its counters, so you can keep one to read
/// [`dropped`](Self::dropped) after handing another to the coordinator. The [`Receiver`] ends
/// (`recv` returns `None`) once every clone is dropped and the channel is drained.
///
/// Every kind is accepted; to leave out the per-message kinds, wrap it:
///
/// ```
/// use herald::reporter::ReporterExt;
/// use herald::{EventKind, Reporter};
/// let (reporter, events) = herald_channel::channel(256);
/// let reporter = reporter.only(|kind| !kind.is_per_message());
/// assert!(!reporter.interest(EventKind::Delivered));
/// # drop(events);
/// ```
pub struct ChannelReporter {
    tx: Sender<Received>,
    shared: Arc<Shared>,
    /// Declared after `tx`, so that when the last reporter is dropped the channel is already
    /// disconnected when the receiver is woken to notice it.
    _last: Arc<LastReporter>,
}

impl ChannelReporter {
    /// Events dropped so far because the channel was full or the receiver was gone.
    ///
    /// Exact: every event given to [`report`](Reporter::report) was either sent or counted
    /// here.
    ///
    /// ```
    /// use herald::{CoordinatorEvent, Reporter};
    /// let (reporter, _events) = herald_channel::channel(1);
    /// let event = CoordinatorEvent::Connected { server: "memory://embedded".into() };
    /// reporter.report(&event);
    /// reporter.report(&event); // the channel is full: dropped
    /// assert_eq!(reporter.dropped(), 1);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.shared.dropped()
    }

    /// Events of `kind` dropped so far.
    ///
    /// ```
    /// use herald::{CoordinatorEvent, EventKind, Reporter};
    /// let (reporter, _events) = herald_channel::channel(1);
    /// let event = CoordinatorEvent::Connected { server: "memory://embedded".into() };
    /// reporter.report(&event);
    /// reporter.report(&event);
    /// assert_eq!(reporter.dropped_of(EventKind::Connected), 1);
    /// assert_eq!(reporter.dropped_of(EventKind::EventsLost), 0);
    /// ```
    pub fn dropped_of(&self, kind: EventKind) -> u64 {
        self.shared.dropped_of(kind)
    }

    /// True once the [`Receiver`] has been dropped: every event from then on is dropped and
    /// counted.
    ///
    /// ```
    /// let (reporter, events) = herald_channel::channel(8);
    /// assert!(!reporter.is_closed());
    /// drop(events);
    /// assert!(reporter.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Items waiting in the channel (events and drop markers).
    ///
    /// ```
    /// use herald::{CoordinatorEvent, Reporter};
    /// let (reporter, _events) = herald_channel::channel(8);
    /// reporter.report(&CoordinatorEvent::Connected { server: "memory://embedded".into() });
    /// assert_eq!(reporter.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// True when no item is waiting in the channel.
    ///
    /// ```
    /// let (reporter, _events) = herald_channel::channel(8);
    /// assert!(reporter.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// The channel's capacity.
    ///
    /// ```
    /// let (reporter, _events) = herald_channel::channel(0);
    /// assert_eq!(reporter.capacity(), 1); // 0 is taken as 1
    /// ```
    pub fn capacity(&self) -> usize {
        self.tx.capacity().unwrap_or(usize::MAX)
    }

    /// The slow path: drops happened and have not been announced yet. Announce them first, so
    /// that the marker sits exactly where they happened, then send the event.
    #[cold]
    #[inline(never)]
    fn report_after_drops(&self, event: Cow<'_, CoordinatorEvent>) {
        let count = self.shared.take_pending();
        if count != 0 {
            if let Err(e) = self.tx.try_send(Received::Dropped { count }) {
                // Still no room: this event goes the same way, after the same gap, so the order
                // the receiver sees stays true. The drops stay unannounced.
                let gone = matches!(e, TrySendError::Disconnected(_));
                self.shared.record_drop(event.kind(), count, gone);
                return;
            }
        }
        self.send(event);
    }

    #[inline(always)]
    fn send(&self, event: Cow<'_, CoordinatorEvent>) {
        let kind = event.kind();
        // An owned event is moved into the channel; a borrowed one is cloned (`Arc` names).
        match self.tx.try_send(Received::Event(event.into_owned())) {
            Ok(()) => self.shared.notify(),
            Err(e) => {
                let gone = matches!(e, TrySendError::Disconnected(_));
                self.shared.record_drop(kind, 0, gone);
            }
        }
    }
}

impl Reporter for ChannelReporter {
    #[inline]
    fn report(&self, event: &CoordinatorEvent) {
        if self.shared.has_pending() {
            return self.report_after_drops(Cow::Borrowed(event));
        }
        self.send(Cow::Borrowed(event));
    }

    #[inline]
    fn report_owned(&self, event: CoordinatorEvent) {
        if self.shared.has_pending() {
            return self.report_after_drops(Cow::Owned(event));
        }
        self.send(Cow::Owned(event));
    }
}

impl Clone for ChannelReporter {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            _last: self._last.clone(),
        }
    }
}

impl fmt::Debug for ChannelReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared
            .debug_struct(f, "ChannelReporter", self.len(), self.capacity())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Dropped with the last [`ChannelReporter`] (after its sender): wakes a parked receiver so it
/// notices that the channel ended.
#[derive(Debug)]
struct LastReporter {
    shared: Arc<Shared>,
}

impl Drop for LastReporter {
    fn drop(&mut self) {
        self.shared.notify();
    }
}
