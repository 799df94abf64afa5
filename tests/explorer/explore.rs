//! Running many schedules (on every core, under a wall-clock watchdog), minimising a failing
//! one, and printing it so it can be replayed and kept as a regression test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::check::{check, Kind, Violation};
use crate::runner::run;
use crate::schedule::{Schedule, Step};

/// A schedule that takes longer than this on the wall clock has hung (a spin the virtual
/// deadlines cannot see): the process exits with its seed.
const WALL_LIMIT: Duration = Duration::from_secs(120);

/// Runs `schedule` and checks its history; every violation found.
pub(crate) fn run_checked(schedule: &Schedule, verbose: bool) -> Vec<Violation> {
    let outcome = run(schedule, verbose);
    let mut violations = outcome.violations;
    violations.extend(check(&outcome.log, &schedule.config, &outcome.model));
    violations
}

/// One class of violation (an open bug, or an unexplained kind) over an exploration.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    pub(crate) known: bool,
    /// Schedules that showed it.
    pub(crate) count: u64,
    /// The failing schedule with the fewest steps, and what it showed.
    pub(crate) seed: u64,
    pub(crate) steps: usize,
    pub(crate) detail: String,
    pub(crate) kind: Kind,
}

/// Sorts the violations of one schedule into buckets: `(bucket name, known, index of the
/// violation)`, at most one entry per bucket.
pub(crate) type Classify = fn(&[Violation]) -> Vec<(String, bool, usize)>;

/// What an exploration found.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) runs: u64,
    pub(crate) elapsed: Duration,
    pub(crate) buckets: std::collections::BTreeMap<String, Bucket>,
    /// Every violation of every failing schedule, when asked for (`keep_all`).
    pub(crate) all: Vec<(u64, usize, Vec<Violation>)>,
}

