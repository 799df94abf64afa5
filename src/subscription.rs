//! Subscriptions: an async stream of [`Message`]s that survives every fault, resuming at exactly
//! the right sequence. This file holds the resume algorithm, once, above the backend seam.
//!
//! # The resume algorithm
//!
//! The client owns its position. A subscription keeps a *cursor*: the highest stream sequence it
//! has accounted for (handed to the application, or declared lost). Every (re)subscribe:
//!
//! 1. reads the stream's bounds `first..=last`;
//! 2. if `first > cursor + 1`, retention removed `cursor + 1 ..= first - 1` before delivery:
//!    report `EventsLost` with that exact range and move the cursor past it;
//! 3. if `last > cursor`, a replay of `cursor + 1 ..= last` is pending: `ReplayStarted` is
//!    reported just before its first message is yielded, `ReplayCompleted` with its last;
//! 4. deletes the old consumer, then creates one that delivers from `cursor + 1`.
//!
//! Missed heartbeats (twice in a row), a deleted consumer, a consumer-sequence gap, a
//! disconnect or any other fault lead to the same path: report, back off (capped, jittered),
//! resubscribe. Transient failures while resubscribing are retried forever; only shutdown or an
//! unrecoverable error ends a subscription. A message at or below the cursor is never yielded
//! twice; acknowledged positions are checkpointed, so a restart resumes at checkpoint + 1.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::backend::{
    Backend, Consumer, ConsumerItem, ConsumerSpec, DeliverFrom, Fault, RawMessage, StreamBounds,
};
use crate::checkpoint::{CheckpointKey, CheckpointPolicy, CheckpointStore, MemoryCheckpointStore};
use crate::checkpointer::{self, Acks};
use crate::coordinator::Inner;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{CoordinatorEvent, EventKind, ResubscribeCause};
use crate::reporter::{Emitter, NullReporter, Reporter};

/// Where a new subscription starts.
///
/// Positions other than [`LastProcessed`](StartPosition::LastProcessed) ignore any saved
/// checkpoint (the checkpoint is still updated as messages are acknowledged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// Only messages published after the subscription starts.
    New,
    /// Every message the stream still holds.
    All,
    /// From this stream sequence on (1-based).
    Sequence(u64),
    /// From the first message published at or after this time.
    Time(SystemTime),
    /// From the saved checkpoint + 1; with no checkpoint, like [`All`](StartPosition::All).
    /// The default: a restarted process picks up exactly where it stopped.
    #[default]
    LastProcessed,
}

impl fmt::Display for StartPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::New => f.write_str("new messages"),
            Self::All => f.write_str("the first stored message"),
            Self::Sequence(seq) => write!(f, "sequence {seq}"),
            Self::Time(t) => match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => write!(
                    f,
                    "time {}.{:03}s since the epoch",
                    d.as_secs(),
                    d.subsec_millis()
                ),
                Err(_) => f.write_str("a time before the epoch"),
            },
            Self::LastProcessed => f.write_str("the last processed message"),
        }
    }
}

/// A message delivered by a [`Subscription`].
///
/// [`ack`](Message::ack) marks it, and every message delivered before it on the same
/// subscription, as processed: the subscription's checkpoint advances to it.
#[derive(Clone)]
pub struct Message {
    /// The message's stream sequence: unique, increasing, never yielded twice by a subscription.
    pub seq: u64,
    /// The full subject (`<prefix>.<key>`).
    pub subject: Arc<str>,
    /// The payload.
    pub payload: Bytes,
    /// When the stream stored the message.
    pub published_at: SystemTime,
    /// True when the message was published before the subscription (re)started: part of a replay.
    pub replayed: bool,
    key_offset: usize,
    acks: Arc<Acks>,
}

impl Message {
    /// The key the message was published with: the subject without the stream's prefix.
    pub fn key(&self) -> &str {
        self.subject.get(self.key_offset..).unwrap_or(&self.subject)
    }

    /// Marks this message, and every message delivered before it, as processed. Cheap and
    /// non-blocking: the checkpoint is saved in batches (see [`CheckpointPolicy`]).
    #[inline]
    pub fn ack(&self) {
        self.acks.ack(self.seq);
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.seq)
            .field("subject", &self.subject)
            .field("payload_len", &self.payload.len())
            .field("published_at", &self.published_at)
            .field("replayed", &self.replayed)
            .finish()
    }
}

