//! Where a scenario runs: the embedded backend, or a nats-server of its own; and the faults an
//! operator or the network causes there.

use std::thread::JoinHandle;
use std::time::Duration;

use herald::testing::RecordingReporter;
use herald::{Builder, Coordinator, MemoryServer};

use super::client::Operator;
use super::nats_server::NatsServer;
use super::wait::{wait_until, DEADLINE};

/// Where a scenario runs.
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
            Target::Memory(server) => Coordinator::builder().memory_server(server.clone()),
            Target::Nats(server) => super::nats_builder(server),
        };
        builder
            .heartbeat(Duration::from_millis(300))
            .backoff(herald::Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(200),
            })
    }

    /// A coordinator on `stream`, reporting to no one.
    pub(crate) async fn connect(&self, stream: &str) -> Coordinator {
        self.builder()
            .stream(stream)
            .connect()
            .await
            .expect("connect")
    }

    /// A coordinator on `stream`, and the recorder it reports to.
    pub(crate) async fn recorded(
        &self,
        stream: &str,
    ) -> (Coordinator<RecordingReporter>, RecordingReporter) {
        let rec = RecordingReporter::new();
        let builder = self.builder().stream(stream).reporter(rec.clone());
        (builder.connect().await.expect("connect"), rec)
    }

    /// Deletes a consumer as an operator would (the JetStream API on NATS).
    pub(crate) async fn delete_consumer(&self, stream: &str, consumer: &str) {
        let existed = match self {
            Target::Memory(server) => server.delete_consumer(stream, consumer),
            Target::Nats(server) => {
                let operator = Operator::on(server).await;
                operator.delete_consumer(stream, consumer).await
            }
        };
        assert!(existed, "no consumer {consumer}");
    }

    /// Freezes the server for `duration` as far as `stream`'s consumers can tell: heartbeats and
    /// deliveries stop (memory: fault injection; NATS: SIGSTOP, then SIGCONT).
    pub(crate) fn freeze(&self, stream: &str, duration: Duration) -> Thaw {
        match self {
            Target::Memory(server) => {
                server.stop_heartbeats(stream, duration);
                Thaw::At(tokio::time::Instant::now() + duration)
            }
            Target::Nats(server) => {
                server.pause();
                let pid = server.pid();
                Thaw::Resumer(std::thread::spawn(move || {
                    std::thread::sleep(duration);
                    let _ = std::process::Command::new("kill")
                        .args(["-CONT", &pid.to_string()])
                        .status();
                }))
            }
        }
    }

    /// Deletes a stream as an operator would.
    pub(crate) async fn delete_stream(&self, stream: &str) {
        match self {
            Target::Memory(server) => assert!(server.delete_stream(stream)),
            Target::Nats(server) => {
                let operator = Operator::on(server).await;
                operator.delete_stream(stream).await.expect("delete stream");
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
                let operator = Operator::on(server).await;
                operator.stream(stream).await.purge().await.expect("purge");
            }
        }
    }

    /// Removes `stream`'s messages up to `seq` as retention would (memory: fault injection;
    /// NATS: a purge up to `seq + 1`, which is how an operator makes room).
    pub(crate) async fn remove_through(&self, stream: &str, seq: u64) {
        match self {
            Target::Memory(server) => {
                server.expire_through(stream, seq);
            }
            Target::Nats(server) => {
                let stream = Operator::on(server).await.stream(stream).await;
                stream.purge().sequence(seq + 1).await.expect("purge");
            }
        }
    }

    /// The names of `stream`'s consumers on the server, sorted.
    pub(crate) async fn consumer_names(&self, stream: &str) -> Vec<String> {
        match self {
            Target::Memory(server) => server.consumer_names(stream),
            Target::Nats(server) => Operator::on(server).await.consumer_names(stream).await,
        }
    }
}

/// The end of a [`Target::freeze`].
pub(crate) enum Thaw {
    /// The embedded server thaws by its clock, at this instant.
    At(tokio::time::Instant),
    /// This thread resumes the nats-server, then ends.
    Resumer(JoinHandle<()>),
}

impl Thaw {
    /// Waits until the server has thawed.
    pub(crate) async fn wait(self) {
        match self {
            Thaw::At(instant) => tokio::time::sleep_until(instant).await,
            Thaw::Resumer(thread) => {
                let resumed = async || thread.is_finished();
                wait_until(DEADLINE, resumed, || "the server was not resumed").await;
            }
        }
    }
}

/// Runs one scenario on both backends, as two tests: `<name>::memory` and `<name>::nats`.
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
pub(crate) use on_both_backends;
