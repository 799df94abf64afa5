//! Shared test support: a recording reporter, delivery helpers with deadlines, and a `Target`
//! that runs one scenario on the embedded backend or on a real nats-server.
#![allow(dead_code)]

pub(crate) mod nats_server;

use std::sync::Arc;
use std::time::Duration;

use herald::{Builder, CoordinatorEvent, EventKind, MemoryServer, Message, Reporter, Subscription};
use parking_lot::Mutex;

pub(crate) use nats_server::NatsServer;

/// Generous deadline for anything a test waits for: long enough for a slow CI machine, short
/// enough that a hang fails the test instead of the suite.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// Records every event it is interested in, in order.
#[derive(Default)]
pub(crate) struct Recorder {
    events: Mutex<Vec<CoordinatorEvent>>,
    per_message: bool,
}

impl Recorder {
    /// Records every kind except the per-message ones.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records every kind, per-message ones included.
    pub(crate) fn everything() -> Arc<Self> {
        Arc::new(Self {
            per_message: true,
            ..Self::default()
        })
    }

    pub(crate) fn events(&self) -> Vec<CoordinatorEvent> {
        self.events.lock().clone()
    }

    pub(crate) fn kinds(&self) -> Vec<EventKind> {
        self.events.lock().iter().map(|e| e.kind()).collect()
    }

    /// Kinds recorded, without the connection and checkpoint ones that depend on timing.
    pub(crate) fn subscription_kinds(&self) -> Vec<EventKind> {
        self.kinds()
            .into_iter()
            .filter(|k| {
                !matches!(
                    k,
                    EventKind::Connected
                        | EventKind::Disconnected
                        | EventKind::Reconnected
                        | EventKind::Reconnecting
                        | EventKind::StreamReady
                        | EventKind::CheckpointSaved
                        | EventKind::Published
                        | EventKind::Delivered
                        | EventKind::PublishFailed
                )
            })
            .collect()
    }

    pub(crate) fn count(&self, kind: EventKind) -> usize {
        self.events
            .lock()
            .iter()
            .filter(|e| e.kind() == kind)
            .count()
    }

    pub(crate) fn clear(&self) {
        self.events.lock().clear();
    }

    /// Waits until an event of `kind` has been recorded.
    pub(crate) async fn wait_for(&self, kind: EventKind) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.count(kind) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} event within {DEADLINE:?}; got {:?}",
                self.kinds()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Reporter for Recorder {
    fn interest(&self, kind: EventKind) -> bool {
        self.per_message || !kind.is_per_message()
    }

    fn report(&self, event: &CoordinatorEvent) {
        self.events.lock().push(event.clone());
    }
}

/// Takes the next `n` messages (acking each), failing if they do not arrive in time.
pub(crate) async fn take<R: Reporter>(sub: &mut Subscription<R>, n: usize) -> Vec<Message> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(DEADLINE, sub.next()).await {
            Ok(Some(Ok(message))) => {
                message.ack();
                out.push(message);
            }
            Ok(Some(Err(e))) => panic!("subscription failed after {} messages: {e}", out.len()),
            Ok(None) => panic!("subscription ended after {} messages", out.len()),
            Err(_) => panic!(
                "only {} of {n} messages within {DEADLINE:?}: {:?}",
                out.len(),
                seqs(&out)
            ),
        }
    }
    out
}

/// Takes the next `n` messages and returns their sequences.
pub(crate) async fn take_seqs<R: Reporter>(sub: &mut Subscription<R>, n: usize) -> Vec<u64> {
    seqs(&take(sub, n).await)
}

/// Asserts nothing is delivered for `quiet`.
pub(crate) async fn assert_quiet<R: Reporter>(sub: &mut Subscription<R>, quiet: Duration) {
    if let Ok(item) = tokio::time::timeout(quiet, sub.next()).await {
        panic!("expected no message, got {item:?}");
    }
}

pub(crate) fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// NATS options for tests: quick pings, timeouts and reconnects, so faults are noticed fast.
pub(crate) fn fast_options(urls: &str) -> herald::NatsOptions {
    herald::NatsOptions::new(urls)
        .ping_interval(Duration::from_millis(500))
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2))
        .reconnect_backoff(herald::Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(250),
        })
}

