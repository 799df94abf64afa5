//! The embedded backend: a real in-process stream engine, the default.
//!
//! It behaves like a single JetStream server holding limits-retention streams: monotonically
//! increasing sequences, publish timestamps, NATS subject matching for filters, retention by
//! `max_age`, `max_msgs` and `max_bytes`, a duplicate window for message ids, and any number of
//! consumers at once. Streams live in a [`MemoryServer`]; coordinators that share a server share
//! its streams, as nodes sharing a NATS cluster do.
//!
//! With the `testing` feature, [`MemoryServer`] also injects faults: delete consumers, stop
//! heartbeats, disconnect and reconnect, expire messages now.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

#[cfg(feature = "testing")]
use super::ConnectionChange;
use super::{
    ConnectionListener, ConsumerItem, ConsumerSpec, DeliverFrom, Fault, RawMessage, Stored,
    StreamBounds, StreamReadyInfo, StreamSpec,
};
use crate::error::{Error, ErrorKind, Result};
use crate::subject;

/// An in-process stand-in for a NATS server: it holds streams and their consumers.
///
/// [`Builder::memory`](crate::Builder::memory) gives each coordinator a private server. To let
/// several coordinators share streams (several "nodes" in one process, or a "restarted" process
/// in a test), create one server and pass clones of it to
/// [`Builder::memory_server`](crate::Builder::memory_server).
///
/// ```
/// use herald::{Coordinator, MemoryServer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let server = MemoryServer::new();
/// let a = Coordinator::builder().memory_server(server.clone()).connect().await?;
/// let b = Coordinator::builder().memory_server(server.clone()).connect().await?;
/// let seq = a.publish("alerts.1", "changed").await?;
/// assert_eq!(seq, 1); // b sees the same stream
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MemoryServer {
    inner: Arc<ServerInner>,
}

#[derive(Default)]
struct ServerInner {
    streams: Mutex<HashMap<Arc<str>, Arc<MemoryStream>>>,
    listeners: Mutex<Vec<ConnectionListener>>,
    connection: Mutex<ConnectionFaults>,
    next_consumer_id: AtomicU64,
}

#[derive(Default)]
struct ConnectionFaults {
    disconnected: bool,
}

impl fmt::Debug for MemoryServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryServer")
            .field("streams", &self.inner.streams.lock().len())
            .finish()
    }
}

impl MemoryServer {
    /// A server with no streams.
    pub fn new() -> Self {
        Self::default()
    }

    fn is_disconnected(&self) -> bool {
        self.inner.connection.lock().disconnected
    }

    #[cfg(feature = "testing")]
    fn notify(&self, change: ConnectionChange) {
        let listeners = self.inner.listeners.lock().clone();
        for listener in listeners {
            listener(change.clone());
        }
    }

    fn stream(&self, name: &str) -> Option<Arc<MemoryStream>> {
        self.inner.streams.lock().get(name).cloned()
    }

    #[cfg(feature = "testing")]
    fn wake_all(&self) {
        let streams: Vec<_> = self.inner.streams.lock().values().cloned().collect();
        for stream in streams {
            stream.state.lock().wake_all();
        }
    }
}

/// Fault injection, for Herald's tests and for applications testing their own handlers.
#[cfg(feature = "testing")]
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
            state.frozen_until = Some(Instant::now() + duration);
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

