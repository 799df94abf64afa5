//! A stream of the embedded server: its messages, limits, duplicate window and the state its
//! consumers read.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::backend::seam::{StreamBounds, StreamSpec};
use crate::subject;

pub(super) fn stored_size(subject: &str, payload: &Bytes) -> u64 {
    (subject.len() + payload.len()) as u64
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) max_age: Duration,
    pub(super) max_msgs: Option<u64>,
    pub(super) max_bytes: Option<u64>,
    pub(super) duplicate_window: Duration,
}

impl From<&StreamSpec> for Limits {
    fn from(spec: &StreamSpec) -> Self {
        Self {
            max_age: spec.max_age,
            max_msgs: spec.max_msgs,
            max_bytes: spec.max_bytes,
            duplicate_window: spec.duplicate_window,
        }
    }
}

pub(super) struct StoredMessage {
    pub(super) seq: u64,
    pub(super) subject: Arc<str>,
    pub(super) payload: Bytes,
    pub(super) published_at: SystemTime,
}

pub(super) struct MemoryStream {
    pub(super) state: Mutex<StreamState>,
}

impl MemoryStream {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(StreamState {
                messages: VecDeque::new(),
                created: SystemTime::now(),
                first_seq: 1,
                last_seq: 0,
                bytes: 0,
                limits: Limits {
                    max_age: Duration::from_secs(3600),
                    max_msgs: None,
                    max_bytes: None,
                    duplicate_window: Duration::from_secs(120),
                },
                consumers: HashMap::new(),
                wakers: HashMap::new(),
                dedupe: HashMap::new(),
                frozen_until: None,
                drop_deliveries: 0,
                removed: VecDeque::new(),
            }),
        }
    }
}

pub(super) struct StreamState {
    pub(super) messages: VecDeque<StoredMessage>,
    /// When the stream was created: its identity.
    pub(super) created: SystemTime,
    /// Sequence of `messages[0]`, or `last_seq + 1` when empty.
    pub(super) first_seq: u64,
    pub(super) last_seq: u64,
    pub(super) bytes: u64,
    pub(super) limits: Limits,
    /// Live consumers: name → the id of the consumer instance that owns the name.
    pub(super) consumers: HashMap<Arc<str>, u64>,
    /// Consumers waiting for a message or a fault, by instance id.
    pub(super) wakers: HashMap<u64, Waker>,
    pub(super) dedupe: HashMap<String, (u64, SystemTime)>,
    pub(super) frozen_until: Option<Instant>,
    /// Deliveries to lose on the way to the client (fault injection).
    pub(super) drop_deliveries: u32,
    /// The latest messages retention removed (sequence and subject, at most [`REMOVED_KEPT`]),
    /// so a consumer that had not delivered them can tell whether they matched its filter.
    pub(super) removed: VecDeque<(u64, Arc<str>)>,
}

/// How many removed messages a stream remembers; a consumer further behind reports the whole
/// range it missed as possibly lost.
const REMOVED_KEPT: usize = 65_536;

impl StreamState {
    pub(super) fn bounds(&self) -> StreamBounds {
        StreamBounds {
            first: self.first_seq,
            last: self.last_seq,
            created: self.created,
        }
    }

    pub(super) fn wake_all(&mut self) {
        for (_, waker) in self.wakers.drain() {
            waker.wake();
        }
    }

    pub(super) fn is_frozen(&mut self) -> bool {
        match self.frozen_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                self.frozen_until = None;
                false
            }
            None => false,
        }
    }

    pub(super) fn pop_front(&mut self) {
        if let Some(m) = self.messages.pop_front() {
            self.bytes -= stored_size(&m.subject, &m.payload);
            self.first_seq = m.seq + 1;
            if self.removed.len() == REMOVED_KEPT {
                self.removed.pop_front();
            }
            self.removed.push_back((m.seq, m.subject));
        }
    }

    pub(super) fn apply_max_age(&mut self, now: SystemTime) {
        let max_age = self.limits.max_age;
        while self.messages.front().is_some_and(|m| {
            now.duration_since(m.published_at)
                .is_ok_and(|age| age > max_age)
        }) {
            self.pop_front();
        }
    }

    pub(super) fn apply_limits(&mut self, now: SystemTime) {
        self.apply_max_age(now);
        if let Some(max) = self.limits.max_msgs {
            while self.messages.len() as u64 > max {
                self.pop_front();
            }
        }
        if let Some(max) = self.limits.max_bytes {
            while self.bytes > max {
                self.pop_front();
            }
        }
    }

    pub(super) fn prune_dedupe(&mut self, now: SystemTime) {
        let window = self.limits.duplicate_window;
        self.dedupe.retain(|_, (_, at)| {
            now.duration_since(*at)
                .map(|age| age <= window)
                .unwrap_or(true)
        });
    }

    /// The messages matching `filter` that retention removed from `from` on: the range from
    /// the first to the last of them, or from `from` when the stream no longer remembers that
    /// far back.
    pub(super) fn removed_matching(&self, from: u64, filter: &str) -> Option<(u64, u64)> {
        let everything = filter == ">";
        let remembered = self.removed.front().map_or(self.first_seq, |(seq, _)| *seq);
        let mut range = (from < remembered).then(|| (from, remembered - 1));
        for (seq, subject) in self.removed.iter().filter(|(seq, _)| *seq >= from) {
            if everything || subject::matches(filter, subject) {
                range = Some(range.map_or((*seq, *seq), |(first, _)| (first, *seq)));
            }
        }
        range
    }

    /// Index in `messages` of the first message at or after `seq` that matches `filter`.
    pub(super) fn find(&self, seq: u64, filter: &str) -> Option<usize> {
        let start = seq.saturating_sub(self.first_seq) as usize;
        let everything = filter == ">";
        (start..self.messages.len())
            .find(|&i| everything || subject::matches(filter, &self.messages[i].subject))
    }
}
