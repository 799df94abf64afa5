//! A consumer of the embedded server: delivers matching messages in order, with heartbeats,
//! and reports the faults injected into it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, Sleep};

use crate::backend::seam::{ConsumerItem, ConsumerSpec, Fault, RawMessage};
use crate::error::{Error, ErrorKind};

use crate::backend::memory::server::MemoryServer;
use crate::backend::memory::stream::MemoryStream;

pub(crate) struct MemoryConsumer {
    server: MemoryServer,
    stream: Arc<MemoryStream>,
    name: Arc<str>,
    filter: Arc<str>,
    id: u64,
    next_seq: u64,
    /// The stream sequence delivery has been decided up to (delivered, or passed over).
    scanned: u64,
    consumer_seq: u64,
    /// The consumer sequence of the last message that reached the client.
    received: u64,
    heartbeat: Duration,
    /// Armed while the server is frozen: fires every two heartbeats with `HeartbeatMissed`.
    missed_timer: Option<Pin<Box<Sleep>>>,
    disconnected_reported: bool,
    deleted_reported: bool,
}

impl fmt::Debug for MemoryConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConsumer")
            .field("name", &self.name)
            .field("filter", &self.filter)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl MemoryConsumer {
    /// A consumer of `stream` that delivers matching messages from `next_seq` on.
    pub(super) fn new(
        server: MemoryServer,
        stream: Arc<MemoryStream>,
        spec: &ConsumerSpec,
        id: u64,
        next_seq: u64,
    ) -> Self {
        Self {
            server,
            stream,
            name: spec.name.clone(),
            filter: spec.filter.clone(),
            id,
            next_seq,
            scanned: next_seq.saturating_sub(1),
            consumer_seq: 0,
            received: 0,
            heartbeat: spec.heartbeat,
            missed_timer: None,
            disconnected_reported: false,
            deleted_reported: false,
        }
    }

    /// This consumer's instance on the server: its id.
    pub(crate) fn instance(&self) -> u128 {
        u128::from(self.id)
    }

    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<ConsumerItem> {
        // A subscriber draining a backlog must still let its runtime's other tasks run.
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        if self.server.is_disconnected() {
            if !self.disconnected_reported {
                self.disconnected_reported = true;
                return Poll::Ready(ConsumerItem::Fault(Fault::Disconnected));
            }
            self.stream
                .state
                .lock()
                .wakers
                .insert(self.id, cx.waker().clone());
            return Poll::Pending;
        }
        let mut state = self.stream.state.lock();
        if state.consumers.get(&self.name) != Some(&self.id) {
            if !self.deleted_reported {
                self.deleted_reported = true;
                return Poll::Ready(ConsumerItem::Fault(Fault::ConsumerDeleted));
            }
            state.wakers.insert(self.id, cx.waker().clone());
            return Poll::Pending;
        }
        if let Some(until) = state.frozen_until.filter(|&u| Instant::now() < u) {
            // A frozen server sends nothing; the client notices after two heartbeats.
            state.wakers.insert(self.id, cx.waker().clone());
            drop(state);
            let every = self.heartbeat.saturating_mul(2);
            let timer = self.missed_timer.get_or_insert_with(|| {
                Box::pin(tokio::time::sleep_until(
                    crate::deadline::after(every).min(until),
                ))
            });
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if now < until {
                timer
                    .as_mut()
                    .reset(crate::deadline::after_from(now, every).min(until));
                let _ = timer.as_mut().poll(cx);
                return Poll::Ready(ConsumerItem::Fault(Fault::HeartbeatMissed));
            }
            // The freeze is over: deliver again.
            state = self.stream.state.lock();
        }
        self.missed_timer = None;
        state.apply_max_age(SystemTime::now());
        // Messages removed by retention are skipped, as a server does; the matching ones are
        // reported lost first.
        if self.next_seq < state.first_seq {
            let lost = state.removed_matching(self.next_seq, &self.filter);
            self.next_seq = state.first_seq;
            if let Some((first, last)) = lost {
                return Poll::Ready(ConsumerItem::Lost { first, last });
            }
        }
        let next = self.next_seq;
        let mut found = state.find(next, &self.filter);
        while let (Some(index), true) = (found, state.drop_deliveries > 0) {
            state.drop_deliveries -= 1;
            let seq = state.messages[index].seq;
            self.next_seq = seq + 1;
            self.consumer_seq += 1;
            found = state.find(seq + 1, &self.filter);
        }
        match found {
            Some(index) => {
                let m = &state.messages[index];
                let pending = u64::from(state.find(m.seq + 1, &self.filter).is_some());
                self.next_seq = m.seq + 1;
                self.scanned = m.seq;
                self.consumer_seq += 1;
                self.received = self.consumer_seq;
                coop.made_progress();
                Poll::Ready(ConsumerItem::Message(RawMessage {
                    seq: m.seq,
                    consumer_seq: self.consumer_seq,
                    subject: m.subject.clone(),
                    payload: m.payload.clone(),
                    published_at: m.published_at,
                    pending,
                }))
            }
            None => {
                self.next_seq = state.last_seq + 1;
                state.wakers.insert(self.id, cx.waker().clone());
                if self.consumer_seq > self.received {
                    // Deliveries lost at the tail: no later message reveals them, so say so,
                    // as the NATS consumer's idle check does.
                    let (delivered, received) = (self.consumer_seq, self.received);
                    self.received = delivered;
                    return Poll::Ready(ConsumerItem::Fault(Fault::Other(Error::new(
                        ErrorKind::Server,
                        format!(
                            "the server delivered up to consumer sequence {delivered} but the client received up to {received}"
                        ),
                    ))));
                }
                if state.last_seq > self.scanned {
                    // Caught up past messages that did not match: say how far.
                    self.scanned = state.last_seq;
                    return Poll::Ready(ConsumerItem::Idle {
                        scanned: state.last_seq,
                    });
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        self.stream.state.lock().wakers.remove(&self.id);
    }
}
