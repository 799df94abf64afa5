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
//! An internal mode of the same binary: `HERALD_BENCH_PHASE=replay` (the replay subscriber, in
//! a child process so its peak RSS is its own). The loop `scripts/zero-cost` measures is the
//! `zero_cost` bench target.
//!
//! Layout: this file (configuration, the shared raw and Herald set-up), `measure` (timing,
//! process CPU, the printed lines), and one module per phase: `publish`, `consume`, `replay`,
//! `recovery`.

#[path = "../support/mod.rs"]
mod support;

mod consume;
mod measure;
mod publish;
mod recovery;
mod replay;

use std::collections::VecDeque;
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use herald::{Builder, Coordinator, Reporter};
use tokio::runtime::Runtime;

use support::env_usize;
use support::nats_server::NatsServer;

#[global_allocator]
static ALLOC: support::CountingAlloc = support::CountingAlloc;

const PAYLOAD_LEN: usize = 128;
/// Acknowledgements in flight in the raw pipelined publish: the same window as
/// `Coordinator::publish_batch` on NATS.
const WINDOW: usize = 512;
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
        Ok("replay") => return replay::replay_child(),
        Ok(other) => panic!("HERALD_BENCH_PHASE={other}: expected replay"),
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
        recovery::recovery(&rt, &cfg);
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

async fn raw_connect(url: &str) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::connect(url).await.expect("raw connect");
    let js = jetstream::new(client.clone());
    (client, js)
}

/// A coordinator's builder: stream `stream` on the server at `url`, reporting to `reporter`,
/// the defaults for the rest.
fn builder<R: Reporter>(url: &str, stream: &str, reporter: R) -> Builder<R> {
    Coordinator::builder()
        .nats(url)
        .stream(stream)
        .reporter(reporter)
}

/// A coordinator with the defaults but for its stream and reporter.
async fn herald<R: Reporter>(url: &str, stream: &str, reporter: R) -> Coordinator<R> {
    builder(url, stream, reporter)
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
}
