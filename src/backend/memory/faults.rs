//! Fault injection on a [`MemoryServer`] (the `testing` feature): what an operator, a crashing
//! server or a flaky network would do, on demand.

use std::time::{Duration, SystemTime};

use crate::backend::seam::ConnectionChange;

use crate::backend::memory::server::{MemoryServer, MEMORY_SERVER_NAME};

/// Fault injection, for Herald's tests and for applications testing their own handlers.
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
impl MemoryServer {
    /// Deletes every consumer of `stream`, as an operator or the server would; returns how many.
    pub fn delete_consumers(&self, stream: &str) -> usize {
        let Some(stream) = self.stream(stream) else {
            return 0;
        };
        let mut state = stream.state.lock();
        let n = state.consumers.len();
        state.consumers.clear();
        state.wake_all();
        n
    }

    /// Deletes one consumer by name; returns whether it existed.
    pub fn delete_consumer(&self, stream: &str, consumer: &str) -> bool {
        let Some(stream) = self.stream(stream) else {
            return false;
        };
        let mut state = stream.state.lock();
        let existed = state.consumers.remove(consumer).is_some();
        state.wake_all();
        existed
    }

    /// Deletes a stream with its messages and consumers, as an operator would. The next
    /// coordinator call recreates it empty (its sequences start at 1 again).
    pub fn delete_stream(&self, stream: &str) -> bool {
        let Some(stream) = self.inner.streams.lock().remove(stream) else {
            return false;
        };
        let mut state = stream.state.lock();
        state.consumers.clear();
        state.wake_all();
        true
    }

    /// Loses the next `count` deliveries to `stream`'s consumers between server and client, as a
    /// client buffer overflowing would: consumers see a consumer-sequence gap.
    pub fn drop_deliveries(&self, stream: &str, count: u32) {
        if let Some(stream) = self.stream(stream) {
            stream.state.lock().drop_deliveries += count;
        }
    }

    /// Removes every message of `stream`, keeping its sequence numbers; returns how many.
    pub fn purge(&self, stream: &str) -> usize {
        let Some(stream) = self.stream(stream) else {
            return 0;
        };
        let mut state = stream.state.lock();
        let n = state.messages.len();
        while !state.messages.is_empty() {
            state.pop_front();
        }
        state.first_seq = state.last_seq + 1;
        n
    }

    /// The names of `stream`'s consumers, sorted.
    pub fn consumer_names(&self, stream: &str) -> Vec<String> {
        let Some(stream) = self.stream(stream) else {
            return Vec::new();
        };
        let mut names: Vec<String> = stream
            .state
            .lock()
            .consumers
            .keys()
            .map(|k| k.to_string())
            .collect();
        names.sort();
        names
    }

    /// Stops heartbeats and deliveries to consumers of `stream` for `duration`, as a frozen
    /// server would: consumers notice missed heartbeats and cannot be recreated until it ends.
    /// Publishing keeps working.
    pub fn stop_heartbeats(&self, stream: &str, duration: Duration) {
        if let Some(stream) = self.stream(stream) {
            let mut state = stream.state.lock();
            state.frozen_until = Some(crate::deadline::after(duration));
            state.wake_all();
        }
    }

    /// Drops every connection: consumers fail, publishes wait, connection listeners hear
    /// `Disconnected`. Lasts until [`reconnect`](Self::reconnect).
    pub fn disconnect(&self) {
        {
            let mut c = self.inner.connection.lock();
            if c.disconnected {
                return;
            }
            c.disconnected = true;
        }
        self.notify(ConnectionChange::Disconnected {
            server: MEMORY_SERVER_NAME.into(),
            cause: "disconnected by fault injection".into(),
        });
        self.wake_all();
    }

    /// Ends a [`disconnect`](Self::disconnect): listeners hear `Connected`.
    pub fn reconnect(&self) {
        {
            let mut c = self.inner.connection.lock();
            if !c.disconnected {
                return;
            }
            c.disconnected = false;
        }
        self.notify(ConnectionChange::Connected {
            server: MEMORY_SERVER_NAME.into(),
        });
        self.wake_all();
    }

    /// Removes every message of `stream` with a sequence up to `seq`, as retention would.
    /// Returns how many were removed.
    pub fn expire_through(&self, stream: &str, seq: u64) -> usize {
        let Some(stream) = self.stream(stream) else {
            return 0;
        };
        let mut state = stream.state.lock();
        let mut removed = 0;
        while state.messages.front().is_some_and(|m| m.seq <= seq) {
            state.pop_front();
            removed += 1;
        }
        state.first_seq = state.first_seq.max(seq.min(state.last_seq) + 1);
        removed
    }

    /// Applies `max_age` now, as if the clock had moved on by `elapsed`: removes every message
    /// of `stream` older than `max_age - elapsed`. Returns how many were removed.
    pub fn expire_now(&self, stream: &str, elapsed: Duration) -> usize {
        let Some(stream) = self.stream(stream) else {
            return 0;
        };
        let mut state = stream.state.lock();
        let before = state.messages.len();
        let now = SystemTime::now() + elapsed;
        state.apply_max_age(now);
        before - state.messages.len()
    }
}
