//! Consuming a backlog: the raw pull consumer against Herald subscriptions with each reporter.

use std::hint::black_box;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use herald::{CheckpointPolicy, Coordinator, NullReporter, Reporter, StartPosition};
use herald_log::LogReporter;
use herald_otel::OtelReporter;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

use crate::measure::{report_cpu, report_ratio, timed, Runs};
use crate::support::{self, env_usize, k, rate, subscribe_all};
use crate::{deadline, herald, raw_connect, Bench, Config};

/// The pull settings of a Herald subscription (src/backend/nats.rs), given to the raw consumer.
const HEARTBEAT: Duration = Duration::from_secs(5);
const EXPIRES: Duration = Duration::from_secs(30);
const BATCH: usize = 500;

/// The raw pull consumer: what a Herald subscription creates, with the same pull settings.
fn raw_consumer_config(name: &str, filter: String, start: u64) -> consumer::pull::Config {
    consumer::pull::Config {
        name: Some(name.to_string()),
        filter_subject: filter,
        deliver_policy: consumer::DeliverPolicy::ByStartSequence {
            start_sequence: start,
        },
        ack_policy: consumer::AckPolicy::None,
        inactive_threshold: Duration::from_secs(60),
        ..Default::default()
    }
}

impl Bench {
    pub(crate) async fn raw_consume(
        &self,
        js: &jetstream::Context,
        stream: &str,
        name: &str,
        n: usize,
        start_seq: u64,
    ) -> Duration {
        let elapsed = deadline("raw consume", async {
            let start = Instant::now();
            let consumer: consumer::PullConsumer = js
                .create_consumer_on_stream(
                    raw_consumer_config(name, format!("{stream}.>"), start_seq),
                    stream,
                )
                .await
                .expect("raw create consumer");
            let mut messages = consumer
                .stream()
                .heartbeat(HEARTBEAT)
                .expires(EXPIRES)
                .max_messages_per_batch(BATCH)
                .messages()
                .await
                .expect("raw messages");
            for _ in 0..n {
                let message = messages.next().await.expect("open").expect("message");
                // A resuming consumer must know each message's stream sequence.
                let info = message.info().expect("JetStream metadata");
                black_box((info.stream_sequence, message.payload.len()));
            }
            start.elapsed()
        })
        .await;
        let _ = js.delete_consumer_from_stream(name, stream).await;
        elapsed
    }

    async fn herald_consume<R: Reporter>(
        &self,
        c: &Coordinator<R>,
        durable: &str,
        n: usize,
    ) -> Duration {
        let policy = CheckpointPolicy {
            every: env_usize("HERALD_BENCH_CHECKPOINT_EVERY", 100) as u64,
            ..CheckpointPolicy::default()
        };
        let (elapsed, sub) = deadline("herald consume", async {
            let start = Instant::now();
            let mut sub = subscribe_all(c, durable, StartPosition::All)
                .checkpoint_policy(policy)
                .await
                .expect("herald subscribe");
            for _ in 0..n {
                let message = sub.next().await.expect("open").expect("message");
                black_box((message.seq, message.payload.len()));
                message.ack();
            }
            (start.elapsed(), sub)
        })
        .await;
        sub.close().await;
        elapsed
    }

    pub(crate) async fn consume(&self, cfg: &Config) {
        let n = cfg.n;
        let stream = "CONSUME";
        println!(
            "# consume: a backlog of N={n}; {} rounds, each runs every variant in a rotated order; pull consumers with AckPolicy::None, {}s heartbeat, {BATCH}-message batches; raw reads each message's stream sequence, herald acks each message",
            cfg.rounds,
            HEARTBEAT.as_secs()
        );
        self.fresh_stream(stream).await;
        self.fill(stream, n).await;

        let variants = consume_variants();
        // The raw consumer gets a connection of its own, made with the coordinators' (not the
        // one that filled the stream), so both sides start from the same kind of connection.
        let (_raw_client, raw_js) = raw_connect(&self.url).await;
        let mut coordinators = Vec::new();
        for v in &variants {
            coordinators.push(match v {
                Variant::Raw => None,
                _ => Some(ConsumeCoordinator::connect(*v, &self.url, stream).await),
            });
        }
        // Warm-up, with allocations counted (untimed).
        let warm = (n / 10).max(1);
        let mut allocs_line = Vec::new();
        for (i, v) in variants.iter().enumerate() {
            let name = format!("warm-{i}");
            let before = support::alloc_count();
            let elapsed = match &coordinators[i] {
                None => {
                    support::counting(true);
                    let e = self.raw_consume(&raw_js, stream, &name, warm, 1).await;
                    support::counting(false);
                    e
                }
                Some(c) => {
                    support::counting(true);
                    let e = c.consume(self, &name, warm).await;
                    support::counting(false);
                    e
                }
            };
            let allocs = support::alloc_count() - before;
            allocs_line.push(format!(
                "{} {} msg/s {:.1} allocs/msg",
                v.name(),
                k(rate(warm, elapsed)),
                allocs as f64 / warm as f64
            ));
        }
        println!(
            "#   warm-up ({warm}, allocation counting on): {}",
            allocs_line.join("; ")
        );

        let mut runs: Vec<Runs> = (0..variants.len()).map(|_| Runs::default()).collect();
        for round in 0..cfg.rounds {
            for j in 0..variants.len() {
                let i = (j + round) % variants.len();
                let name = format!("r{round}-{i}");
                let run = match &coordinators[i] {
                    None => timed(self.raw_consume(&raw_js, stream, &name, n, 1)).await,
                    Some(c) => timed(c.consume(self, &name, n)).await,
                };
                runs[i].add(n, run);
            }
        }
        for (i, v) in variants.iter().enumerate().skip(1) {
            let name = format!("consume{}", v.suffix());
            report_ratio(&name, &runs[0].rates, &runs[i].rates, "msg/s");
            report_cpu(&name, &runs[0], &runs[i]);
        }
        for c in coordinators.into_iter().flatten() {
            c.shutdown().await;
        }
        self.delete_stream(stream).await;
    }
}