/// Where a scenario runs: the embedded backend, or a nats-server of its own.
pub(crate) enum Target {
    Memory(MemoryServer),
    Nats(NatsServer),
}

impl Target {
    pub(crate) fn memory() -> Self {
        Target::Memory(MemoryServer::new())
    }

    pub(crate) fn nats() -> Self {
        Target::Nats(NatsServer::start())
    }

    pub(crate) fn is_nats(&self) -> bool {
        matches!(self, Target::Nats(_))
    }

    /// A builder on this target with fast heartbeats and backoff, for tests.
    pub(crate) fn builder(&self) -> Builder {
        let builder = match self {
            Target::Memory(server) => herald::Coordinator::builder().memory_server(server.clone()),
            Target::Nats(server) => {
                herald::Coordinator::builder().nats_options(fast_options(&server.url()))
            }
        };
        builder
            .heartbeat(Duration::from_millis(300))
            .backoff(herald::Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(200),
            })
    }

    /// Deletes a consumer as an operator would (the JetStream API on NATS).
    pub(crate) async fn delete_consumer(&self, stream: &str, consumer: &str) {
        match self {
            Target::Memory(server) => {
                assert!(
                    server.delete_consumer(stream, consumer),
                    "no consumer {consumer}"
                );
            }
            Target::Nats(server) => {
                let js = jetstream(server).await;
                let stream = js.get_stream(stream).await.expect("stream");
                stream
                    .delete_consumer(consumer)
                    .await
                    .expect("delete consumer");
            }
        }
    }

    /// Freezes the server for `duration` as far as `stream`'s consumers can tell: heartbeats and
    /// deliveries stop (memory: fault injection; NATS: SIGSTOP, then SIGCONT).
    pub(crate) fn freeze(&self, stream: &str, duration: Duration) {
        match self {
            Target::Memory(server) => server.stop_heartbeats(stream, duration),
            Target::Nats(server) => {
                server.pause();
                let pid = server.pid();
                std::thread::spawn(move || {
                    std::thread::sleep(duration);
                    let _ = std::process::Command::new("kill")
                        .args(["-CONT", &pid.to_string()])
                        .status();
                });
            }
        }
    }

    /// Deletes a stream as an operator would.
    pub(crate) async fn delete_stream(&self, stream: &str) {
        match self {
            Target::Memory(server) => assert!(server.delete_stream(stream)),
            Target::Nats(server) => {
                jetstream(server)
                    .await
                    .delete_stream(stream)
                    .await
                    .expect("delete stream");
            }
        }
    }

    /// Purges a stream's messages (sequences go on).
    pub(crate) async fn purge(&self, stream: &str) {
        match self {
            Target::Memory(server) => {
                server.purge(stream);
            }
            Target::Nats(server) => {
                let js = jetstream(server).await;
                js.get_stream(stream)
                    .await
                    .expect("stream")
                    .purge()
                    .await
                    .expect("purge");
            }
        }
    }

    /// The names of `stream`'s consumers on the server.
    pub(crate) async fn consumer_names(&self, stream: &str) -> Vec<String> {
        match self {
            Target::Memory(server) => server.consumer_names(stream),
            Target::Nats(server) => {
                use futures::TryStreamExt;
                let js = jetstream(server).await;
                let stream = js.get_stream(stream).await.expect("stream");
                let mut names: Vec<String> = stream
                    .consumer_names()
                    .try_collect()
                    .await
                    .expect("consumer names");
                names.sort();
                names
            }
        }
    }
}

pub(crate) async fn jetstream(server: &NatsServer) -> async_nats::jetstream::Context {
    let client = async_nats::connect(server.url()).await.expect("connect");
    async_nats::jetstream::new(client)
}

/// Runs one scenario on both backends, as two tests: `<name>::memory` and `<name>::nats`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name($crate::support::Target::memory()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nats() {
                super::$name($crate::support::Target::nats()).await;
            }
        }
    };
}
