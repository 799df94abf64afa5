//! [`Receiver`]: the reading side, blocking for threads and async for tasks.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, TryRecvError};
use herald::{CoordinatorEvent, EventKind};

use crate::shared::Shared;

/// One item from the channel: an event, or a marker saying how many events were dropped at this
/// point because the channel was full.
///
/// The markers are exact: `count` events were reported between the item before the marker and
/// the item after it, and none of them is in the channel. Added up, the markers' counts equal
/// [`Receiver::dropped`] once the channel has been drained (a marker for drops that happened
/// after the last event is delivered as soon as the receiver finds the channel empty).
///
/// ```
/// use herald::{CoordinatorEvent, Reporter};
/// use herald_channel::Received;
/// let (reporter, mut events) = herald_channel::channel(2);
/// for attempt in 1..=5 {
///     reporter.report(&CoordinatorEvent::Reconnecting {
///         attempt,
///         delay: std::time::Duration::from_millis(50),
///     });
/// }
/// let attempts: Vec<String> = std::iter::from_fn(|| events.try_recv().ok())
///     .map(|item| match item {
///         Received::Event(CoordinatorEvent::Reconnecting { attempt, .. }) => attempt.to_string(),
///         Received::Dropped { count } => format!("{count} dropped"),
///         Received::Event(other) => other.to_string(),
///     })
///     .collect();
/// assert_eq!(attempts, ["1", "2", "3 dropped"]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// An event, in the order the coordinator reported it.
    Event(CoordinatorEvent),
    /// `count` events were dropped here because the channel was full (or, for the reporter,
    /// because the receiver was gone).
    Dropped {
        /// How many consecutive reports were dropped at this position.
        count: u64,
    },
}

impl Received {
    /// The event, if this is one.
    ///
    /// ```
    /// use herald_channel::Received;
    /// assert!(Received::Dropped { count: 3 }.event().is_none());
    /// ```
    pub fn event(&self) -> Option<&CoordinatorEvent> {
        match self {
            Received::Event(event) => Some(event),
            Received::Dropped { .. } => None,
        }
    }

    /// The event, if this is one, by value.
    ///
    /// ```
    /// use herald::CoordinatorEvent;
    /// use herald_channel::Received;
    /// let event = CoordinatorEvent::Connected { server: "memory://embedded".into() };
    /// assert_eq!(Received::Event(event.clone()).into_event(), Some(event));
    /// ```
    pub fn into_event(self) -> Option<CoordinatorEvent> {
        match self {
            Received::Event(event) => Some(event),
            Received::Dropped { .. } => None,
        }
    }

    /// How many events this marker stands for (0 for an event).
    ///
    /// ```
    /// use herald_channel::Received;
    /// assert_eq!(Received::Dropped { count: 3 }.dropped(), 3);
    /// ```
    pub fn dropped(&self) -> u64 {
        match self {
            Received::Event(_) => 0,
            Received::Dropped { count } => *count,
        }
    }
}

/// The reading side of a [`channel`](crate::channel): blocking methods for threads, an async
/// method and a [`Stream`](futures::Stream) for tasks.
///
/// Items come in the order they were reported, with a [`Received::Dropped`] marker wherever the
/// channel was full. Reading never slows the coordinator down; not reading only makes it drop.
///
/// The channel ends (`recv` returns `None`, the stream ends) when every
/// [`ChannelReporter`](crate::ChannelReporter) has been dropped (usually: the coordinator was
/// dropped) and every item has been read.
///
/// One reader at a time: the receiving methods take `&mut self`. Dropping the receiver closes
/// the channel; the reporters then count every event as dropped.
///
/// From a thread:
///
/// ```
/// use herald::Coordinator;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let (reporter, mut events) = herald_channel::channel(1024);
/// let printer = std::thread::spawn(move || {
///     let mut lines = 0;
///     while let Some(item) = events.recv() {
///         println!("{item:?}");
///         lines += 1;
///     }
///     lines
/// });
/// let coordinator = Coordinator::builder().reporter(reporter).connect().await?;
/// coordinator.shutdown().await;
/// drop(coordinator); // the last reporter goes with it: the channel ends
/// assert_eq!(printer.join().unwrap(), 3); // connected, stream ready, shutdown
/// # Ok(()) }
/// ```
///
/// From a task:
///
/// ```
/// use futures::StreamExt;
/// use herald::{Coordinator, EventKind};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let (reporter, mut events) = herald_channel::channel(1024);
/// let coordinator = Coordinator::builder().reporter(reporter).connect().await?;
/// let first = events.next().await.and_then(|item| item.into_event());
/// assert_eq!(first.map(|e| e.kind()), Some(EventKind::Connected));
/// # Ok(()) }
/// ```
pub struct Receiver {
    rx: crossbeam_channel::Receiver<Received>,
    shared: Arc<Shared>,
}

