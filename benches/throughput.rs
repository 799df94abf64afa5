//! Herald side by side with raw async-nats, against one nats-server this benchmark starts.
//!
//! ```text
//! cargo bench --bench throughput                 # everything: 1.5 to 5 minutes here
//! cargo bench --bench throughput -- consume      # only the phases whose name contains "consume"
//! HERALD_BENCH_N=50000 cargo bench --bench throughput -- publish
//! ```
//!
//! Phases: `publish_awaited`, `publish_pipelined`, `consume`, `replay`, `recovery`. Each
//! comparison alternates raw and Herald runs (the order flips every round, so drift favours
//! neither), after an untimed warm-up of each, and compares medians. Results are printed one per
//! line, in exactly these forms, for scripts (`grep -E '^(ratio|rss_mib|ms) '`):
//!
//! ```text
//! ratio <name> herald/raw = <x.xx>     rate ratio: above 1 means Herald is faster
//! rss_mib <name> = <n>
//! ms <name> = <n>
//! ```
//!
//! Every other line starts with `#` and gives the runs behind each number.
//!
//! Environment: `HERALD_BENCH_N` (messages per publish/consume run, default 200000),
//! `HERALD_BENCH_N_AWAITED` (10000), `HERALD_BENCH_REPLAY_N` (1000000), `HERALD_BENCH_ROUNDS`
//! (rounds of the cheap rows, 7), `HERALD_BENCH_ROUNDS_LONG` (rounds of the expensive rows:
//! pipelined publish and replay, 5), `HERALD_BENCH_RECOVERY_ROUNDS` (5), `NATS_SERVER_BIN`;
//! for profiling, `HERALD_BENCH_CONSUME=null,otel,log` (which Herald consume variants run),
//! `HERALD_BENCH_CHECKPOINT_EVERY` (100) and `HERALD_BENCH_NO_TRACING` (no `tracing`
//! subscriber; by default one at info writes to a sink, for the log reporter's row).
//! Run without `--bench` (as `cargo test --benches` does) it is a smoke test with tiny sizes.
//!
//! The rounds are fewer for the expensive rows (5 pairs for the pipelined publish and the 1 M
//! replay, against 7 for the others) to keep the whole run within a few minutes; say more with
//! the variables above. Results and what limits them: BENCHMARKS.md.
//!
//! Internal modes of the same binary: `HERALD_BENCH_PHASE=replay` (the replay subscriber, in a
//! child process so its peak RSS is its own) and `HERALD_BENCH_PHASE=zero-cost` (the loop
//! `scripts/zero-cost` measures).

mod support;

use std::collections::VecDeque;
use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt as _;
use herald::reporter::{from_fn, ReporterExt};
use herald::{
    CheckpointKey, CheckpointPolicy, CheckpointStore, Coordinator, CoordinatorEvent, EventKind,
    MemoryCheckpointStore, NullReporter, Reporter, StartPosition,
};
use herald_log::LogReporter;
use herald_otel::OtelReporter;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use parking_lot::Mutex;
use tokio::runtime::Runtime;

use support::nats_server::NatsServer;
use support::{env_usize, k, ks, median, proc_status_kib, rate};

#[global_allocator]
static ALLOC: support::CountingAlloc = support::CountingAlloc;

const PAYLOAD_LEN: usize = 128;
/// Acknowledgements in flight in the raw pipelined publish: the same window as
/// `Coordinator::publish_batch` on NATS.
const WINDOW: usize = 512;
/// The pull settings of a Herald subscription (src/backend/nats.rs), given to the raw consumer.
const HEARTBEAT: Duration = Duration::from_secs(5);
const EXPIRES: Duration = Duration::from_secs(30);
const BATCH: usize = 500;
/// No single run may take longer than this; a stuck run fails the benchmark instead of hanging.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

struct Config {
    n: usize,
    n_awaited: usize,
    n_replay: usize,
    rounds: usize,
    rounds_long: usize,
    recovery_rounds: usize,
}