/// Options of a subscription, set through [`Coordinator::subscribe`](crate::Coordinator::subscribe).
pub(crate) struct SubscribeOptions {
    pub(crate) durable: Option<String>,
    pub(crate) start: StartPosition,
    pub(crate) store: Arc<dyn CheckpointStore>,
    pub(crate) policy: CheckpointPolicy,
    pub(crate) heartbeat: Option<Duration>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            durable: None,
            start: StartPosition::default(),
            store: Arc::new(MemoryCheckpointStore::new()),
            policy: CheckpointPolicy::default(),
            heartbeat: None,
        }
    }
}

/// A subscription being configured; `.await` it to subscribe.
///
/// Made by [`Coordinator::subscribe`](crate::Coordinator::subscribe).
#[must_use = "a subscription starts only when awaited"]
pub struct Subscribe<'a, R: Reporter = NullReporter> {
    pub(crate) coordinator: &'a crate::Coordinator<R>,
    pub(crate) filter: String,
    pub(crate) options: SubscribeOptions,
}

impl<R: Reporter> fmt::Debug for Subscribe<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscribe")
            .field("filter", &self.filter)
            .field("durable", &self.options.durable)
            .field("start", &self.options.start)
            .finish()
    }
}

impl<'a, R: Reporter> Subscribe<'a, R> {
    /// The durable name: identifies the subscription's checkpoint and, with the node id, its
    /// consumer. Default: derived from the filter. `[A-Za-z0-9_-]`, at most 200 characters.
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.options.durable = Some(name.into());
        self
    }

    /// Where to start; default [`StartPosition::LastProcessed`].
    pub fn start(mut self, start: StartPosition) -> Self {
        self.options.start = start;
        self
    }

    /// Where the checkpoint is kept; default a fresh [`MemoryCheckpointStore`].
    pub fn checkpoint_store(mut self, store: impl CheckpointStore) -> Self {
        self.options.store = Arc::new(store);
        self
    }

    /// When the checkpoint is saved; default [`CheckpointPolicy::default`].
    pub fn checkpoint_policy(mut self, policy: CheckpointPolicy) -> Self {
        self.options.policy = policy;
        self
    }

    /// The idle heartbeat interval for this subscription; default the coordinator's.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.options.heartbeat = Some(interval);
        self
    }
}

impl<'a, R: Reporter> std::future::IntoFuture for Subscribe<'a, R> {
    type Output = Result<Subscription<R>>;
    type IntoFuture = BoxFuture<'a, Result<Subscription<R>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(Subscription::start(
            self.coordinator.inner.clone(),
            self.filter,
            self.options,
        ))
    }
}