pub(crate) const MEMORY_SERVER_NAME: &str = "memory://embedded";

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

    /// The stream; one deleted underneath the coordinator is recreated, as on NATS.
    fn stream(&self) -> Result<Arc<MemoryStream>> {
        if let Some(stream) = self.server.stream(&self.spec.name) {
            return Ok(stream);
        }
        self.ensure_stream()?;
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

    pub(crate) fn publish(
        &self,
        subject: &Arc<str>,
        payload: Bytes,
        msg_id: Option<&str>,
    ) -> Result<Stored> {
        self.check_connected()?;
        let stream = self.stream()?;
        let mut state = stream.state.lock();
        let now = SystemTime::now();
        if let Some(id) = msg_id {
            state.prune_dedupe(now);
            if let Some(&(seq, _)) = state.dedupe.get(id) {
                return Ok(Stored {
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
        state.bytes += stored_size(subject, &payload);
        state.messages.push_back(StoredMessage {
            seq,
            subject: subject.clone(),
            payload,
            published_at: now,
        });
        if let Some(id) = msg_id {
            state.dedupe.insert(id.to_owned(), (seq, now));
        }
        state.apply_limits(now);
        state.wake_all();
        Ok(Stored {
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
        Ok(MemoryConsumer {
            server: self.server.clone(),
            stream,
            name: spec.name.clone(),
            filter: spec.filter.clone(),
            id,
            next_seq,
            consumer_seq: 0,
            heartbeat: spec.heartbeat,
            missed_timer: None,
            disconnected_reported: false,
            deleted_reported: false,
        })
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

fn stored_size(subject: &str, payload: &Bytes) -> u64 {
    (subject.len() + payload.len()) as u64
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    max_age: Duration,
    max_msgs: Option<u64>,
    max_bytes: Option<u64>,
    duplicate_window: Duration,
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

struct StoredMessage {
    seq: u64,
    subject: Arc<str>,
    payload: Bytes,
    published_at: SystemTime,
}

struct MemoryStream {
    state: Mutex<StreamState>,
}

impl MemoryStream {
    fn new() -> Self {
        Self {
            state: Mutex::new(StreamState {
                messages: VecDeque::new(),
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
            }),
        }
    }
}

struct StreamState {
    messages: VecDeque<StoredMessage>,
    /// Sequence of `messages[0]`, or `last_seq + 1` when empty.
    first_seq: u64,
    last_seq: u64,
    bytes: u64,
    limits: Limits,
    /// Live consumers: name → the id of the consumer instance that owns the name.
    consumers: HashMap<Arc<str>, u64>,
    /// Consumers waiting for a message or a fault, by instance id.
    wakers: HashMap<u64, Waker>,
    dedupe: HashMap<String, (u64, SystemTime)>,
    frozen_until: Option<Instant>,
    /// Deliveries to lose on the way to the client (fault injection).
    drop_deliveries: u32,
}

impl StreamState {
    fn bounds(&self) -> StreamBounds {
        StreamBounds {
            first: self.first_seq,
            last: self.last_seq,
        }
    }

    fn wake_all(&mut self) {
        for (_, waker) in self.wakers.drain() {
            waker.wake();
        }
    }

    fn is_frozen(&mut self) -> bool {
        match self.frozen_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                self.frozen_until = None;
                false
            }
            None => false,
        }
    }

    fn pop_front(&mut self) {
        if let Some(m) = self.messages.pop_front() {
            self.bytes -= stored_size(&m.subject, &m.payload);
            self.first_seq = m.seq + 1;
        }
    }

    fn apply_max_age(&mut self, now: SystemTime) {
        let max_age = self.limits.max_age;
        while self.messages.front().is_some_and(|m| {
            now.duration_since(m.published_at)
                .is_ok_and(|age| age > max_age)
        }) {
            self.pop_front();
        }
    }

    fn apply_limits(&mut self, now: SystemTime) {
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

    fn prune_dedupe(&mut self, now: SystemTime) {
        let window = self.limits.duplicate_window;
        self.dedupe.retain(|_, (_, at)| {
            now.duration_since(*at)
                .map(|age| age <= window)
                .unwrap_or(true)
        });
    }

    /// Index in `messages` of the first message at or after `seq` that matches `filter`.
    fn find(&self, seq: u64, filter: &str) -> Option<usize> {
        let start = seq.saturating_sub(self.first_seq) as usize;
        let everything = filter == ">";
        (start..self.messages.len())
            .find(|&i| everything || subject::matches(filter, &self.messages[i].subject))
    }
}

/// A consumer on the embedded backend.
pub(crate) struct MemoryConsumer {
    server: MemoryServer,
    stream: Arc<MemoryStream>,
    name: Arc<str>,
    filter: Arc<str>,
    id: u64,
    next_seq: u64,
    consumer_seq: u64,
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
            let every = self.heartbeat * 2;
            let timer = self.missed_timer.get_or_insert_with(|| {
                Box::pin(tokio::time::sleep_until(
                    (Instant::now() + every).min(until),
                ))
            });
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if now < until {
                timer.as_mut().reset((now + every).min(until));
                let _ = timer.as_mut().poll(cx);
                return Poll::Ready(ConsumerItem::Fault(Fault::HeartbeatMissed));
            }
            // The freeze is over: deliver again.
            state = self.stream.state.lock();
        }
        self.missed_timer = None;
        state.apply_max_age(SystemTime::now());
        // Messages removed by retention are skipped, as a server does.
        let next = self.next_seq.max(state.first_seq);
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
                self.consumer_seq += 1;
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
