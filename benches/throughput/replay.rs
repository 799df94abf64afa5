//! Replay: a subscriber resuming at checkpoint 1 into a large backlog, in a child process per
//! run so that its peak RSS is its own.

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald::testing::RecordingReporter;
use herald::{
    Checkpoint, CheckpointKey, CheckpointStore, EventKind, MemoryCheckpointStore, StartPosition,
};

use crate::measure::{mib, report_ratio};
use crate::support::{env_usize, k, median, proc_status_kib, rate, subscribe_all};
use crate::{deadline, herald, raw_connect, raw_first, runtime, Bench, Config};

impl Bench {
    pub(crate) async fn replay(&self, cfg: &Config) {
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
pub(crate) fn replay_child() {
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
    // Records every kind but the per-message ones.
    let recorder = RecordingReporter::new();
    let c = herald(url, stream, recorder.clone()).await;
    let store = MemoryCheckpointStore::new();
    let key = CheckpointKey {
        stream: stream.into(),
        durable: "replay".into(),
        filter: format!("{stream}.>").into(),
    };
    store
        .save(&key, Checkpoint::new(1, None))
        .await
        .expect("save checkpoint");
    let baseline = proc_status_kib("VmRSS");
    let elapsed = deadline("herald replay", async {
        let start = Instant::now();
        let mut sub = subscribe_all(&c, "replay", StartPosition::LastProcessed)
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
    let kinds = recorder.kinds();
    assert!(
        kinds.contains(&EventKind::ReplayStarted) && kinds.contains(&EventKind::ReplayCompleted),
        "the replay was reported: {kinds:?}"
    );
    c.shutdown().await;
    (elapsed, baseline)
}
