//! Shared pieces of the benchmarks: statistics, memory readings, an allocation counter, a
//! reporter that declines everything, and the nats-server harness of the integration tests.
//!
//! Every bench target includes this module; each uses only part of it.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use herald::{Coordinator, CoordinatorEvent, EventKind, Reporter, StartPosition, Subscribe};

/// Throw-away nats-server processes on free loopback ports, killed on drop (also on panic):
/// the same harness the integration tests use.
#[path = "../../tests/support/nats_server.rs"]
pub(crate) mod nats_server;

/// The median of `values` (the mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "median of nothing");
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Messages per second.
pub(crate) fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// `52.3k` style, for the human-readable lines.
pub(crate) fn k(rate: f64) -> String {
    format!("{:.1}k", rate / 1000.0)
}

/// A list of rates, `k` formatted, for the human-readable lines.
pub(crate) fn ks(rates: &[f64]) -> String {
    rates.iter().map(|r| k(*r)).collect::<Vec<_>>().join(" ")
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or(0)
}

/// Counts allocations while switched on; otherwise the system allocator plus one relaxed load.
///
/// Switched on only around the loops whose allocations are reported, so the timed runs pay
/// (almost) nothing for it.
pub(crate) struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

#[allow(unsafe_code)] // a global allocator cannot be written without it
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and allocated bytes) made while `f` ran, on every thread.
pub(crate) fn count_allocs<T>(f: impl FnOnce() -> T) -> (T, u64, u64) {
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        ALLOC_BYTES.load(Ordering::Relaxed),
    );
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (
        out,
        ALLOCS.load(Ordering::Relaxed) - a0,
        ALLOC_BYTES.load(Ordering::Relaxed) - b0,
    )
}

/// A positive integer from the environment, or `default`.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a positive integer")),
        Err(_) => default,
    }
}

/// Switches allocation counting on or off (see [`alloc_count`]).
pub(crate) fn counting(on: bool) {
    COUNTING.store(on, Ordering::SeqCst);
}

/// Allocations counted so far, on every thread, while counting was on.
pub(crate) fn alloc_count() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// A durable subscription to every subject of the coordinator's stream, from `start`: what
/// the consuming loops measure. The caller adds the checkpointing and awaits it.
pub(crate) fn subscribe_all<'c, R: Reporter>(
    coordinator: &'c Coordinator<R>,
    durable: &str,
    start: StartPosition,
) -> Subscribe<'c, R> {
    coordinator.subscribe(">").durable(durable).start(start)
}

/// Wants nothing, decided at run time behind a vtable (as `Arc<dyn Reporter>`): the cost of a
/// run-time filter that declines every kind.
pub(crate) struct Off;

impl Reporter for Off {
    fn interest(&self, _kind: EventKind) -> bool {
        false
    }
    fn report(&self, _event: &CoordinatorEvent) {}
}