/// What one subscription shares with its coordinator and its background checkpointer.
#[derive(Debug)]
pub(crate) struct Shared {
    closed: AtomicBool,
    reconnected: AtomicBool,
    shutdown: AtomicBool,
    waker: AtomicWaker,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            closed: AtomicBool::new(false),
            reconnected: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// The connection came back: the consumer may be gone with a restarted server.
    pub(crate) fn reconnected(&self) {
        self.reconnected.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ends the subscription because the coordinator shut down.
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// A pending replay: known range, started when its first message is yielded.
#[derive(Clone, Copy, Debug)]
struct Replay {
    from: Option<u64>,
    to: u64,
    started: Option<Instant>,
    events: u64,
}

/// The outcome of a successful (re)subscribe.
struct Resumed {
    consumer: Consumer,
    bounds: StreamBounds,
    /// The cursor the new consumer starts after.
    cursor: Option<u64>,
    /// Set when the stream's sequences went backwards (deleted and recreated): the position
    /// the subscription had reached.
    reset_from: Option<u64>,
}

/// Opens a consumer: removes the old one (a crashed process may have left it), reads the
/// bounds, picks the cursor (`cursor_for`), notices a stream that was reset below `high_water`,
/// and creates the consumer after the cursor.
async fn open_consumer(
    backend: Backend,
    mut spec: ConsumerSpec,
    cursor_for: impl FnOnce(StreamBounds) -> Option<u64>,
    high_water: u64,
) -> Result<Resumed> {
    backend.delete_consumer(&spec.name).await?;
    let bounds = backend.bounds().await?;
    let reset = high_water > bounds.last;
    let cursor = if reset {
        Some(bounds.first.saturating_sub(1))
    } else {
        cursor_for(bounds)
    };
    if let Some(c) = cursor {
        spec.from = DeliverFrom::Sequence(c + 1);
    }
    let consumer = backend.create_consumer(&spec).await?;
    Ok(Resumed {
        consumer,
        bounds,
        cursor,
        reset_from: reset.then_some(high_water),
    })
}

enum State {
    Streaming(Consumer),
    Resubscribing(BoxFuture<'static, Result<Resumed>>),
    Done,
}

/// An async stream of [`Message`]s that survives reconnects, missed heartbeats, deleted consumers
/// and restarts; made by [`Coordinator::subscribe`](crate::Coordinator::subscribe).
///
/// It yields every message matching its filter exactly once and in stream order. Faults are
/// reported through the coordinator's reporter and recovered; the stream ends only when the
/// subscription is closed (`None`), when the coordinator shuts down (one
/// `Err` of kind [`Shutdown`](ErrorKind::Shutdown), then `None`), or on an unrecoverable error.
///
/// ```
/// use herald::{Coordinator, StartPosition};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let coordinator = Coordinator::builder().connect().await?;
/// let mut sub = coordinator.subscribe("alerts.>").start(StartPosition::All).await?;
/// coordinator.publish("alerts.42", "changed").await?;
/// let msg = sub.next().await.expect("open")?;
/// assert_eq!((msg.seq, msg.key()), (1, "alerts.42"));
/// msg.ack();
/// sub.close().await;
/// # Ok(()) }
/// ```
pub struct Subscription<R: Reporter = NullReporter> {
    coord: Arc<Inner<R>>,
    shared: Arc<Shared>,
    spec: ConsumerSpec,
    stream: Arc<str>,
    acks: Arc<Acks>,
    checkpointer: Option<tokio::task::JoinHandle<()>>,
    state: State,
    /// Highest stream sequence accounted for; `None` until the first message of a `Time` start.
    cursor: Option<u64>,
    /// Highest sequence known to have been reached (delivered, or the checkpoint resumed from):
    /// a stream whose last sequence is below it was reset.
    high_water: u64,
    /// Whether the filter matches every subject of the stream, so a stream-sequence jump is loss.
    covers_stream: bool,
    expected_consumer_seq: u64,
    missed_heartbeats: u32,
    attempt: u32,
    replay: Option<Replay>,
    key_offset: usize,
}

impl<R: Reporter> fmt::Debug for Subscription<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("consumer", &self.spec.name)
            .field("filter", &self.spec.filter)
            .field("cursor", &self.cursor)
            .field("last_acked", &self.acks.acked())
            .finish_non_exhaustive()
    }
}

impl<R: Reporter> Subscription<R> {
    async fn start(
        coord: Arc<Inner<R>>,
        filter: String,
        options: SubscribeOptions,
    ) -> Result<Self> {
        coord.check_open()?;
        crate::subject::validate_filter(&filter)?;
        let durable = match options.durable {
            Some(d) => d,
            None => format!("sub-{:08x}", fnv1a(filter.as_bytes())),
        };
        crate::subject::validate_name("durable name", ErrorKind::InvalidDurableName, &durable)?;
        let heartbeat = options.heartbeat.unwrap_or(coord.config.heartbeat);
        if heartbeat.is_zero() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "the heartbeat interval must be greater than zero",
            ));
        }
        let full_filter: Arc<str> = format!("{}.{}", coord.prefix, filter).into();
        let consumer: Arc<str> = format!("{}-{}", coord.node, durable).into();
        let stream = coord.stream.clone();
        let key = CheckpointKey {
            stream: stream.clone(),
            durable: durable.into(),
            filter: full_filter.clone(),
        };
        let shared = coord.register(consumer.clone())?;
        let emitter = coord.emitter.clone();

        // A corrupt or foreign checkpoint ends the subscribe: never guess where to start.
        let checkpoint = match options.store.load(&key).await {
            Ok(c) => c,
            Err(error) => {
                emitter.emit(EventKind::CheckpointFailed, || {
                    CoordinatorEvent::CheckpointFailed {
                        stream: stream.clone(),
                        consumer: consumer.clone(),
                        seq: 0,
                        error: error.to_string().into(),
                    }
                });
                coord.unregister(&consumer);
                return Err(error);
            }
        };

        let spec = ConsumerSpec {
            name: consumer.clone(),
            filter: full_filter.clone(),
            from: match options.start {
                StartPosition::Time(t) => DeliverFrom::Time(t),
                _ => DeliverFrom::Sequence(1),
            },
            heartbeat,
        };
        let high_water = match options.start {
            StartPosition::LastProcessed => checkpoint.unwrap_or(0),
            _ => 0,
        };
        let start = options.start;
        let opened = open_consumer(
            coord.backend.clone(),
            spec.clone(),
            move |bounds| initial_cursor(start, checkpoint, bounds),
            high_water,
        )
        .await;
        let resumed = match opened {
            Ok(r) => r,
            Err(e) => {
                coord.unregister(&consumer);
                return Err(e);
            }
        };

        // Only a subscription that resumes from its checkpoint inherits it; any other start
        // position begins a new history that the first acknowledgement overwrites.
        let acks = Arc::new(Acks::new(high_water, options.policy.every));
        let checkpointer = tokio::spawn(checkpointer::run(
            acks.clone(),
            options.store.clone(),
            key,
            consumer.clone(),
            options.policy,
            emitter.clone(),
        ));
        emitter.emit(EventKind::Subscribed, || CoordinatorEvent::Subscribed {
            stream: stream.clone(),
            consumer: consumer.clone(),
            filter: full_filter.clone(),
            start: options.start,
            checkpoint,
        });
        let mut sub = Subscription {
            key_offset: coord.prefix.len() + 1,
            covers_stream: &*filter == ">",
            coord,
            shared,
            spec,
            stream,
            acks,
            checkpointer: Some(checkpointer),
            state: State::Done,
            cursor: resumed.cursor,
            high_water,
            expected_consumer_seq: 1,
            missed_heartbeats: 0,
            attempt: 0,
            replay: None,
        };
        sub.on_resumed(resumed);
        Ok(sub)
    }

    /// The next message; `None` when the subscription has ended. Same as
    /// [`StreamExt::next`](futures::StreamExt::next).
    pub async fn next(&mut self) -> Option<Result<Message>> {
        futures::StreamExt::next(self).await
    }

    /// The consumer's name: `<node>-<durable>`, unique per node, stream and filter.
    pub fn consumer_name(&self) -> &str {
        &self.spec.name
    }

    /// The highest sequence the application acknowledged (0 when none).
    pub fn last_acked(&self) -> u64 {
        self.acks.acked()
    }

    pub(crate) fn acks(&self) -> &Acks {
        &self.acks
    }

    /// Reports an event about this subscription, built only when wanted.
    pub(crate) fn report(
        &self,
        kind: EventKind,
        build: impl FnOnce(Arc<str>, Arc<str>) -> CoordinatorEvent,
    ) {
        self.coord
            .emitter
            .emit(kind, || build(self.stream.clone(), self.spec.name.clone()));
    }

    /// The highest acknowledged sequence that has been saved in the checkpoint store.
    pub fn last_saved(&self) -> u64 {
        self.acks.saved()
    }

    /// Ends the subscription: saves the checkpoint, deletes the consumer, reports `Unsubscribed`.
    pub async fn close(mut self) {
        self.state = State::Done;
        self.finish_checkpoints().await;
        let _ = self.coord.backend.delete_consumer(&self.spec.name).await;
        self.report_unsubscribed();
    }

    async fn finish_checkpoints(&mut self) {
        self.acks.close();
        if let Some(handle) = self.checkpointer.take() {
            let _ = handle.await;
        }
    }

    fn report_unsubscribed(&self) {
        self.coord.unregister(&self.spec.name);
        self.coord
            .emitter
            .emit(EventKind::Unsubscribed, || CoordinatorEvent::Unsubscribed {
                stream: self.stream.clone(),
                consumer: self.spec.name.clone(),
                last_processed: self.acks.acked(),
            });
    }

    fn emitter(&self) -> &Emitter<R> {
        &self.coord.emitter
    }

    /// A (re)subscribe succeeded: report loss and replay as the bounds say, and stream.
    fn on_resumed(&mut self, resumed: Resumed) {
        let Resumed {
            consumer,
            bounds,
            cursor,
            reset_from,
        } = resumed;
        if let Some(position) = reset_from {
            self.emitter()
                .emit(EventKind::StreamReset, || CoordinatorEvent::StreamReset {
                    stream: self.stream.clone(),
                    consumer: self.spec.name.clone(),
                    position,
                    last_seq: bounds.last,
                });
            self.high_water = 0;
            self.acks.reset();
        }
        self.cursor = cursor;
        let lost = self.cursor.and_then(|c| lost_range(c, bounds));
        if let Some((first, last)) = lost {
            self.report_lost(first, last);
            self.cursor = Some(last);
        }
        let from = self.cursor.map(|c| c + 1);
        self.replay = (bounds.last >= from.unwrap_or(bounds.first) && bounds.last >= bounds.first)
            .then_some(Replay {
                from,
                to: bounds.last,
                started: None,
                events: 0,
            });
        self.expected_consumer_seq = 1;
        self.missed_heartbeats = 0;
        // This consumer was made after any reconnect already signalled.
        self.shared.reconnected.store(false, Ordering::Release);
        self.state = State::Streaming(consumer);
    }

    fn report_lost(&self, first: u64, last: u64) {
        self.emitter()
            .emit(EventKind::EventsLost, || CoordinatorEvent::EventsLost {
                stream: self.stream.clone(),
                consumer: self.spec.name.clone(),
                first,
                last,
            });
    }

    /// Starts recreating the consumer; `cause` is only built when the event is wanted.
    fn resubscribe(&mut self, cause: impl FnOnce() -> ResubscribeCause) {
        self.attempt += 1;
        let delay = self.coord.config.backoff.delay(self.attempt);
        let attempt = self.attempt;
        self.emitter().emit(EventKind::Resubscribing, || {
            CoordinatorEvent::Resubscribing {
                stream: self.stream.clone(),
                consumer: self.spec.name.clone(),
                attempt,
                delay,
                cause: cause(),
            }
        });
        let backend = self.coord.backend.clone();
        let spec = self.spec.clone();
        let (cursor, high_water) = (self.cursor, self.high_water);
        self.state = State::Resubscribing(Box::pin(async move {
            tokio::time::sleep(delay).await;
            open_consumer(backend, spec, move |_| cursor, high_water).await
        }));
    }

    /// Checks a message from the backend; returns it when the application should see it.
    fn accept(&mut self, raw: RawMessage) -> Option<Message> {
        if raw.consumer_seq != self.expected_consumer_seq {
            let (expected, received) = (self.expected_consumer_seq, raw.consumer_seq);
            self.resubscribe(|| ResubscribeCause::SequenceGap { expected, received });
            return None;
        }
        self.expected_consumer_seq += 1;
        self.missed_heartbeats = 0;
        self.attempt = 0;
        if let Some(c) = self.cursor {
            if raw.seq <= c {
                return None; // already yielded: never twice
            }
            if self.covers_stream && raw.seq > c + 1 {
                self.report_lost(c + 1, raw.seq - 1);
            }
        }
        self.cursor = Some(raw.seq);
        self.high_water = self.high_water.max(raw.seq);

        let replayed = self.replay.is_some_and(|r| raw.seq <= r.to);
        if let Some(mut replay) = self.replay {
            if replayed {
                replay.events += 1;
                if replay.started.is_none() {
                    replay.started = Some(Instant::now());
                    let (from, to) = (*replay.from.get_or_insert(raw.seq), replay.to);
                    self.emitter().emit(EventKind::ReplayStarted, || {
                        CoordinatorEvent::ReplayStarted {
                            stream: self.stream.clone(),
                            consumer: self.spec.name.clone(),
                            from,
                            to,
                        }
                    });
                }
            }
            // Done at `to`, when nothing matching is left, or when a message beyond it arrives.
            let done = !replayed || raw.seq >= replay.to || raw.pending == 0;
            self.replay = (!done).then_some(replay);
            if let (true, Some(started)) = (done, replay.started) {
                self.emitter().emit(EventKind::ReplayCompleted, || {
                    CoordinatorEvent::ReplayCompleted {
                        stream: self.stream.clone(),
                        consumer: self.spec.name.clone(),
                        events: replay.events,
                        elapsed: started.elapsed(),
                    }
                });
            }
        }

        let seq = raw.seq;
        self.coord
            .emitter
            .emit(EventKind::Delivered, || CoordinatorEvent::Delivered {
                stream: self.stream.clone(),
                consumer: self.spec.name.clone(),
                seq,
            });
        Some(Message {
            seq,
            subject: raw.subject,
            payload: raw.payload,
            published_at: raw.published_at,
            replayed,
            key_offset: self.key_offset,
            acks: self.acks.clone(),
        })
    }

    fn on_fault(&mut self, fault: Fault) {
        match fault {
            Fault::HeartbeatMissed => {
                self.missed_heartbeats += 1;
                let missed = self.missed_heartbeats;
                self.emitter().emit(EventKind::HeartbeatMissed, || {
                    CoordinatorEvent::HeartbeatMissed {
                        stream: self.stream.clone(),
                        consumer: self.spec.name.clone(),
                        missed,
                    }
                });
                if missed >= 2 {
                    self.resubscribe(|| ResubscribeCause::HeartbeatsMissed { missed });
                }
            }
            Fault::ConsumerDeleted => {
                self.emitter().emit(EventKind::ConsumerDeleted, || {
                    CoordinatorEvent::ConsumerDeleted {
                        stream: self.stream.clone(),
                        consumer: self.spec.name.clone(),
                    }
                });
                self.resubscribe(|| ResubscribeCause::ConsumerDeleted);
            }
            Fault::Disconnected => self.resubscribe(|| ResubscribeCause::Disconnected),
            Fault::Other(error) => self.resubscribe(|| ResubscribeCause::Fault {
                error: error.to_string().into(),
            }),
        }
    }

    fn end(&mut self, error: Option<Error>) -> Poll<Option<Result<Message>>> {
        self.state = State::Done;
        self.acks.close();
        self.report_unsubscribed();
        Poll::Ready(error.map(Err))
    }
}