impl Config {
    fn from_env(smoke: bool) -> Self {
        let (n, n_awaited, n_replay, rounds, rounds_long, recovery) = if smoke {
            (2_000, 200, 5_000, 1, 1, 1)
        } else {
            (200_000, 10_000, 1_000_000, 7, 5, 5)
        };
        Self {
            n: env_usize("HERALD_BENCH_N", n),
            n_awaited: env_usize("HERALD_BENCH_N_AWAITED", n_awaited),
            n_replay: env_usize("HERALD_BENCH_REPLAY_N", n_replay),
            rounds: env_usize("HERALD_BENCH_ROUNDS", rounds).max(1),
            rounds_long: env_usize("HERALD_BENCH_ROUNDS_LONG", rounds_long).max(1),
            recovery_rounds: env_usize("HERALD_BENCH_RECOVERY_ROUNDS", recovery).max(1),
        }
    }
}

fn main() {
    match std::env::var("HERALD_BENCH_PHASE").as_deref() {
        Ok("zero-cost") => return support::zero_cost::main(),
        Ok("replay") => return replay_child(),
        Ok(other) => panic!("HERALD_BENCH_PHASE={other}: expected zero-cost or replay"),
        Err(_) => {}
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let wants =
        |phase: &str| filters.is_empty() || filters.iter().any(|f| phase.contains(f.as_str()));
    let cfg = Config::from_env(smoke);

    // The log reporter row needs a subscriber at info; every row runs under it, raw included,
    // as they would in an application that logs.
    if std::env::var_os("HERALD_BENCH_NO_TRACING").is_none() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .init();
    }

    print_header(&cfg, smoke);
    let rt = runtime();
    let started = Instant::now();
    if wants("publish_awaited") || wants("publish_pipelined") || wants("consume") || wants("replay")
    {
        let server = NatsServer::start();
        let bench = rt.block_on(Bench::connect(&server));
        if wants("publish_awaited") {
            rt.block_on(bench.publish_awaited(&cfg));
        }
        if wants("publish_pipelined") {
            rt.block_on(bench.publish_pipelined(&cfg));
        }
        if wants("consume") {
            rt.block_on(bench.consume(&cfg));
        }
        if wants("replay") {
            rt.block_on(bench.replay(&cfg));
        }
    }
    if wants("recovery") {
        recovery(&rt, &cfg);
    }
    println!("# done in {:.0} s", started.elapsed().as_secs_f64());
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn print_header(cfg: &Config, smoke: bool) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let server = support::nats_server::nats_server_bin();
    let version = Command::new(&server)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "# herald throughput benchmark{}",
        if smoke {
            " (smoke test: run with `cargo bench` for real numbers)"
        } else {
            ""
        }
    );
    println!(
        "# machine: {cpus} vCPU {model}, {mem_gib:.0} GiB; {version} at {}",
        server.display()
    );
    println!(
        "# sizes: N={} (pipelined publish, consume), N_awaited={}, replay={}; {PAYLOAD_LEN}-byte payloads",
        cfg.n, cfg.n_awaited, cfg.n_replay
    );
    println!(
        "# rounds: {} (publish_awaited, consume), {} (publish_pipelined, replay), {} (recovery); medians; ratios are rates, herald/raw",
        cfg.rounds, cfg.rounds_long, cfg.recovery_rounds
    );
}

/// The stream a coordinator creates (src/backend/nats.rs, default builder settings), for the
/// raw side: the same storage, retention and limits.
fn stream_config(name: &str) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        retention: stream::RetentionPolicy::Limits,
        max_age: Duration::from_secs(3600),
        max_messages: -1,
        max_bytes: -1,
        storage: stream::StorageType::File,
        num_replicas: 1,
        duplicate_window: Duration::from_secs(120),
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

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

async fn raw_connect(url: &str) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::connect(url).await.expect("raw connect");
    let js = jetstream::new(client.clone());
    (client, js)
}

async fn herald<R: Reporter>(url: &str, stream: &str, reporter: R) -> Coordinator<R> {
    Coordinator::builder()
        .nats(url)
        .stream(stream)
        .reporter(reporter)
        .connect()
        .await
        .expect("herald connect")
}

/// Runs `f` with the deadline every run has.
async fn deadline<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(RUN_DEADLINE, f).await {
        Ok(t) => t,
        Err(_) => panic!("{what} did not finish within {RUN_DEADLINE:?}"),
    }
}

/// The order of round `i`: raw first in even rounds, Herald first in odd ones.
fn raw_first(round: usize) -> bool {
    round.is_multiple_of(2)
}

struct Bench {
    url: String,
    js: jetstream::Context,
    payload: Bytes,
}