/// Runs the schedules of `seeds` on `threads` threads.
/// Violations are sorted into buckets by `classify`; with `keep_all`, every violation is kept
/// too (memory grows with the failures).
pub(crate) fn explore(
    seeds: std::ops::Range<u64>,
    threads: usize,
    classify: Classify,
    keep_all: bool,
) -> Summary {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(seeds.start));
    let failures = Arc::new(Mutex::new(Summary::default()));
    let runs = Arc::new(AtomicU64::new(0));
    // Per worker: the seed it runs and since when (ms since `started`; u64::MAX when idle).
    let watch: Arc<Vec<(AtomicU64, AtomicU64)>> = Arc::new(
        (0..threads)
            .map(|_| (AtomicU64::new(0), AtomicU64::new(u64::MAX)))
            .collect(),
    );
    let done = Arc::new(AtomicU64::new(0));
    let watchdog = {
        let (watch, done) = (watch.clone(), done.clone());
        std::thread::spawn(move || {
            while done.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(200));
                let now = started.elapsed().as_millis() as u64;
                for (seed, since) in watch.iter() {
                    let since = since.load(Ordering::SeqCst);
                    if since != u64::MAX
                        && now.saturating_sub(since) > WALL_LIMIT.as_millis() as u64
                    {
                        eprintln!(
                            "explorer: seed {} has run for more than {WALL_LIMIT:?} of wall-clock time: a hang. Replay it with HERALD_EXPLORE_SEED={}",
                            seed.load(Ordering::SeqCst),
                            seed.load(Ordering::SeqCst)
                        );
                        std::process::exit(101);
                    }
                }
            }
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let (next, failures, runs, watch) =
                (next.clone(), failures.clone(), runs.clone(), watch.clone());
            let end = seeds.end;
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= end {
                    watch[w].1.store(u64::MAX, Ordering::SeqCst);
                    return;
                }
                watch[w].0.store(seed, Ordering::SeqCst);
                watch[w]
                    .1
                    .store(started.elapsed().as_millis() as u64, Ordering::SeqCst);
                let schedule = Schedule::generate(seed);
                let violations = match std::panic::catch_unwind(|| run_checked(&schedule, false)) {
                    Ok(violations) => violations,
                    Err(_) => vec![Violation {
                        kind: Kind::Panic,
                        detail: "the explorer itself panicked (see the output above)".into(),
                    }],
                };
                runs.fetch_add(1, Ordering::SeqCst);
                if !violations.is_empty() {
                    let steps = schedule.steps.len();
                    let sorted = classify(&violations);
                    let mut summary = failures.lock();
                    for (name, known, index) in sorted {
                        let v = &violations[index];
                        let bucket = summary.buckets.entry(name).or_insert_with(|| Bucket {
                            known,
                            count: 0,
                            seed,
                            steps,
                            detail: v.detail.clone(),
                            kind: v.kind,
                        });
                        bucket.count += 1;
                        if (steps, seed) < (bucket.steps, bucket.seed) {
                            (bucket.seed, bucket.steps) = (seed, steps);
                            bucket.detail = v.detail.clone();
                            bucket.kind = v.kind;
                        }
                    }
                    if keep_all {
                        summary.all.push((seed, steps, violations));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        if w.join().is_err() {
            eprintln!("explorer: a worker thread panicked");
        }
    }
    done.store(1, Ordering::SeqCst);
    let _ = watchdog.join();
    let mut summary = std::mem::take(&mut *failures.lock());
    summary.all.sort_by_key(|f| f.0);
    summary.runs = runs.load(Ordering::SeqCst);
    summary.elapsed = started.elapsed();
    summary
}

/// Whether `schedule` shows a violation of `kind`, in any of `tries` runs (the embedded
/// backend's backoff jitter is not seeded, so a run may differ slightly from the last).
fn shows(schedule: &Schedule, kind: Kind, tries: u32) -> bool {
    (0..tries).any(|_| run_checked(schedule, false).iter().any(|v| v.kind == kind))
}

/// One way to simplify a configuration.
type Simplify = dyn Fn(&mut crate::schedule::Config);

/// Shrinks `schedule` to fewer steps, subscriptions and messages that still show `kind`,
/// within `budget` runs.
pub(crate) fn minimise(schedule: &Schedule, kind: Kind, budget: u32) -> Schedule {
    let mut best = schedule.clone();
    let mut runs = 0u32;
    let mut attempt = |candidate: &Schedule, best: &mut Schedule| {
        if runs >= budget {
            return false;
        }
        runs += 1;
        if shows(candidate, kind, 1) {
            *best = candidate.clone();
            true
        } else {
            false
        }
    };
    // Fewer steps: chunks, halving.
    let mut chunk = (best.steps.len() / 2).max(1);
    loop {
        let mut i = 0;
        let mut progress = false;
        while i < best.steps.len() {
            let mut candidate = best.clone();
            let end = (i + chunk).min(candidate.steps.len());
            candidate.steps.drain(i..end);
            if attempt(&candidate, &mut best) {
                progress = true;
            } else {
                i += chunk;
            }
        }
        if !progress {
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
    }
    // Fewer subscriptions: drop a slot and the steps about it.
    let mut slot = best.config.subs.len();
    while slot > 0 {
        slot -= 1;
        if best.config.subs.len() == 1 {
            break;
        }
        let candidate = without_slot(&best, slot);
        attempt(&candidate, &mut best);
    }
    // Simpler settings: no retention limits, plain stores, `All` starts.
    let simpler_configs: Vec<Box<Simplify>> = vec![
        Box::new(|c| c.max_msgs = None),
        Box::new(|c| c.max_bytes = None),
        Box::new(|c| {
            for s in &mut c.subs {
                s.store = crate::schedule::Store::Memory;
            }
        }),
        Box::new(|c| {
            for s in &mut c.subs {
                s.start = crate::schedule::Start::All;
            }
        }),
        Box::new(|c| {
            for s in &mut c.subs {
                s.filter = crate::schedule::Filter::All;
            }
        }),
    ];
    for simplify in &simpler_configs {
        let mut candidate = best.clone();
        simplify(&mut candidate.config);
        if candidate.config != best.config {
            attempt(&candidate, &mut best);
        }
    }
    // Nothing published at the end, smaller numbers.
    let mut i = best.config.final_publishes.0.len();
    while i > 0 {
        i -= 1;
        let mut candidate = best.clone();
        candidate.config.final_publishes.0.remove(i);
        attempt(&candidate, &mut best);
    }
    for i in 0..best.steps.len() {
        let simpler = match &best.steps[i] {
            Step::Take { sub, n, ack } if *n > 1 || *ack != u32::MAX => vec![
                Step::Take {
                    sub: *sub,
                    n: *n,
                    ack: u32::MAX,
                },
                Step::Take {
                    sub: *sub,
                    n: 1,
                    ack: *ack,
                },
            ],
            Step::PublishBatch { keys } if keys.0.len() > 1 => {
                vec![Step::Publish { key: keys.0[0] }]
            }
            Step::PublishInBackground { key } => vec![Step::Publish { key: *key }],
            _ => Vec::new(),
        };
        for step in simpler {
            let mut candidate = best.clone();
            candidate.steps[i] = step;
            if attempt(&candidate, &mut best) {
                break;
            }
        }
    }
    best
}

/// `schedule` without subscription `slot`: its steps go, later slots move down.
fn without_slot(schedule: &Schedule, slot: usize) -> Schedule {
    let mut out = schedule.clone();
    out.config.subs.remove(slot);
    out.steps = schedule
        .steps
        .iter()
        .filter_map(|step| {
            let mut step = step.clone();
            let sub = match &mut step {
                Step::Subscribe { sub }
                | Step::Take { sub, .. }
                | Step::Ack { sub, .. }
                | Step::Resubscribe { sub }
                | Step::Close { sub }
                | Step::Drop { sub }
                | Step::DeleteConsumer { sub }
                | Step::StoreFail { sub }
                | Step::StoreHeal { sub } => sub,
                _ => return Some(step),
            };
            match (*sub).cmp(&slot) {
                std::cmp::Ordering::Equal => None,
                std::cmp::Ordering::Greater => {
                    *sub -= 1;
                    Some(step)
                }
                std::cmp::Ordering::Less => Some(step),
            }
        })
        .collect();
    // Durable names stay those of the remaining slots' positions.
    const DURABLES: [&str; 4] = ["d0", "d1", "d2", "d3"];
    for (i, sub) in out.config.subs.iter_mut().enumerate() {
        sub.durable = DURABLES[i];
    }
    out
}