impl Receiver {
    pub(crate) fn new(rx: crossbeam_channel::Receiver<Received>, shared: Arc<Shared>) -> Self {
        Self { rx, shared }
    }

    /// Waits for the next item, blocking the thread. `None` once the channel has ended.
    ///
    /// Do not call it from an async task; use [`recv_async`](Self::recv_async) there.
    ///
    /// ```
    /// use herald::{CoordinatorEvent, Reporter};
    /// use herald_channel::Received;
    /// let (reporter, mut events) = herald_channel::channel(8);
    /// let event = CoordinatorEvent::Connected { server: "memory://embedded".into() };
    /// reporter.report(&event);
    /// drop(reporter);
    /// assert_eq!(events.recv(), Some(Received::Event(event)));
    /// assert_eq!(events.recv(), None);
    /// ```
    pub fn recv(&mut self) -> Option<Received> {
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            match self.poll_recv(&mut cx) {
                Poll::Ready(item) => return item,
                Poll::Pending => thread::park(),
            }
        }
    }

    /// Waits at most `timeout` for the next item, blocking the thread.
    ///
    /// ```
    /// use herald_channel::RecvTimeoutError;
    /// use std::time::Duration;
    /// let (reporter, mut events) = herald_channel::channel(8);
    /// assert_eq!(events.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Timeout));
    /// drop(reporter);
    /// assert_eq!(events.recv_timeout(Duration::from_millis(10)), Err(RecvTimeoutError::Disconnected));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Received, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            match self.poll_recv(&mut cx) {
                Poll::Ready(Some(item)) => return Ok(item),
                Poll::Ready(None) => return Err(RecvTimeoutError::Disconnected),
                Poll::Pending => match deadline {
                    None => thread::park(),
                    Some(deadline) => {
                        let now = Instant::now();
                        if now >= deadline {
                            self.shared.unpark();
                            return Err(RecvTimeoutError::Timeout);
                        }
                        thread::park_timeout(deadline - now);
                    }
                },
            }
        }
    }

    /// The next item if there is one now, without waiting.
    ///
    /// [`TryRecvError::Disconnected`] means the channel has ended: every reporter is gone and
    /// everything was read.
    ///
    /// ```
    /// use herald_channel::TryRecvError;
    /// let (_reporter, mut events) = herald_channel::channel(8);
    /// assert_eq!(events.try_recv(), Err(TryRecvError::Empty));
    /// ```
    #[inline]
    pub fn try_recv(&mut self) -> Result<Received, TryRecvError> {
        match self.rx.try_recv() {
            Ok(item) => Ok(item),
            // Drops that no later event announced (the channel drained after them): the
            // receiver announces them itself, here, after everything that was in the channel.
            Err(e) => match self.shared.take_pending() {
                0 => Err(e),
                count => Ok(Received::Dropped { count }),
            },
        }
    }

    /// Waits for the next item without blocking the thread. `None` once the channel has ended.
    ///
    /// Cancel-safe: if the future is dropped before it completes, no item is lost.
    ///
    /// ```
    /// use herald::{CoordinatorEvent, Reporter};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (reporter, mut events) = herald_channel::channel(8);
    /// tokio::spawn(async move {
    ///     reporter.report(&CoordinatorEvent::Connected { server: "memory://embedded".into() });
    /// });
    /// let item = events.recv_async().await.expect("one event");
    /// assert_eq!(item.event().map(|e| e.to_string()).as_deref(), Some("connected to memory://embedded"));
    /// assert_eq!(events.recv_async().await, None);
    /// # }
    /// ```
    pub async fn recv_async(&mut self) -> Option<Received> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next item, registering `cx`'s waker when there is none; what the
    /// [`Stream`](futures::Stream) implementation and [`recv_async`](Self::recv_async) use.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// let (_reporter, mut events) = herald_channel::channel(8);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(events.poll_recv(&mut cx).is_pending());
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        match self.try_recv() {
            Ok(item) => {
                // Woken spuriously earlier? Then no reporter cleared the flag.
                self.shared.unpark();
                return Poll::Ready(Some(item));
            }
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        self.shared.park(cx.waker());
        match self.try_recv() {
            Ok(item) => {
                self.shared.unpark();
                Poll::Ready(Some(item))
            }
            Err(TryRecvError::Disconnected) => {
                self.shared.unpark();
                Poll::Ready(None)
            }
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// A blocking iterator over the items; it ends with the channel.
    ///
    /// ```
    /// use herald::{CoordinatorEvent, Reporter};
    /// let (reporter, mut events) = herald_channel::channel(8);
    /// reporter.report(&CoordinatorEvent::Connected { server: "memory://embedded".into() });
    /// drop(reporter);
    /// assert_eq!(events.iter().count(), 1);
    /// ```
    pub fn iter(&mut self) -> Iter<'_> {
        Iter { receiver: self }
    }

    /// An iterator over the items available now, without waiting.
    ///
    /// ```
    /// use herald::{CoordinatorEvent, Reporter};
    /// let (reporter, mut events) = herald_channel::channel(8);
    /// reporter.report(&CoordinatorEvent::Connected { server: "memory://embedded".into() });
    /// assert_eq!(events.try_iter().count(), 1);
    /// assert_eq!(events.try_iter().count(), 0);
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_> {
        TryIter { receiver: self }
    }

    /// Events dropped so far, as [`ChannelReporter::dropped`](crate::ChannelReporter::dropped)
    /// counts them. It can run ahead of the markers read so far: the markers for the latest
    /// drops are still in the channel or not yet sent.
    ///
    /// ```
    /// let (_reporter, events) = herald_channel::channel(8);
    /// assert_eq!(events.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.shared.dropped()
    }

    /// Events of `kind` dropped so far.
    ///
    /// ```
    /// use herald::EventKind;
    /// let (_reporter, events) = herald_channel::channel(8);
    /// assert_eq!(events.dropped_of(EventKind::EventsLost), 0);
    /// ```
    pub fn dropped_of(&self, kind: EventKind) -> u64 {
        self.shared.dropped_of(kind)
    }

    /// Items waiting in the channel.
    ///
    /// ```
    /// let (_reporter, events) = herald_channel::channel(8);
    /// assert_eq!(events.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// True when no item is waiting in the channel (a marker for recent drops may still come).
    ///
    /// ```
    /// let (_reporter, events) = herald_channel::channel(8);
    /// assert!(events.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The channel's capacity.
    ///
    /// ```
    /// let (_reporter, events) = herald_channel::channel(8);
    /// assert_eq!(events.capacity(), 8);
    /// ```
    pub fn capacity(&self) -> usize {
        self.rx.capacity().unwrap_or(usize::MAX)
    }
}

