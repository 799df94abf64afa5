//! The rows that have targets, in interleaved rounds, and their ratios.

use std::time::Duration;

use herald::NullReporter;
use herald_log::LogReporter;

use crate::call_site::{Baseline, Case, Emit};
use crate::channels::{
    channel_reporter, crossbeam_array, crossbeam_array_clone, crossbeam_channel, Watch,
};
use crate::otel;
use crate::support::median;

/// How many iterations make `case` run for about `target`.
fn calibrate(case: &mut dyn Case, target: Duration) -> u64 {
    let mut iters = 1_000u64;
    loop {
        let took = case.run(iters);
        if took >= target / 4 || iters >= 1 << 32 {
            let per = took.as_secs_f64() / iters as f64;
            return ((target.as_secs_f64() / per) as u64).max(1_000);
        }
        iters *= 4;
    }
}

/// Runs the rows with targets in interleaved rounds (the order rotates every round) and prints
/// the medians and ratios.
pub(crate) fn side_by_side(rounds: usize) {
    let mut baseline = Baseline { seq: 0 };
    let mut null = Emit::new(NullReporter);
    let mut channel = channel_reporter(true);
    let mut crossbeam = crossbeam_array(true);
    let mut crossbeam_clone = crossbeam_array_clone(true);
    let mut channel_alone = channel_reporter(false);
    let mut crossbeam_alone = crossbeam_array(false);
    let mut crossbeam_clone_alone = crossbeam_array_clone(false);
    let mut bare = crossbeam_channel(true);
    let mut bare_alone = crossbeam_channel(false);
    let mut watch_read = Watch::new(true);
    let mut watch_idle = Watch::new(false);
    let (provider, reporter) = otel();
    let mut otel = Emit::new(reporter);
    let mut log_off = Emit::new(LogReporter::new());
    {
        let mut cases: Vec<(&str, &mut dyn Case)> = vec![
            ("baseline_empty_loop", &mut baseline),
            ("null_reporter", &mut null),
            ("channel_reporter_drained", &mut channel),
            ("crossbeam_array_try_send_drained", &mut crossbeam),
            ("crossbeam_channel_try_send_drained", &mut bare),
            ("crossbeam_channel_try_send_uncontended", &mut bare_alone),
            (
                "crossbeam_array_try_send_clone_drained",
                &mut crossbeam_clone,
            ),
            ("channel_reporter_uncontended", &mut channel_alone),
            ("crossbeam_array_try_send_uncontended", &mut crossbeam_alone),
            (
                "crossbeam_array_try_send_clone_uncontended",
                &mut crossbeam_clone_alone,
            ),
            ("tokio_watch_send_read", &mut watch_read),
            ("tokio_watch_send_idle_receiver", &mut watch_idle),
            ("otel_reporter_sdk_meter", &mut otel),
            ("log_reporter_filtered_off", &mut log_off),
        ];
        let iters: Vec<u64> = cases
            .iter_mut()
            .map(|(_, case)| calibrate(*case, Duration::from_millis(10)))
            .collect();
        let mut ns: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        for round in 0..rounds {
            for j in 0..cases.len() {
                let i = (j + round) % cases.len();
                let took = cases[i].1.run(iters[i]);
                ns[i].push(took.as_secs_f64() * 1e9 / iters[i] as f64);
            }
        }
        let med: Vec<f64> = ns.iter().map(|v| median(v)).collect();
        let at = |name: &str| {
            let i = cases
                .iter()
                .position(|(n, _)| *n == name)
                .expect("a side-by-side row");
            med[i]
        };
        println!();
        println!("# side by side: {rounds} interleaved rounds of ~10 ms per row, medians (ns per event):");
        for (i, (name, _)) in cases.iter().enumerate() {
            println!("#   {name:34} {:8.2} ns", med[i]);
        }
        let comparisons = [
            (
                "reporter_null",
                "null_reporter",
                "baseline_empty_loop",
                "target 1.00: indistinguishable",
            ),
            (
                "reporter_channel",
                "channel_reporter_drained",
                "crossbeam_channel_try_send_drained",
                "target at most 1.20 (a reader thread busy on the channel)",
            ),
            (
                "reporter_channel_uncontended",
                "channel_reporter_uncontended",
                "crossbeam_channel_try_send_uncontended",
                "target at most 1.20 (nobody else on the channel: the reporter's own work)",
            ),
            (
                "reporter_channel_vs_watch",
                "channel_reporter_drained",
                "tokio_watch_send_read",
                "target below 1.00 (both with a reader thread busy)",
            ),
            (
                "reporter_channel_vs_watch_uncontended",
                "channel_reporter_uncontended",
                "tokio_watch_send_idle_receiver",
                "target below 1.00 (both with nobody reading meanwhile)",
            ),
            (
                "clone_drained",
                "crossbeam_array_try_send_clone_drained",
                "crossbeam_array_try_send_drained",
                "attribution: sending a clone, as report(&event) must",
            ),
            (
                "clone_uncontended",
                "crossbeam_array_try_send_clone_uncontended",
                "crossbeam_array_try_send_uncontended",
                "attribution: sending a clone, as report(&event) must",
            ),
        ];
        for (name, a, b, note) in comparisons {
            println!("#   {name}: {note}");
            println!("ratio {name} {a}/{b} = {:.2}", at(a) / at(b));
        }
    }
    channel.finish();
    crossbeam.finish();
    crossbeam_clone.finish();
    channel_alone.finish();
    crossbeam_alone.finish();
    crossbeam_clone_alone.finish();
    bare.finish();
    bare_alone.finish();
    watch_read.finish();
    watch_idle.finish();
    let _ = provider.shutdown();
}
