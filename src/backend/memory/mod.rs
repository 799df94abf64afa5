//! The embedded backend: a real in-process stream engine, the default.
//!
//! It behaves like a single JetStream server holding limits-retention streams: monotonically
//! increasing sequences, publish timestamps, NATS subject matching for filters, retention by
//! `max_age`, `max_msgs` and `max_bytes`, a duplicate window for message ids, and any number of
//! consumers at once. Streams live in a [`MemoryServer`]; coordinators that share a server share
//! its streams, as nodes sharing a NATS cluster do.
//!
//! - `server.rs`: [`MemoryServer`]; `faults.rs`: its fault injection (`testing` feature);
//! - `stream.rs`: a stream's messages and limits; `consumer.rs`: a consumer's deliveries;
//! - this file: [`MemoryBackend`], the calls the coordinator makes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use crate::backend::seam::{
    ConnectionListener, ConsumerSpec, DeliverFrom, Outgoing, PublishAck, StreamBounds,
    StreamReadyInfo, StreamSpec,
};
use crate::error::{Error, ErrorKind, Result};

mod consumer;
#[cfg(feature = "testing")]
mod faults;
mod server;
mod stream;

pub(crate) use self::consumer::MemoryConsumer;
pub use self::server::MemoryServer;
use self::server::MEMORY_SERVER_NAME;
use self::stream::{stored_size, Limits, MemoryStream, StoredMessage};

/// A coordinator's connection to a [`MemoryServer`].
#[derive(Clone, Debug)]
pub(crate) struct MemoryBackend {
    server: MemoryServer,
    spec: Arc<StreamSpec>,
}

impl MemoryBackend {
    pub(crate) fn new(server: MemoryServer, spec: StreamSpec) -> Self {
        Self {
            server,
            spec: Arc::new(spec),
        }
    }

    pub(crate) fn server(&self) -> &MemoryServer {
        &self.server
    }

    pub(crate) fn add_listener(&self, listener: ConnectionListener) {
        self.server.inner.listeners.lock().push(listener);
    }

    /// Stops telling `listener` of connection changes: the coordinator shut down.
    pub(crate) fn remove_listener(&self, listener: &ConnectionListener) {
        self.server
            .inner
            .listeners
            .lock()
            .retain(|l| !Arc::ptr_eq(l, listener));
    }

    pub(crate) fn server_name(&self) -> Arc<str> {
        MEMORY_SERVER_NAME.into()
    }

    fn check_connected(&self) -> Result<()> {
        if self.server.is_disconnected() {
            return Err(Error::new(
                ErrorKind::Disconnected,
                "the embedded server is disconnected",
            ));
        }
        Ok(())
    }

    /// The stream; `StreamNotFound` when it was deleted underneath the coordinator, which
    /// decides what to do about it.
    fn stream(&self) -> Result<Arc<MemoryStream>> {
        self.server.stream(&self.spec.name).ok_or_else(|| {
            Error::new(
                ErrorKind::StreamNotFound,
                format!("stream {} does not exist", self.spec.name),
            )
        })
    }

    pub(crate) fn ensure_stream(&self) -> Result<StreamReadyInfo> {
        self.check_connected()?;
        let mut streams = self.server.inner.streams.lock();
        let (stream, created) = match streams.get(&self.spec.name) {
            Some(existing) => (existing.clone(), false),
            None => {
                let stream = Arc::new(MemoryStream::new());
                streams.insert(self.spec.name.clone(), stream.clone());
                (stream, true)
            }
        };
        drop(streams);
        let mut state = stream.state.lock();
        // Reconcile: the latest coordinator's limits apply, as `create_or_update` does.
        state.limits = Limits::from(&*self.spec);
        state.apply_limits(SystemTime::now());
        Ok(StreamReadyInfo {
            created,
            bounds: state.bounds(),
        })
    }

    pub(crate) fn publish(&self, message: Outgoing<'_>) -> Result<PublishAck> {
        let Outgoing {
            subject, payload, ..
        } = message;
        // Herald's own ids only guard retries, and a publish here never half-succeeds.
        let msg_id = message.idempotent.then_some(message.msg_id);
        self.check_connected()?;
        let stream = self.stream()?;
        let mut state = stream.state.lock();
        let now = SystemTime::now();
        if let Some(id) = msg_id {
            state.prune_dedupe(now);
            if let Some(&(seq, _)) = state.dedupe.get(id) {
                return Ok(PublishAck {
                    seq,
                    duplicate: true,
                });
            }
        }
        state.last_seq += 1;
        let seq = state.last_seq;
        if state.messages.is_empty() {
            state.first_seq = seq;
        }
        state.bytes += stored_size(subject, payload);
        state.messages.push_back(StoredMessage {
            seq,
            subject: subject.clone(),
            payload: payload.clone(),
            published_at: now,
        });
        if let Some(id) = msg_id {
            state.dedupe.insert(id.to_owned(), (seq, now));
        }
        state.apply_limits(now);
        state.wake_all();
        Ok(PublishAck {
            seq,
            duplicate: false,
        })
    }

    pub(crate) fn bounds(&self) -> Result<StreamBounds> {
        self.check_connected()?;
        let stream = self.stream()?;
        let mut state = stream.state.lock();
        state.apply_max_age(SystemTime::now());
        Ok(state.bounds())
    }

    pub(crate) fn create_consumer(&self, spec: &ConsumerSpec) -> Result<MemoryConsumer> {
        self.check_connected()?;
        let stream = self.stream()?;
        let mut state = stream.state.lock();
        if state.is_frozen() {
            return Err(Error::new(
                ErrorKind::Timeout,
                "the embedded server did not answer (heartbeats stopped)",
            ));
        }
        state.apply_max_age(SystemTime::now());
        let next_seq = match spec.from {
            DeliverFrom::Sequence(seq) => seq.max(1),
            DeliverFrom::Time(t) => state
                .messages
                .iter()
                .find(|m| m.published_at >= t)
                .map(|m| m.seq)
                .unwrap_or(state.last_seq + 1),
        };
        let id = self
            .server
            .inner
            .next_consumer_id
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        state.consumers.insert(spec.name.clone(), id);
        drop(state);
        Ok(MemoryConsumer::new(
            self.server.clone(),
            stream,
            spec,
            id,
            next_seq,
        ))
    }

    /// Of the removed sequences in `range` (`first..=last`), the range from the first to the
    /// last that matched `filter`, or `None` when none did.
    pub(crate) fn removed_matching(&self, filter: &str, range: (u64, u64)) -> Option<(u64, u64)> {
        let (first, last) = range;
        let stream = self.stream().ok()?;
        let found = stream.state.lock().removed_matching(first, filter);
        found
            .map(|(from, to)| (from, to.min(last)))
            .filter(|(from, to)| from <= to)
    }

    /// The instance of the consumer `name` (its id), or `None` when there is none.
    pub(crate) fn consumer_instance(&self, name: &str) -> Result<Option<u128>> {
        self.check_connected()?;
        Ok(self
            .stream()
            .ok()
            .and_then(|stream| stream.state.lock().consumers.get(name).copied())
            .map(u128::from))
    }

    pub(crate) fn delete_consumer(&self, name: &str) {
        if let Ok(stream) = self.stream() {
            let mut state = stream.state.lock();
            if state.consumers.remove(name).is_some() {
                state.wake_all();
            }
        }
    }
}