impl Bench {
    async fn connect(server: &NatsServer) -> Self {
        let url = server.url();
        let (_client, js) = raw_connect(&url).await;
        Self {
            url,
            js,
            payload: Bytes::from(vec![b'x'; PAYLOAD_LEN]),
        }
    }

    async fn fresh_stream(&self, name: &str) {
        let _ = self.js.delete_stream(name).await;
        self.js
            .create_stream(stream_config(name))
            .await
            .expect("create stream");
    }

    async fn delete_stream(&self, name: &str) {
        let _ = self.js.delete_stream(name).await;
    }

    // ---- publish ------------------------------------------------------------------------

    async fn raw_publish(&self, stream: &str, n: usize, pipelined: bool) -> Duration {
        self.fresh_stream(stream).await;
        let subject = async_nats::Subject::from(format!("{stream}.bench.k"));
        let js = &self.js;
        let elapsed = deadline("raw publish", async {
            let start = Instant::now();
            if pipelined {
                let mut in_flight = VecDeque::with_capacity(WINDOW);
                for _ in 0..n {
                    if in_flight.len() == WINDOW {
                        let ack: jetstream::context::PublishAckFuture =
                            in_flight.pop_front().expect("window is full");
                        black_box(ack.await.expect("raw ack").sequence);
                    }
                    let sent = js
                        .publish(subject.clone(), self.payload.clone())
                        .await
                        .expect("raw publish");
                    in_flight.push_back(sent);
                }
                for ack in in_flight {
                    black_box(ack.await.expect("raw ack").sequence);
                }
            } else {
                for _ in 0..n {
                    let ack = js
                        .publish(subject.clone(), self.payload.clone())
                        .await
                        .expect("raw publish")
                        .await
                        .expect("raw ack");
                    black_box(ack.sequence);
                }
            }
            start.elapsed()
        })
        .await;
        self.delete_stream(stream).await;
        elapsed
    }

    async fn herald_publish(&self, stream: &str, n: usize, batched: bool) -> Duration {
        self.delete_stream(stream).await;
        let c = herald(&self.url, stream, NullReporter).await;
        let elapsed = deadline("herald publish", async {
            let start = Instant::now();
            if batched {
                let seqs = c
                    .publish_batch((0..n).map(|_| ("bench.k", self.payload.clone())))
                    .await
                    .expect("herald publish_batch");
                assert_eq!(seqs.len(), n);
            } else {
                for _ in 0..n {
                    black_box(
                        c.publish("bench.k", self.payload.clone())
                            .await
                            .expect("herald publish"),
                    );
                }
            }
            start.elapsed()
        })
        .await;
        c.shutdown().await;
        self.delete_stream(stream).await;
        elapsed
    }

    async fn publish_awaited(&self, cfg: &Config) {
        self.publish_row("publish_awaited", cfg.n_awaited, cfg.rounds, false)
            .await;
    }

    async fn publish_pipelined(&self, cfg: &Config) {
        self.publish_row("publish_pipelined", cfg.n, cfg.rounds_long, true)
            .await;
    }

    async fn publish_row(&self, name: &str, n: usize, rounds: usize, pipelined: bool) {
        let what = if pipelined {
            format!("raw: {WINDOW} acks in flight; herald: one publish_batch of {n}")
        } else {
            "both await each ack before the next publish".to_string()
        };
        println!("# {name}: N={n}, {rounds} alternating pairs; {what}");
        let warm = (n / 10).max(1);
        let raw_warm = self.raw_publish("WARM_RAW", warm, pipelined).await;
        let herald_warm = self.herald_publish("WARM_HERALD", warm, pipelined).await;
        println!(
            "#   warm-up ({warm}): raw {} msg/s, herald {} msg/s",
            k(rate(warm, raw_warm)),
            k(rate(warm, herald_warm))
        );
        let (mut raw, mut her) = (Runs::default(), Runs::default());
        for round in 0..rounds {
            let raw_stream = format!("P_RAW_{round}");
            let herald_stream = format!("P_HERALD_{round}");
            let order = if raw_first(round) {
                [true, false]
            } else {
                [false, true]
            };
            for is_raw in order {
                if is_raw {
                    raw.add(n, timed(self.raw_publish(&raw_stream, n, pipelined)).await);
                } else {
                    her.add(
                        n,
                        timed(self.herald_publish(&herald_stream, n, pipelined)).await,
                    );
                }
            }
        }
        report_ratio(name, &raw.rates, &her.rates, "msg/s");
        report_cpu(name, &raw, &her);
    }

