//! The resume algorithm, once, above the backend seam: how a subscription survives every fault
//! and resumes at exactly the right sequence.
//!
//! The client owns its position. A subscription keeps a *cursor*: the highest stream sequence it
//! has accounted for (handed to the application, or declared lost). Every (re)subscribe:
//!
//! 1. reads the stream's bounds `first..=last` (a stream deleted underneath is recreated);
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

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use futures::future::BoxFuture;

use crate::backend::{
    Consumer, ConsumerItem, ConsumerSpec, DeliverFrom, Fault, RawMessage, StreamBounds,
};
use crate::checkpoint::progress::Acks;
use crate::emitter::{emit_for, Names};
use crate::error::{Error, ErrorKind, Result};
use crate::event::ResubscribeCause;
use crate::reporter::Reporter;
use crate::state::{CoordinatorState, Signals};
use crate::subscription::cursor::lost_range;
use crate::subscription::message::Message;
use crate::subscription::replay::Replays;

/// The outcome of a successful (re)subscribe.
pub(super) struct Resumed {
    consumer: Consumer,
    bounds: StreamBounds,
    /// The cursor the new consumer starts after.
    cursor: Option<u64>,
    /// Set when the stream's sequences went backwards (deleted and recreated): the position
    /// the subscription had reached.
    reset_from: Option<u64>,
    /// The name was held by a consumer this subscription had not created.
    taken: bool,
    /// What retention removed after the cursor that could have matched the filter.
    lost: Option<(u64, u64)>,
}

/// What a subscription knew of its stream before a (re)subscribe: enough to tell the stream it
/// finds is not the one it was reading.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Known {
    /// The highest sequence reached (delivered, scanned, or the checkpoint resumed from).
    pub(super) high_water: u64,
    /// The cursor, which a subscription that has received nothing yet also has.
    pub(super) cursor: Option<u64>,
    /// The stream's identity, once seen.
    pub(super) created: Option<SystemTime>,
    /// The instance of the consumer this subscription created last.
    pub(super) ours: Option<u128>,
    /// The previous resubscribe found the consumer name taken by an instance not ours.
    pub(super) taken_before: bool,
}

impl Known {
    /// Whether `bounds` belong to another stream than the one known: its sequences went
    /// backwards below what was reached, or it was created anew.
    fn reset_by(&self, bounds: StreamBounds) -> bool {
        self.high_water > bounds.last || self.created.is_some_and(|c| c != bounds.created)
    }
}

/// Opens a consumer: removes the old one (a crashed process may have left it), reads the
/// bounds (recreating a stream deleted underneath), picks the cursor (`cursor_for`), notices a
/// stream that was reset, and creates the consumer after the cursor. A reset stream is read
/// from its start.
pub(super) async fn open_consumer<R>(
    state: Arc<CoordinatorState<R>>,
    mut spec: ConsumerSpec,
    cursor_for: impl FnOnce(StreamBounds) -> Option<u64>,
    known: Known,
) -> Result<Resumed> {
    let backend = &state.backend;
    // A consumer of this name that this subscription did not create: once, it may be an
    // attempt whose answer was lost; twice in a row, another owner is recreating it.
    let mut taken = false;
    if let Some(ours) = known.ours {
        let found = backend.consumer_instance(&spec.name).await?;
        taken = found.is_some_and(|instance| instance != ours);
        if taken && known.taken_before {
            return Err(Error::new(
                ErrorKind::ConsumerTaken,
                format!(
                    "consumer {} was recreated by another owner twice in a row: another coordinator uses the same node id and durable name; give each node its own id",
                    spec.name
                ),
            ));
        }
    }
    backend.delete_consumer(&spec.name).await?;
    let bounds = match backend.bounds().await {
        Err(error) if error.kind() == ErrorKind::StreamNotFound => state.recreate_stream().await?,
        bounds => bounds?,
    };
    let reset = known.reset_by(bounds);
    let cursor = if reset {
        Some(bounds.first.saturating_sub(1))
    } else {
        cursor_for(bounds)
    };
    if let Some(c) = cursor {
        spec.from = DeliverFrom::Sequence(c + 1);
    }
    let consumer = backend.create_consumer(&spec).await?;
    let position = known.high_water.max(known.cursor.unwrap_or(0));
    let lost = cursor
        .and_then(|c| lost_range(c, bounds))
        .and_then(|(first, last)| backend.removed_matching(&spec.filter, first, last));
    Ok(Resumed {
        consumer,
        bounds,
        cursor,
        reset_from: reset.then_some(position),
        taken,
        lost,
    })
}

impl Resumed {
    /// The identity of the stream the consumer reads.
    pub(super) fn stream_created(&self) -> SystemTime {
        self.bounds.created
    }
}

