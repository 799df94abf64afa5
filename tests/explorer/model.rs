//! The explorer's model of the stream: what was published (per stream incarnation, an
//! *epoch*), what retention still holds, and what the fault injection removed. It mirrors the
//! embedded server's rules (sequences, `max_msgs`, `max_bytes`, purge, expiry) and is checked
//! against what the server returns, so a desynchronised model fails loudly instead of
//! producing false findings.

use std::collections::VecDeque;

use crate::schedule::Filter;

/// The prefix every subject is published under (the default stream name).
pub(crate) const PREFIX: &str = "HERALD";

#[derive(Debug)]
pub(crate) struct StreamModel {
    /// Bumped each time the stream is deleted: sequences of different epochs are different
    /// messages.
    pub(crate) epoch: u32,
    /// Every message ever stored, per epoch: `published[epoch][seq - 1]` is its key (relative
    /// subject).
    pub(crate) published: Vec<Vec<String>>,
    /// What the stream still holds: (seq, stored size).
    held: VecDeque<(u64, u64)>,
    pub(crate) first: u64,
    pub(crate) last: u64,
    bytes: u64,
    max_msgs: Option<u64>,
    max_bytes: Option<u64>,
}

impl StreamModel {
    pub(crate) fn new(max_msgs: Option<u64>, max_bytes: Option<u64>) -> Self {
        Self {
            epoch: 0,
            published: vec![Vec::new()],
            held: VecDeque::new(),
            first: 1,
            last: 0,
            bytes: 0,
            max_msgs,
            max_bytes,
        }
    }

    /// The key published at `seq` in `epoch`.
    pub(crate) fn key(&self, epoch: u32, seq: u64) -> Option<&str> {
        let keys = self.published.get(epoch as usize)?;
        keys.get(usize::try_from(seq.checked_sub(1)?).ok()?)
            .map(String::as_str)
    }

    /// The sequences of `epoch` in `from..=to` whose key matches `filter`.
    pub(crate) fn matching(&self, epoch: u32, filter: Filter, from: u64, to: u64) -> Vec<u64> {
        let Some(keys) = self.published.get(epoch as usize) else {
            return Vec::new();
        };
        let to = to.min(keys.len() as u64);
        (from.max(1)..=to)
            .filter(|seq| filter.matches(&keys[(*seq - 1) as usize]))
            .collect()
    }

    /// The last sequence of `epoch` that matches `filter` (0 when none).
    pub(crate) fn last_matching(&self, epoch: u32, filter: Filter) -> u64 {
        self.published
            .get(epoch as usize)
            .and_then(|keys| keys.iter().rposition(|k| filter.matches(k)))
            .map_or(0, |i| i as u64 + 1)
    }

    /// A message was stored (reported by a `Published` event). Returns an error when the
    /// sequence is not the next one: the model and the server disagree.
    pub(crate) fn stored(&mut self, seq: u64, full_subject: &str) -> Result<(), String> {
        if seq != self.last + 1 {
            return Err(format!(
                "the server stored sequence {seq} but the model expected {} (epoch {})",
                self.last + 1,
                self.epoch
            ));
        }
        let key = full_subject
            .strip_prefix(PREFIX)
            .and_then(|s| s.strip_prefix('.'))
            .unwrap_or(full_subject)
            .to_string();
        let payload = payload_len(&key);
        let size = (full_subject.len() + payload) as u64;
        self.published[self.epoch as usize].push(key);
        self.last = seq;
        if self.held.is_empty() {
            self.first = seq;
        }
        self.held.push_back((seq, size));
        self.bytes += size;
        if let Some(max) = self.max_msgs {
            while self.held.len() as u64 > max {
                self.pop_front();
            }
        }
        if let Some(max) = self.max_bytes {
            while self.bytes > max {
                self.pop_front();
            }
        }
        Ok(())
    }

    fn pop_front(&mut self) {
        if let Some((seq, size)) = self.held.pop_front() {
            self.bytes -= size;
            self.first = seq + 1;
        }
    }

    /// `MemoryServer::purge`; returns how many messages go.
    pub(crate) fn purge(&mut self) -> usize {
        let n = self.held.len();
        while !self.held.is_empty() {
            self.pop_front();
        }
        self.first = self.last + 1;
        n
    }

    /// `MemoryServer::expire_through(seq)`; returns how many messages go.
    pub(crate) fn expire_through(&mut self, seq: u64) -> usize {
        let mut n = 0;
        while self.held.front().is_some_and(|(s, _)| *s <= seq) {
            self.pop_front();
            n += 1;
        }
        self.first = self.first.max(seq.min(self.last) + 1);
        n
    }

    /// `MemoryServer::expire_now` past `max_age`: every message goes.
    pub(crate) fn expire_all(&mut self) -> usize {
        let n = self.held.len();
        while !self.held.is_empty() {
            self.pop_front();
        }
        n
    }

    /// `MemoryServer::delete_stream`: a new epoch starts, empty, at sequence 1.
    pub(crate) fn delete(&mut self) {
        self.epoch += 1;
        self.published.push(Vec::new());
        self.held.clear();
        self.first = 1;
        self.last = 0;
        self.bytes = 0;
    }
}

/// The payload length of a message with key `key`: see [`crate::schedule::Key::payload`].
fn payload_len(key: &str) -> usize {
    let n: usize = key
        .split('.')
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    "payload-".len() + (n % 5) * 3
}