impl futures::Stream for Receiver {
    type Item = Received;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        self.get_mut().poll_recv(cx)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared
            .debug_struct(f, "Receiver", self.len(), self.capacity())
            .finish()
    }
}

/// Defines an iterator over a [`Receiver`]'s items that takes each item with `$next`.
macro_rules! receiver_iterator {
    ($(#[$attr:meta])* $name:ident: $next:expr) => {
        $(#[$attr])*
        #[derive(Debug)]
        pub struct $name<'a> {
            receiver: &'a mut Receiver,
        }

        impl Iterator for $name<'_> {
            type Item = Received;

            fn next(&mut self) -> Option<Received> {
                let next: fn(&mut Receiver) -> Option<Received> = $next;
                next(self.receiver)
            }
        }
    };
}

receiver_iterator! {
    /// A blocking iterator over a [`Receiver`]'s items; see [`Receiver::iter`].
    ///
    /// ```
    /// use herald::{CoordinatorEvent, Reporter};
    /// let (reporter, mut events) = herald_channel::channel(8);
    /// let printer = std::thread::spawn(move || {
    ///     for item in events.iter() {
    ///         println!("{item:?}");
    ///     }
    /// });
    /// reporter.report(&CoordinatorEvent::Connected { server: "memory://embedded".into() });
    /// drop(reporter); // the iterator ends
    /// printer.join().unwrap();
    /// ```
    Iter: Receiver::recv
}

receiver_iterator! {
    /// An iterator over the items available now; see [`Receiver::try_iter`].
    ///
    /// ```
    /// let (_reporter, mut events) = herald_channel::channel(8);
    /// assert_eq!(events.try_iter().next(), None); // nothing yet, and no waiting
    /// ```
    TryIter: |receiver| receiver.try_recv().ok()
}

/// Wakes a thread blocked in [`Receiver::recv`].
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

fn thread_waker() -> Waker {
    Waker::from(Arc::new(ThreadWaker(thread::current())))
}
