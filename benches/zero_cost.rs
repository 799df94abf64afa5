//! The loop of the zero-cost proof (`scripts/zero-cost`): publish one message and consume it,
//! on the embedded backend, `HERALD_ZC_N` times.
//!
//! A bench target of its own: `cargo bench --bench zero_cost` runs the loop once and prints
//! the result line. `scripts/zero-cost` builds it twice, as is and with
//! `RUSTFLAGS="--cfg herald_no_reporting"` (which compiles Herald's reporting calls out), and
//! counts the instructions of [`zero_cost_loop`] under
//! `valgrind --tool=callgrind --toggle-collect='*zero_cost_loop*'`. Everything that could make
//! the count depend on timing is pinned: one thread, a fixed node id, checkpoints saved every
//! 100 acknowledgements and never on a timer.
//!
//! `HERALD_ZC_REPORTER` picks the reporter: `null` (the default, [`NullReporter`]), `counting`
//! (a closure interested in every kind: the control that shows the method sees reporting when
//! there is some) or `dyn-off` (an `Arc<dyn Reporter>` whose `interest` is false: the cost of a
//! run-time filter).

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald::reporter::from_fn;
use herald::{
    CheckpointPolicy, Coordinator, CoordinatorEvent, NullReporter, Reporter, StartPosition,
    Subscription,
};
use tokio::runtime::Runtime;

use support::{count_allocs, env_usize, subscribe_all, Off};

#[global_allocator]
static ALLOC: support::CountingAlloc = support::CountingAlloc;

static PAYLOAD: [u8; 128] = [b'x'; 128];

/// Runs the loop with the reporter `HERALD_ZC_REPORTER` names and prints one result line:
/// `zero-cost reporter=<r> n=<n> allocs=<a> alloc_bytes=<b> events_built=<e> reported=<r> checksum=<c>`.
fn main() {
    let n = env_usize("HERALD_ZC_N", 20_000);
    let which = std::env::var("HERALD_ZC_REPORTER").unwrap_or_else(|_| "null".into());
    let reported = Arc::new(AtomicU64::new(0));
    match which.as_str() {
        "null" => run("null", NullReporter, n, &reported),
        "counting" => {
            let count = reported.clone();
            let reporter = from_fn(move |event: &CoordinatorEvent| {
                std::hint::black_box(event);
                count.fetch_add(1, Ordering::Relaxed);
            });
            run("counting", reporter, n, &reported)
        }
        "dyn-off" => run("dyn-off", Arc::new(Off) as Arc<dyn Reporter>, n, &reported),
        other => panic!("HERALD_ZC_REPORTER={other}: expected null, counting or dyn-off"),
    }
}

/// Checkpoints every 100 acknowledgements and never on a timer.
const CHECKPOINTS: CheckpointPolicy = CheckpointPolicy {
    every: 100,
    interval: Duration::from_secs(3600),
};

fn run<R: Reporter>(label: &str, reporter: R, n: usize, reported: &AtomicU64) {
    let mut looped = Loop::new(reporter);
    // Warm up (outside the measured function): the first iterations grow buffers.
    looped.iterations(1_000);
    let built_before = herald::testing::events_built();
    let reported_before = reported.load(Ordering::Relaxed);
    let (checksum, allocs, bytes) = count_allocs(|| zero_cost_loop(&mut looped, n));
    let built = herald::testing::events_built() - built_before;
    let reported = reported.load(Ordering::Relaxed) - reported_before;
    println!(
        "zero-cost reporter={label} n={n} allocs={allocs} alloc_bytes={bytes} events_built={built} reported={reported} checksum={checksum}"
    );
    looped.close();
}

/// The measured loop; callgrind counts exactly what runs inside this function.
#[inline(never)]
fn zero_cost_loop<R: Reporter>(looped: &mut Loop<R>, n: usize) -> u64 {
    looped.iterations(n)
}

/// What the loop runs on: a current-thread runtime, a coordinator on the embedded backend,
/// and its one subscription.
struct Loop<R: Reporter> {
    rt: Runtime,
    coordinator: Coordinator<R>,
    sub: Subscription<R>,
}

impl<R: Reporter> Loop<R> {
    fn new(reporter: R) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (coordinator, sub) = rt.block_on(async {
            let coordinator = Coordinator::builder()
                .memory()
                .stream("ZERO")
                .node_id("zero-cost")
                .reporter(reporter)
                .connect()
                .await
                .expect("connect to the embedded backend");
            let sub = subscribe_all(&coordinator, "loop", StartPosition::All)
                .checkpoint_policy(CHECKPOINTS)
                .await
                .expect("subscribe");
            (coordinator, sub)
        });
        Self {
            rt,
            coordinator,
            sub,
        }
    }

    /// `n` times: publish one 128-byte message, receive it, acknowledge it. Not inlined, so
    /// that the warm-up and the measured loop run the same machine code.
    #[inline(never)]
    fn iterations(&mut self, n: usize) -> u64 {
        let (coordinator, sub) = (&self.coordinator, &mut self.sub);
        self.rt.block_on(async {
            let mut checksum = 0u64;
            for _ in 0..n {
                let seq = coordinator
                    .publish("zc.k", Bytes::from_static(&PAYLOAD))
                    .await
                    .expect("publish");
                let msg = sub.next().await.expect("open").expect("message");
                msg.ack();
                checksum = checksum.wrapping_add(msg.seq ^ seq);
            }
            checksum
        })
    }

    fn close(self) {
        let Self {
            rt,
            coordinator,
            sub,
        } = self;
        rt.block_on(async {
            sub.close().await;
            coordinator.shutdown().await;
        });
    }
}
