//! Timing a run, its process CPU, and the lines the benchmark prints.

use std::time::Duration;

use crate::support::{k, ks, median, rate};

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Wall-clock and process CPU time (every thread: the application's, the client's, the
/// reporter's) of a run.
pub(crate) async fn timed(
    run: impl std::future::Future<Output = Duration>,
) -> (Duration, Duration) {
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
pub(crate) struct Runs {
    pub(crate) rates: Vec<f64>,
    cpu_us_per_msg: Vec<f64>,
}

impl Runs {
    pub(crate) fn add(&mut self, n: usize, (elapsed, cpu): (Duration, Duration)) {
        self.rates.push(rate(n, elapsed));
        self.cpu_us_per_msg.push(cpu.as_secs_f64() * 1e6 / n as f64);
    }
}

/// Prints the process CPU per message of both sides (information; no target).
pub(crate) fn report_cpu(name: &str, raw: &Runs, herald: &Runs) {
    let (r, h) = (median(&raw.cpu_us_per_msg), median(&herald.cpu_us_per_msg));
    println!(
        "#   {name} process CPU per message (all threads, medians): raw {r:.2} us, herald {h:.2} us ({:+.2} us, x{:.2})",
        h - r,
        h / r
    );
}

/// Prints the runs and the ratio of the medians.
pub(crate) fn report_ratio(name: &str, raw: &[f64], herald: &[f64], unit: &str) {
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

pub(crate) fn rounded(values: &[f64]) -> Vec<i64> {
    values.iter().map(|v| v.round() as i64).collect()
}