    // ---- consume ------------------------------------------------------------------------

    async fn raw_consume(
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
            let mut sub = c
                .subscribe(">")
                .durable(durable)
                .start(StartPosition::All)
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

    async fn consume(&self, cfg: &Config) {
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

    /// Publishes `n` messages to `stream` as fast as the raw client can (untimed setup).
    async fn fill(&self, stream: &str, n: usize) {
        let subject = async_nats::Subject::from(format!("{stream}.bench.k"));
        let start = Instant::now();
        let mut in_flight = VecDeque::with_capacity(WINDOW);
        for _ in 0..n {
            if in_flight.len() == WINDOW {
                let ack: jetstream::context::PublishAckFuture =
                    in_flight.pop_front().expect("window is full");
                ack.await.expect("fill ack");
            }
            in_flight.push_back(
                self.js
                    .publish(subject.clone(), self.payload.clone())
                    .await
                    .expect("fill publish"),
            );
        }
        for ack in in_flight {
            ack.await.expect("fill ack");
        }
        println!(
            "#   filled {stream} with {n} messages in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }

    // ---- replay -------------------------------------------------------------------------

    async fn replay(&self, cfg: &Config) {
        let n = cfg.n_replay;
        let stream = "REPLAY";
        println!(
            "# replay: a subscriber resuming at checkpoint 1 into a backlog of {n} events, in a child process each (peak RSS = VmHWM, baseline = VmRSS after connecting); {} alternating pairs",
            cfg.rounds_long
        );
        self.fresh_stream(stream).await;
        self.fill(stream, n + 1).await;
        let (mut raw, mut her) = (Vec::new(), Vec::new());
        for round in 0..cfg.rounds_long {
            let order = if raw_first(round) {
                ["raw", "herald"]
            } else {
                ["herald", "raw"]
            };
            for side in order {
                let result = run_replay_child(&self.url, stream, side, n);
                println!(
                    "#   {side:6} {} events/s, baseline {:.1} MiB, peak {:.1} MiB (+{:.1} MiB)",
                    k(rate(n, result.elapsed)),
                    mib(result.baseline_kib),
                    mib(result.hwm_kib),
                    mib(result.hwm_kib.saturating_sub(result.baseline_kib)),
                );
                if side == "raw" { &mut raw } else { &mut her }.push(result);
            }
        }
        let rates = |v: &[ReplayResult]| v.iter().map(|r| rate(n, r.elapsed)).collect::<Vec<_>>();
        report_ratio("replay", &rates(&raw), &rates(&her), "events/s");
        let above = |v: &[ReplayResult]| {
            median(
                &v.iter()
                    .map(|r| mib(r.hwm_kib.saturating_sub(r.baseline_kib)))
                    .collect::<Vec<_>>(),
            )
        };
        println!(
            "rss_mib replay_peak_above_baseline_herald = {:.1}",
            above(&her)
        );
        println!(
            "rss_mib replay_peak_above_baseline_raw = {:.1}",
            above(&raw)
        );
        for (side, runs) in [("herald", &her), ("raw", &raw)] {
            let of = |f: fn(&ReplayResult) -> u64| {
                median(&runs.iter().map(|r| mib(f(r))).collect::<Vec<_>>())
            };
            println!(
                "rss_mib replay_baseline_{side} = {:.1}",
                of(|r| r.baseline_kib)
            );
            println!("rss_mib replay_peak_{side} = {:.1}", of(|r| r.hwm_kib));
        }
        self.delete_stream(stream).await;
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Wall-clock and process CPU time (every thread: the application's, the client's, the
/// reporter's) of a run.
async fn timed(run: impl std::future::Future<Output = Duration>) -> (Duration, Duration) {
    let cpu = process_cpu();
    let elapsed = run.await;
    (elapsed, process_cpu().saturating_sub(cpu))
}

/// The CPU time this process's live threads have used, in nanoseconds: the sum of the first
/// field of `/proc/self/task/*/schedstat` (threads that exited between two readings are not
/// counted; the runtime's threads live for the whole run).
fn process_cpu() -> Duration {
    let tasks = std::fs::read_dir("/proc/self/task").into_iter().flatten();
    let ns: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// The rates and CPU costs of one side's runs.
#[derive(Default)]
struct Runs {
    rates: Vec<f64>,
    cpu_us_per_msg: Vec<f64>,
}

impl Runs {
    fn add(&mut self, n: usize, (elapsed, cpu): (Duration, Duration)) {
        self.rates.push(rate(n, elapsed));
        self.cpu_us_per_msg.push(cpu.as_secs_f64() * 1e6 / n as f64);
    }
}

/// Prints the process CPU per message of both sides (information; no target).
fn report_cpu(name: &str, raw: &Runs, herald: &Runs) {
    let (r, h) = (median(&raw.cpu_us_per_msg), median(&herald.cpu_us_per_msg));
    println!(
        "#   {name} process CPU per message (all threads, medians): raw {r:.2} us, herald {h:.2} us ({:+.2} us, x{:.2})",
        h - r,
        h / r
    );
}

/// Prints the runs and the ratio of the medians.
fn report_ratio(name: &str, raw: &[f64], herald: &[f64], unit: &str) {
    let (r, h) = (median(raw), median(herald));
    let pairs: Vec<String> = raw
        .iter()
        .zip(herald)
        .map(|(r, h)| format!("{:.2}", h / r))
        .collect();
    println!("#   {name} raw    {unit}: {}  median {}", ks(raw), k(r));
    println!("#   {name} herald {unit}: {}  median {}", ks(herald), k(h));
    println!("#   {name} per-round ratios: {}", pairs.join(" "));
    println!("ratio {name} herald/raw = {:.2}", h / r);
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

// ---- replay child ----------------------------------------------------------------------------

struct ReplayResult {
    elapsed: Duration,
    baseline_kib: u64,
    hwm_kib: u64,
}

fn run_replay_child(url: &str, stream: &str, side: &str, n: usize) -> ReplayResult {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .env("HERALD_BENCH_PHASE", "replay")
        .env("HERALD_BENCH_URL", url)
        .env("HERALD_BENCH_STREAM", stream)
        .env("HERALD_BENCH_SIDE", side)
        .env("HERALD_BENCH_REPLAY_N", n.to_string())
        .output()
        .expect("run the replay child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "replay child ({side}) failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("replay-result "))
        .unwrap_or_else(|| panic!("replay child ({side}) printed no result:\n{stdout}"));
    let field = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    ReplayResult {
        elapsed: Duration::from_secs_f64(field("secs")),
        baseline_kib: field("baseline_kib") as u64,
        hwm_kib: field("hwm_kib") as u64,
    }
}

/// The replay subscriber (child process): resumes at checkpoint 1 and consumes `n` events.
fn replay_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let (url, stream, side) = (
        var("HERALD_BENCH_URL"),
        var("HERALD_BENCH_STREAM"),
        var("HERALD_BENCH_SIDE"),
    );
    let n = env_usize("HERALD_BENCH_REPLAY_N", 1_000_000);
    let rt = runtime();
    let (elapsed, baseline_kib) = rt.block_on(async {
        match side.as_str() {
            "raw" => {
                let (_client, js) = raw_connect(&url).await;
                let bench = Bench {
                    url: url.clone(),
                    js,
                    payload: Bytes::new(),
                };
                let baseline = proc_status_kib("VmRSS");
                (
                    bench
                        .raw_consume(&bench.js, &stream, "replay-raw", n, 2)
                        .await,
                    baseline,
                )
            }
            "herald" => replay_herald(&url, &stream, n).await,
            other => panic!("HERALD_BENCH_SIDE={other}"),
        }
    });
    println!(
        "replay-result side={side} n={n} secs={} baseline_kib={baseline_kib} hwm_kib={}",
        elapsed.as_secs_f64(),
        proc_status_kib("VmHWM")
    );
}

async fn replay_herald(url: &str, stream: &str, n: usize) -> (Duration, u64) {
    let events: Arc<Mutex<Vec<CoordinatorEvent>>> = Arc::default();
    let seen = events.clone();
    let reporter = from_fn(move |e: &CoordinatorEvent| seen.lock().push(e.clone()))
        .only(|kind| !kind.is_per_message());
    let c = herald(url, stream, reporter).await;
    let store = MemoryCheckpointStore::new();
    let key = CheckpointKey {
        stream: stream.into(),
        durable: "replay".into(),
        filter: format!("{stream}.>").into(),
    };
    store.save(&key, 1).await.expect("save checkpoint");
    let baseline = proc_status_kib("VmRSS");
    let elapsed = deadline("herald replay", async {
        let start = Instant::now();
        let mut sub = c
            .subscribe(">")
            .durable("replay")
            .start(StartPosition::LastProcessed)
            .checkpoint_store(store)
            .await
            .expect("herald subscribe");
        let mut last = 0;
        for _ in 0..n {
            let message = sub.next().await.expect("open").expect("message");
            last = message.seq;
            message.ack();
        }
        let elapsed = start.elapsed();
        assert_eq!(last, n as u64 + 1, "the replay ends at the last event");
        sub.close().await;
        elapsed
    })
    .await;
    let kinds: Vec<EventKind> = events.lock().iter().map(CoordinatorEvent::kind).collect();
    assert!(
        kinds.contains(&EventKind::ReplayStarted) && kinds.contains(&EventKind::ReplayCompleted),
        "the replay was reported: {kinds:?}"
    );
    c.shutdown().await;
    (elapsed, baseline)
}

// ---- recovery --------------------------------------------------------------------------------

// ---- recovery --------------------------------------------------------------------------------

/// The coordinator's non-per-message events, with the instant each was reported.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<(Instant, EventKind)>>>);

impl Timeline {
    fn reporter(&self) -> impl Reporter {
        let events = self.0.clone();
        from_fn(move |e: &CoordinatorEvent| events.lock().push((Instant::now(), e.kind())))
            .only(|kind| !kind.is_per_message())
    }

    fn since(&self, after: Instant) -> Vec<(Instant, EventKind)> {
        self.0
            .lock()
            .iter()
            .copied()
            .filter(|(at, _)| *at >= after)
            .collect()
    }

    /// Waits (polling every millisecond; the instant returned is the one the reporter recorded)
    /// for the first event of `kind` reported at or after `after`.
    fn wait_for(&self, kind: EventKind, after: Instant, limit: Duration) -> Option<Instant> {
        let give_up = Instant::now() + limit;
        while Instant::now() < give_up {
            if let Some((at, _)) = self.since(after).into_iter().find(|(_, k)| *k == kind) {
                return Some(at);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }
}

/// `kind@+ms` for each event after `from`, relative to `zero`.
fn describe(events: &[(Instant, EventKind)], zero: Instant) -> String {
    events
        .iter()
        .map(|(at, kind)| {
            let ms = if *at >= zero {
                at.duration_since(zero).as_secs_f64() * 1e3
            } else {
                -(zero.duration_since(*at).as_secs_f64() * 1e3)
            };
            format!("{kind}@{ms:+.0}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

type Deliveries = tokio::sync::mpsc::UnboundedReceiver<(Instant, u64)>;

/// Waits for the delivery of stream sequence `seq`; returns when it was delivered.
async fn delivered(deliveries: &mut Deliveries, seq: u64) -> Instant {
    deadline("delivery", async {
        loop {
            let (at, got) = deliveries.recv().await.expect("the subscriber task ended");
            if got >= seq {
                return at;
            }
        }
    })
    .await
}

/// Publishes through the coordinator and waits until the subscription delivered it.
async fn steady<R: Reporter>(c: &Coordinator<R>, deliveries: &mut Deliveries) {
    let seq = deadline("steady publish", c.publish("k", "steady"))
        .await
        .expect("publish");
    delivered(deliveries, seq).await;
}

/// The instant the port at `port` first accepts a TCP connection (polled every millisecond).
fn accept_probe(port: u16) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let give_up = Instant::now() + RUN_DEADLINE;
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Instant::now();
            }
            assert!(
                Instant::now() < give_up,
                "the restarted server never accepted"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

/// Publishes one message from a fresh raw client, retrying until the stream stores it.
async fn raw_publish_retrying(url: &str, subject: &'static str) -> u64 {
    deadline("raw publish after restart", async {
        loop {
            if let Ok(client) = async_nats::connect(url).await {
                let js = jetstream::new(client);
                if let Ok(sent) = js.publish(subject, Bytes::from_static(b"after")).await {
                    if let Ok(ack) = sent.await {
                        return ack.sequence;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

fn recovery(rt: &Runtime, cfg: &Config) {
    let heartbeat = Duration::from_secs(1);
    let rounds = cfg.recovery_rounds;
    println!(
        "# recovery: a dedicated nats-server (file storage); a coordinator with default NatsOptions and backoff, heartbeat {} s, one idle subscription; {rounds} rounds each",
        heartbeat.as_secs()
    );
    let mut server = NatsServer::start();
    let url = server.url();
    let timeline = Timeline::default();
    let (c, mut deliveries) = rt.block_on(async {
        let c = Coordinator::builder()
            .nats(url.as_str())
            .stream("RECOVER")
            .heartbeat(heartbeat)
            .reporter(timeline.reporter())
            .connect()
            .await
            .expect("herald connect");
        let mut sub = c
            .subscribe(">")
            .start(StartPosition::New)
            .await
            .expect("subscribe");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(item) = sub.next().await {
                match item {
                    Ok(message) => {
                        message.ack();
                        if tx.send((Instant::now(), message.seq)).is_err() {
                            return;
                        }
                    }
                    Err(error) if error.kind() == herald::ErrorKind::Shutdown => return,
                    Err(error) => panic!("the recovery subscription ended: {error}"),
                }
            }
        });
        (c, rx)
    });

    // A killed server restarted at once on the same port and store.
    let mut kill_ms = Vec::new();
    for round in 0..rounds {
        rt.block_on(steady(&c, &mut deliveries));
        server.kill();
        let killed = Instant::now();
        let probe = accept_probe(server.port());
        server.restart();
        let accepted = probe.join().expect("accept probe");
        let seq = rt.block_on(raw_publish_retrying(&url, "RECOVER.after"));
        let published = Instant::now();
        let at = rt.block_on(delivered(&mut deliveries, seq));
        let ms = at.duration_since(accepted).as_secs_f64() * 1e3;
        println!(
            "#   kill {round}: ms from accept: killed@{:+.0} published@{:+.0} delivered@{ms:+.0}; events: {}",
            -(accepted.duration_since(killed).as_secs_f64() * 1e3),
            published.duration_since(accepted).as_secs_f64() * 1e3,
            describe(&timeline.since(killed), accepted)
        );
        kill_ms.push(ms);
    }
    println!("#   kill runs (ms): {:?}", rounded(&kill_ms));
    println!(
        "ms recovery_killed_accept_to_delivered = {:.0}",
        median(&kill_ms)
    );

    // A frozen server (SIGSTOP): how long until HeartbeatMissed is reported.
    let mut stop_ms = Vec::new();
    let mut cont_ms = Vec::new();
    for round in 0..rounds {
        rt.block_on(steady(&c, &mut deliveries));
        // Spread the freeze over the heartbeat phase: 1 to 2 heartbeats after the last message.
        let phase = (round as f64 + 0.5) / rounds as f64;
        std::thread::sleep(heartbeat.mul_f64(1.0 + phase));
        let stopped = Instant::now();
        server.pause();
        let missed =
            timeline.wait_for(EventKind::HeartbeatMissed, stopped, Duration::from_secs(30));
        server.resume();
        let resumed = Instant::now();
        let missed = missed.expect("no HeartbeatMissed within 30 s of SIGSTOP");
        rt.block_on(steady(&c, &mut deliveries));
        let ms = missed.duration_since(stopped).as_secs_f64() * 1e3;
        cont_ms.push(resumed.elapsed().as_secs_f64() * 1e3);
        println!(
            "#   sigstop {round}: HeartbeatMissed after {ms:.0} ms ({:.2} heartbeats); SIGCONT to the next publish delivered {:.0} ms; events: {}",
            ms / heartbeat.as_secs_f64() / 1e3,
            cont_ms[round],
            describe(&timeline.since(stopped), stopped)
        );
        stop_ms.push(ms);
    }
    let stop = median(&stop_ms);
    println!("#   sigstop runs (ms): {:?}", rounded(&stop_ms));
    println!(
        "#   sigstop_to_heartbeat_missed = {:.2} heartbeats of {} ms (the design bound is 2)",
        stop / heartbeat.as_secs_f64() / 1e3,
        heartbeat.as_millis()
    );
    println!("ms recovery_sigstop_to_heartbeat_missed = {stop:.0}");
    println!("ms recovery_sigcont_to_delivered = {:.0}", median(&cont_ms));
    rt.block_on(c.shutdown());
}

fn rounded(values: &[f64]) -> Vec<i64> {
    values.iter().map(|v| v.round() as i64).collect()
}