impl<R: Reporter> Stream for Subscription<R> {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.shared.waker.register(cx.waker());
        loop {
            if this.shared.closed.load(Ordering::Acquire) && !matches!(this.state, State::Done) {
                let error = this
                    .shared
                    .shutdown
                    .load(Ordering::Acquire)
                    .then(Error::shutdown);
                return this.end(error);
            }
            if matches!(this.state, State::Streaming(_))
                && this.shared.reconnected.swap(false, Ordering::AcqRel)
            {
                this.resubscribe(|| ResubscribeCause::Disconnected);
            }
            match &mut this.state {
                State::Streaming(consumer) => match consumer.poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(ConsumerItem::Message(raw)) => {
                        if let Some(message) = this.accept(raw) {
                            return Poll::Ready(Some(Ok(message)));
                        }
                    }
                    Poll::Ready(ConsumerItem::Fault(fault)) => this.on_fault(fault),
                },
                State::Resubscribing(future) => match future.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(resumed)) => {
                        let resume_from = this.cursor.map_or(0, |c| c + 1);
                        this.emitter().emit(EventKind::ConsumerRecreated, || {
                            CoordinatorEvent::ConsumerRecreated {
                                stream: this.stream.clone(),
                                consumer: this.spec.name.clone(),
                                resume_from,
                            }
                        });
                        this.on_resumed(resumed);
                    }
                    Poll::Ready(Err(error)) if error.is_transient() => {
                        this.resubscribe(|| ResubscribeCause::RetryFailed {
                            error: error.to_string().into(),
                        });
                    }
                    Poll::Ready(Err(error)) => return this.end(Some(error)),
                },
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

impl<R: Reporter> Drop for Subscription<R> {
    fn drop(&mut self) {
        // The checkpointer saves what was acknowledged and exits on its own.
        self.acks.close();
        if !matches!(self.state, State::Done) {
            self.report_unsubscribed();
        }
    }
}

/// Where a new subscription starts, given its start position, checkpoint and the stream.
fn initial_cursor(
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
fn lost_range(cursor: u64, bounds: StreamBounds) -> Option<(u64, u64)> {
    (bounds.first > cursor + 1 && cursor < bounds.last).then(|| (cursor + 1, bounds.first - 1))
}

/// A stable, dependency-free 32-bit hash for default durable names.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(first: u64, last: u64) -> StreamBounds {
        StreamBounds { first, last }
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