// ---- consume variants ------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Raw,
    Null,
    Otel,
    Log,
}

/// Every variant, or those `HERALD_BENCH_CONSUME` names (`raw,null,otel,log`; raw is always
/// first: it is the reference).
fn consume_variants() -> Vec<Variant> {
    let all = [Variant::Raw, Variant::Null, Variant::Otel, Variant::Log];
    match std::env::var("HERALD_BENCH_CONSUME") {
        Ok(names) => all
            .into_iter()
            .filter(|v| *v == Variant::Raw || names.split(',').any(|n| v.key() == n.trim()))
            .collect(),
        Err(_) => all.to_vec(),
    }
}

impl Variant {
    fn key(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::Null => "null",
            Variant::Otel => "otel",
            Variant::Log => "log",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::Null => "herald(NullReporter)",
            Variant::Otel => "herald(OtelReporter, every kind)",
            Variant::Log => "herald(LogReporter, info)",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Variant::Raw => "_raw",
            Variant::Null => "",
            Variant::Otel => "_otel_every_kind",
            Variant::Log => "_log_info",
        }
    }
}

/// The OpenTelemetry SDK as an application would run it: a meter provider with a periodic
/// reader and a logger provider with a batch processor, both exporting in memory.
struct OtelSdk {
    meters: SdkMeterProvider,
    logs: SdkLoggerProvider,
}

impl OtelSdk {
    fn new() -> Self {
        Self {
            meters: SdkMeterProvider::builder()
                .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
                .build(),
            logs: SdkLoggerProvider::builder()
                .with_batch_exporter(InMemoryLogExporter::default())
                .build(),
        }
    }

    /// A reporter interested in every kind the reporter handles, per-message kinds included.
    fn reporter(&self) -> OtelReporter {
        OtelReporter::new(&self.meters.meter_with_scope(herald_otel::scope()))
            .with_logger(self.logs.logger_with_scope(herald_otel::scope()))
            .per_message(true)
    }

    fn shutdown(&self) {
        let _ = self.meters.shutdown();
        let _ = self.logs.shutdown();
    }
}

/// A coordinator for one consume variant.
enum ConsumeCoordinator {
    Null(Coordinator<NullReporter>),
    Otel(Coordinator<OtelReporter>, OtelSdk),
    Log(Coordinator<LogReporter>),
}

impl ConsumeCoordinator {
    async fn connect(variant: Variant, url: &str, stream: &str) -> Self {
        match variant {
            Variant::Null => Self::Null(herald(url, stream, NullReporter).await),
            Variant::Otel => {
                let sdk = OtelSdk::new();
                Self::Otel(herald(url, stream, sdk.reporter()).await, sdk)
            }
            // The subscriber `main` installed logs at info: per-message kinds are not built.
            Variant::Log => Self::Log(herald(url, stream, LogReporter::new()).await),
            Variant::Raw => unreachable!("the raw variant has no coordinator"),
        }
    }

    async fn consume(&self, bench: &Bench, durable: &str, n: usize) -> Duration {
        match self {
            Self::Null(c) => bench.herald_consume(c, durable, n).await,
            Self::Otel(c, _) => bench.herald_consume(c, durable, n).await,
            Self::Log(c) => bench.herald_consume(c, durable, n).await,
        }
    }

    async fn shutdown(self) {
        match self {
            Self::Null(c) => c.shutdown().await,
            Self::Otel(c, sdk) => {
                c.shutdown().await;
                sdk.shutdown();
            }
            Self::Log(c) => c.shutdown().await,
        }
    }
}