enum Phase {
    Streaming(Consumer),
    Resubscribing(BoxFuture<'static, Result<Resumed>>),
    Done,
}

/// One subscription's position and the consumer that serves it: the resume algorithm's state.
pub(super) struct Resume<R> {
    pub(super) state: Arc<CoordinatorState<R>>,
    pub(super) signals: Arc<Signals>,
    pub(super) names: Names,
    pub(super) spec: ConsumerSpec,
    pub(super) acks: Arc<Acks>,
    phase: Phase,
    /// Highest stream sequence accounted for; `None` until the first message of a `Time` start.
    pub(super) cursor: Option<u64>,
    /// Highest sequence known to have been reached (delivered, or the checkpoint resumed from):
    /// a stream whose last sequence is below it was reset.
    high_water: u64,
    /// The stream's identity: its creation time when last (re)subscribed.
    stream_created: Option<SystemTime>,
    /// The instance of the consumer created last, and whether its name had been taken.
    instance: Option<u128>,
    taken: bool,
    /// Whether the filter matches every subject of the stream, so a stream-sequence jump is loss.
    covers_stream: bool,
    expected_consumer_seq: u64,
    missed_heartbeats: u32,
    /// When the last heartbeat was missed: misses further apart are not consecutive.
    last_miss: Option<Instant>,
    attempt: u32,
    /// When the current consumer started streaming: one that lived a while resets `attempt`.
    streaming_since: Option<Instant>,
    replays: Replays,
    /// The last sequence handed to the application (or the position it started from).
    last_yielded: u64,
    key_offset: usize,
}

impl<R: Reporter> Resume<R> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        state: Arc<CoordinatorState<R>>,
        signals: Arc<Signals>,
        names: Names,
        spec: ConsumerSpec,
        acks: Arc<Acks>,
        covers_stream: bool,
        high_water: u64,
        resumed: Resumed,
    ) -> Self {
        let mut resume = Resume {
            key_offset: state.prefix.len() + 1,
            state,
            signals,
            names,
            spec,
            acks,
            phase: Phase::Done,
            cursor: resumed.cursor,
            high_water,
            stream_created: None,
            instance: None,
            taken: false,
            covers_stream,
            expected_consumer_seq: 1,
            missed_heartbeats: 0,
            last_miss: None,
            attempt: 0,
            streaming_since: None,
            replays: Replays::default(),
            last_yielded: high_water,
        };
        resume.on_resumed(resumed);
        resume
    }

    pub(super) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Stops consuming; the caller reports and cleans up.
    pub(super) fn stop(&mut self) {
        self.phase = Phase::Done;
    }

    /// A (re)subscribe succeeded: report loss and replay as the bounds say, and stream.
    fn on_resumed(&mut self, resumed: Resumed) {
        let Resumed {
            consumer,
            bounds,
            cursor,
            reset_from,
            taken,
            lost,
        } = resumed;
        self.instance = Some(consumer.instance());
        self.taken = taken;
        if let Some(position) = reset_from {
            emit_for!(
                self.state.emitter,
                self.names,
                StreamReset {
                    position,
                    last_seq: bounds.last,
                }
            );
            self.high_water = 0;
            self.last_yielded = 0;
            self.acks.reset(bounds.created);
            // A replay of the old stream ends here; the new stream's is its own.
            self.replays.end();
        }
        self.stream_created = Some(bounds.created);
        self.cursor = cursor;
        if let Some((first, last)) = lost {
            self.report_lost(first, last);
            self.cursor = Some(last);
        }
        let from = self.cursor.map(|c| c + 1);
        self.replays.resumed(from, bounds);
        self.expected_consumer_seq = 1;
        self.missed_heartbeats = 0;
        self.last_miss = None;
        self.streaming_since = Some(Instant::now());
        // This consumer was made after any reconnect already signalled.
        self.signals.clear_reconnected();
        self.phase = Phase::Streaming(consumer);
    }

    fn report_lost(&self, first: u64, last: u64) {
        emit_for!(self.state.emitter, self.names, EventsLost { first, last });
    }

    /// Starts recreating the consumer; `cause` is only built when the event is wanted.
    fn resubscribe(&mut self, cause: impl FnOnce() -> ResubscribeCause) {
        // A consumer that streamed for two heartbeats worked: back off from the start again.
        let healthy = self.spec.heartbeat.saturating_mul(2);
        if self
            .streaming_since
            .take()
            .is_some_and(|t| t.elapsed() >= healthy)
        {
            self.attempt = 0;
        }
        self.attempt += 1;
        let delay = self.state.config.backoff.delay(self.attempt);
        let attempt = self.attempt;
        emit_for!(
            self.state.emitter,
            self.names,
            Resubscribing {
                attempt,
                delay,
                cause: cause(),
            }
        );
        let state = self.state.clone();
        let spec = self.spec.clone();
        let known = Known {
            high_water: self.high_water,
            cursor: self.cursor,
            created: self.stream_created,
            ours: self.instance,
            taken_before: self.taken,
        };
        let cursor = self.cursor;
        self.phase = Phase::Resubscribing(Box::pin(async move {
            tokio::time::sleep(delay).await;
            open_consumer(state, spec, move |_| cursor, known).await
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
        // A replay a reset ended is complete before anything of the new stream.
        self.report_replay_done();
        let seen = self.replays.message(raw.seq, raw.pending);
        if let Some((from, to)) = seen.started {
            emit_for!(self.state.emitter, self.names, ReplayStarted { from, to });
        }

        let seq = raw.seq;
        self.last_yielded = seq;
        emit_for!(self.state.emitter, self.names, Delivered { seq });
        Some(Message {
            seq,
            subject: raw.subject,
            payload: raw.payload,
            published_at: raw.published_at,
            replayed: seen.replayed,
            key_offset: self.key_offset,
            acks: self.acks.clone(),
            epoch: self.acks.epoch(),
            stream_created: self.stream_created,
        })
    }

    /// The backend saw retention remove messages in `first..=last` that this consumer had not
    /// delivered: report what lies beyond the cursor, once.
    fn on_lost(&mut self, first: u64, last: u64) {
        let first = self.cursor.map_or(first, |c| first.max(c + 1));
        if first <= last {
            self.report_lost(first, last);
            self.cursor = Some(last);
        }
    }

    /// The consumer delivered every match up to `scanned` and nothing is pending: the position
    /// moves there, so a later resume does not call the skipped non-matching range lost; and
    /// when the application acknowledged everything it was given, so does the checkpoint.
    fn on_idle(&mut self, scanned: u64) {
        if self.cursor.is_some_and(|c| c >= scanned) {
            return;
        }
        self.cursor = Some(scanned);
        self.high_water = self.high_water.max(scanned);
        self.acks.advance_idle(self.last_yielded, scanned);
        self.replays.idle();
    }

    /// Reports the `ReplayCompleted` of a replay whose last message the application has taken.
    pub(super) fn report_replay_done(&mut self) {
        if let Some((events, elapsed)) = self.replays.take_done() {
            emit_for!(
                self.state.emitter,
                self.names,
                ReplayCompleted { events, elapsed }
            );
        }
    }

    fn on_fault(&mut self, fault: Fault) {
        match fault {
            Fault::HeartbeatMissed => {
                // Misses are consecutive when the next comes within the detection interval
                // (two heartbeats) plus one heartbeat of slack; anything else started over.
                let window = self.spec.heartbeat.saturating_mul(3);
                if self.last_miss.is_some_and(|t| t.elapsed() > window) {
                    self.missed_heartbeats = 0;
                }
                self.last_miss = Some(Instant::now());
                self.missed_heartbeats += 1;
                let missed = self.missed_heartbeats;
                emit_for!(self.state.emitter, self.names, HeartbeatMissed { missed });
                if missed >= 2 {
                    self.resubscribe(|| ResubscribeCause::HeartbeatsMissed { missed });
                }
            }
            Fault::ConsumerDeleted => {
                emit_for!(self.state.emitter, self.names, ConsumerDeleted {});
                self.resubscribe(|| ResubscribeCause::ConsumerDeleted);
            }
            Fault::Disconnected => self.resubscribe(|| ResubscribeCause::Disconnected),
            Fault::Other(error) => self.resubscribe(|| ResubscribeCause::Fault {
                error: error.to_string().into(),
            }),
        }
    }

    /// The next message, or `Err` when the subscription must end: shutdown (an error of kind
    /// `Shutdown`), closed (`None`) or an unrecoverable error.
    pub(super) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<std::result::Result<Message, Option<Error>>> {
        self.signals.register(cx.waker());
        self.report_replay_done();
        loop {
            if self.signals.is_closed() && !self.is_done() {
                return Poll::Ready(Err(self.signals.is_shutdown().then(Error::shutdown)));
            }
            if matches!(self.phase, Phase::Streaming(_)) && self.signals.take_reconnected() {
                self.resubscribe(|| ResubscribeCause::Disconnected);
            }
            match &mut self.phase {
                Phase::Streaming(_) if self.acks.poll_room(cx).is_pending() => {
                    return Poll::Pending
                }
                Phase::Streaming(consumer) => match consumer.poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(ConsumerItem::Message(raw)) => {
                        if let Some(message) = self.accept(raw) {
                            return Poll::Ready(Ok(message));
                        }
                    }
                    Poll::Ready(ConsumerItem::Fault(fault)) => self.on_fault(fault),
                    Poll::Ready(ConsumerItem::Lost { first, last }) => self.on_lost(first, last),
                    Poll::Ready(ConsumerItem::Idle { scanned }) => self.on_idle(scanned),
                },
                Phase::Resubscribing(future) => match future.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(resumed)) => {
                        // The first sequence the new consumer can deliver.
                        let resume_from = resumed
                            .cursor
                            .map_or(resumed.bounds.first, |c| (c + 1).max(resumed.bounds.first));
                        emit_for!(
                            self.state.emitter,
                            self.names,
                            ConsumerRecreated { resume_from }
                        );
                        self.on_resumed(resumed);
                    }
                    Poll::Ready(Err(error)) if error.is_transient() => {
                        self.resubscribe(|| ResubscribeCause::RetryFailed {
                            error: error.to_string().into(),
                        });
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(Some(error))),
                },
                Phase::Done => return Poll::Ready(Err(None)),
            }
        }
    }
}
