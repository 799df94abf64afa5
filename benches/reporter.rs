//! What reporting one event costs, through each kind of reporter, next to what Herald replaces.
//!
//! ```text
//! cargo bench --bench reporter                    # criterion table, then the side-by-side ratios
//! cargo bench --bench reporter -- channel         # criterion rows matching "channel" only
//! HERALD_BENCH_SIDE_BY_SIDE_ONLY=1 cargo bench --bench reporter   # only the ratios, seconds
//! ```
//!
//! Every reporter row runs the coordinator's call site on one `Delivered` event (the
//! per-message kind, so the one that matters): `if interest(kind) { report(&build()) }`,
//! through a copy of Herald's crate-private `Emitter` (the same `catch_unwind` around
//! `interest`, the same out-of-line `deliver`). The comparison rows send the same event
//! through a bare crossbeam-channel `bounded` channel (what herald-channel is built on), std's
//! `sync_channel` (crossbeam's array algorithm, ported), a tokio `mpsc` and a tokio `watch`.
//!
//! Each channel is measured twice. `_drained`: a reader thread polls it without ever blocking,
//! as fast as it can, while the sender sends (a burst of per-message events with a reader that
//! keeps up); no send has to wake a sleeping thread (a system call, microseconds, for every
//! channel type alike), and the reader threads of the other rows sleep meanwhile.
//! `_uncontended`: the sending thread empties the channel itself between chunks, so nothing
//! else touches the channel while it sends: the sender's own work, without cache-line
//! ping-pong. Events are sent in chunks of a quarter of the capacity and the reader catches up
//! between chunks, untimed: no row measures a full channel except the `_full` rows, which
//! measure exactly that (overload: every event dropped).
//!
//! After criterion's table, a side-by-side section runs the rows that have targets in
//! interleaved rounds (this machine is shared and noisy: drift hits every row alike) and prints
//! one line per comparison, `ratio <name> <a>/<b> = <x.xx>`, from the medians of the rounds.

use std::hint::black_box;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion};
use herald::reporter::from_fn;
use herald::{CoordinatorEvent, EventKind, NullReporter, Reporter};
use herald_log::LogReporter;
use herald_otel::OtelReporter;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{filter::LevelFilter, reload};

/// The capacity of every bounded channel.
const CAPACITY: usize = 1024;
/// Events sent between two catch-ups of the reader: a quarter of the capacity.
const CHUNK: u64 = (CAPACITY / 4) as u64;

// ---- the call site ---------------------------------------------------------------------------

/// A copy of Herald's `Emitter` (src/reporter.rs), which the crate does not export.
struct Emitter<R> {
    reporter: R,
    panics: AtomicU64,
}

impl<R: Reporter> Emitter<R> {
    fn new(reporter: R) -> Self {
        Self {
            reporter,
            panics: AtomicU64::new(0),
        }
    }

    #[inline(always)]
    fn emit(&self, kind: EventKind, build: impl FnOnce() -> CoordinatorEvent) {
        if self.wants(kind) {
            self.deliver(build());
        }
    }

    #[inline(always)]
    fn wants(&self, kind: EventKind) -> bool {
        match catch_unwind(AssertUnwindSafe(|| self.reporter.interest(kind))) {
            Ok(wanted) => wanted,
            Err(_) => {
                self.panics.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    #[inline(never)]
    fn deliver(&self, event: CoordinatorEvent) {
        if catch_unwind(AssertUnwindSafe(|| self.reporter.report_owned(event))).is_err() {
            self.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The names every `Delivered` event carries (cheap `Arc<str>` clones).
#[derive(Clone)]
struct Names {
    stream: Arc<str>,
    consumer: Arc<str>,
}

impl Names {
    fn new() -> Self {
        Self {
            stream: "HERALD".into(),
            consumer: "node-7f3a-alert-cache".into(),
        }
    }

    #[inline(always)]
    fn delivered(&self, seq: u64) -> CoordinatorEvent {
        CoordinatorEvent::Delivered {
            stream: self.stream.clone(),
            consumer: self.consumer.clone(),
            seq,
        }
    }
}

/// Wants nothing, decided at run time behind a vtable.
struct Off;

impl Reporter for Off {
    fn interest(&self, _kind: EventKind) -> bool {
        false
    }
    fn report(&self, _event: &CoordinatorEvent) {}
}

// ---- readers ---------------------------------------------------------------------------------

/// What a non-blocking receive found.
enum Polled<T> {
    Item(T),
    Empty,
    Ended,
}

fn std_polled<T>(r: Result<T, std::sync::mpsc::TryRecvError>) -> Polled<T> {
    match r {
        Ok(item) => Polled::Item(item),
        Err(std::sync::mpsc::TryRecvError::Empty) => Polled::Empty,
        Err(std::sync::mpsc::TryRecvError::Disconnected) => Polled::Ended,
    }
}

/// Lets a reader thread spin only while its case runs: spinning readers of the other cases
/// would take the CPU from the one being measured.
#[derive(Clone, Default)]
struct Gate(Arc<AtomicBool>);

impl Gate {
    /// Spins while the gate is open; otherwise sleeps until it opens (or briefly, to notice
    /// the end of the channel).
    fn idle(&self) {
        if self.0.load(Ordering::Acquire) {
            std::hint::spin_loop();
        } else {
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }

    fn set(&self, open: bool, reader: &std::thread::Thread) {
        self.0.store(open, Ordering::Release);
        if open {
            reader.unpark();
        }
    }
}

/// A reader thread that polls without ever blocking (while its case runs) until the channel
/// ends, counting what it received.
struct Drainer {
    received: Arc<AtomicU64>,
    gate: Gate,
    handle: JoinHandle<()>,
}

impl Drainer {
    fn start<T: Send + 'static>(mut try_recv: impl FnMut() -> Polled<T> + Send + 'static) -> Self {
        let received = Arc::new(AtomicU64::new(0));
        let gate = Gate::default();
        let (count, idle) = (received.clone(), gate.clone());
        let handle = std::thread::spawn(move || loop {
            match try_recv() {
                Polled::Item(item) => {
                    drop(black_box(item));
                    count.fetch_add(1, Ordering::Release);
                }
                Polled::Empty => idle.idle(),
                Polled::Ended => return,
            }
        });
        Self {
            received,
            gate,
            handle,
        }
    }

    /// Opens or closes the gate: the thread spins on the channel only while it is open.
    fn active(&self, on: bool) {
        self.gate.set(on, self.handle.thread());
    }

    /// Waits (untimed) until the thread has received `sent` items.
    fn wait_for(&self, sent: u64) {
        while self.received.load(Ordering::Acquire) < sent {
            std::thread::yield_now();
        }
    }

    /// Waits for the thread to finish; the channel must have ended.
    fn join(self) {
        self.handle.join().expect("drainer");
    }
}

// ---- the cases -------------------------------------------------------------------------------

/// One way of reporting an event: `run(iters)` reports `iters` events and returns the time
/// the sends took (never the reader's catching up).
trait Case {
    fn run(&mut self, iters: u64) -> Duration;
}

/// The empty loop: what reporting nothing costs.
struct Baseline {
    seq: u64,
}

impl Case for Baseline {
    fn run(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.seq += 1;
            black_box(self.seq);
        }
        start.elapsed()
    }
}

/// The coordinator's call site with reporter `R`, on the calling thread.
struct Emit<R> {
    emitter: Emitter<R>,
    names: Names,
    seq: u64,
}

impl<R: Reporter> Emit<R> {
    fn new(reporter: R) -> Self {
        Self {
            emitter: Emitter::new(reporter),
            names: Names::new(),
            seq: 0,
        }
    }
}

impl<R: Reporter> Case for Emit<R> {
    fn run(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.seq += 1;
            let seq = self.seq;
            self.emitter
                .emit(EventKind::Delivered, || self.names.delivered(seq));
            black_box(seq);
        }
        start.elapsed()
    }
}

/// Who empties a channel between two chunks of sends.
enum Reader {
    /// A thread polling all the time, also while the sender sends.
    Thread(Drainer),
    /// The sending thread itself, between chunks (untimed): no other thread touches the
    /// channel while the sender sends.
    Inline(Box<dyn FnMut()>),
}

/// Sends `send(seq)` in chunks, letting the reader catch up between chunks (untimed).
struct Drained<S> {
    send: S,
    reader: Option<Reader>,
    sent: u64,
}

/// A channel case: `send` sends one event; `try_recv` receives without blocking, from a thread
/// of its own (`threaded`) or inline.
fn drained<T: Send + 'static, S: FnMut(u64)>(
    send: S,
    mut try_recv: impl FnMut() -> Polled<T> + Send + 'static,
    threaded: bool,
) -> Drained<S> {
    let reader = if threaded {
        Reader::Thread(Drainer::start(try_recv))
    } else {
        Reader::Inline(Box::new(move || {
            while let Polled::Item(item) = try_recv() {
                drop(black_box(item));
            }
        }))
    };
    Drained {
        send,
        reader: Some(reader),
        sent: 0,
    }
}

impl<S: FnMut(u64)> Case for Drained<S> {
    fn run(&mut self, iters: u64) -> Duration {
        if let Some(Reader::Thread(drainer)) = &self.reader {
            drainer.active(true);
        }
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let chunk = (iters - done).min(CHUNK);
            let start = Instant::now();
            for i in 0..chunk {
                (self.send)(self.sent + i);
            }
            total += start.elapsed();
            done += chunk;
            self.sent += chunk;
            match self.reader.as_mut().expect("running") {
                Reader::Thread(drainer) => drainer.wait_for(self.sent),
                Reader::Inline(drain) => drain(),
            }
        }
        if let Some(Reader::Thread(drainer)) = &self.reader {
            drainer.active(false);
        }
        total
    }
}

impl<S> Drained<S> {
    /// Ends the channel (by dropping the sender inside `send`) and waits for the reader.
    fn finish(mut self) {
        let reader = self.reader.take();
        drop(self);
        if let Some(Reader::Thread(drainer)) = reader {
            drainer.join();
        }
    }
}

fn channel_reporter(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (reporter, mut events) = herald_channel::channel(CAPACITY);
    let emitter = Emitter::new(reporter);
    let names = Names::new();
    drained(
        move |seq| emitter.emit(EventKind::Delivered, || names.delivered(seq)),
        move || match events.try_recv() {
            Ok(item) => Polled::Item(item),
            Err(herald_channel::TryRecvError::Empty) => Polled::Empty,
            Err(herald_channel::TryRecvError::Disconnected) => Polled::Ended,
        },
        threaded,
    )
}

/// std's bounded channel is crossbeam-channel's array flavour (ported into std in Rust 1.67).
fn crossbeam_array(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    drained(
        move |seq| {
            let _ = black_box(tx.try_send(names.delivered(seq)));
        },
        move || std_polled(rx.try_recv()),
        threaded,
    )
}

/// The bare crossbeam-channel `bounded` channel: what herald-channel is built on.
fn crossbeam_channel(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, rx) = crossbeam_channel::bounded::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    drained(
        move |seq| {
            let _ = black_box(tx.try_send(names.delivered(seq)));
        },
        move || match rx.try_recv() {
            Ok(item) => Polled::Item(item),
            Err(crossbeam_channel::TryRecvError::Empty) => Polled::Empty,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Polled::Ended,
        },
        threaded,
    )
}

/// The bare channel, sending a clone of the event as a reporter given `&CoordinatorEvent`
/// must (attribution row).
fn crossbeam_array_clone(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    drained(
        move |seq| {
            let event = names.delivered(seq);
            let _ = black_box(tx.try_send(event.clone()));
            drop(black_box(event));
        },
        move || std_polled(rx.try_recv()),
        threaded,
    )
}

/// As [`crossbeam_array_clone`], plus the sequentially consistent fence and flag check that
/// herald-channel's wake-up protocol adds after each send (attribution row).
fn crossbeam_array_clone_fence(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    let parked = AtomicBool::new(false);
    drained(
        move |seq| {
            let event = names.delivered(seq);
            let _ = black_box(tx.try_send(event.clone()));
            fence(Ordering::SeqCst);
            black_box(parked.load(Ordering::Relaxed));
            drop(black_box(event));
        },
        move || std_polled(rx.try_recv()),
        threaded,
    )
}

fn tokio_mpsc(threaded: bool) -> Drained<impl FnMut(u64)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<CoordinatorEvent>(CAPACITY);
    let names = Names::new();
    drained(
        move |seq| {
            let _ = black_box(tx.try_send(names.delivered(seq)));
        },
        move || match rx.try_recv() {
            Ok(item) => Polled::Item(item),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => Polled::Empty,
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => Polled::Ended,
        },
        threaded,
    )
}

/// `watch::Sender::send` of the event, with a reader thread that reads every change it can
/// (`with_reader`) or with an idle receiver.
struct Watch {
    tx: Option<tokio::sync::watch::Sender<CoordinatorEvent>>,
    gate: Gate,
    idle_rx: Option<tokio::sync::watch::Receiver<CoordinatorEvent>>,
    reader: Option<JoinHandle<()>>,
    names: Names,
    seq: u64,
}

impl Watch {
    fn new(with_reader: bool) -> Self {
        let names = Names::new();
        let (tx, mut rx) = tokio::sync::watch::channel(names.delivered(0));
        let gate = Gate::default();
        let idle = gate.clone();
        let (idle_rx, reader) = if with_reader {
            let reader = std::thread::spawn(move || loop {
                match rx.has_changed() {
                    Ok(true) => drop(black_box(rx.borrow_and_update().clone())),
                    Ok(false) => idle.idle(),
                    Err(_) => return,
                }
            });
            (None, Some(reader))
        } else {
            (Some(rx), None)
        };
        Self {
            tx: Some(tx),
            gate,
            idle_rx,
            reader,
            names,
            seq: 0,
        }
    }

    fn finish(mut self) {
        self.tx = None;
        self.idle_rx = None;
        if let Some(reader) = self.reader.take() {
            reader.join().expect("watch reader");
        }
    }
}

impl Case for Watch {
    fn run(&mut self, iters: u64) -> Duration {
        let tx = self.tx.as_ref().expect("running");
        if let Some(reader) = &self.reader {
            self.gate.set(true, reader.thread());
        }
        let start = Instant::now();
        for _ in 0..iters {
            self.seq += 1;
            let _ = black_box(tx.send(self.names.delivered(self.seq)));
        }
        let took = start.elapsed();
        if let Some(reader) = &self.reader {
            self.gate.set(false, reader.thread());
        }
        took
    }
}

/// A real OpenTelemetry SDK meter provider (periodic reader, in-memory exporter) and a reporter
/// on it, interested in every kind.
fn otel() -> (SdkMeterProvider, OtelReporter) {
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
        .build();
    let reporter =
        OtelReporter::new(&provider.meter_with_scope(herald_otel::scope())).per_message(true);
    (provider, reporter)
}

/// The process's tracing subscriber: formatted text to a sink, its level switchable.
struct Logging {
    level: reload::Handle<LevelFilter, tracing_subscriber::Registry>,
}

impl Logging {
    fn install() -> Self {
        let (filter, level) = reload::Layer::new(LevelFilter::INFO);
        tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
            .init();
        Self { level }
    }

    fn set(&self, level: LevelFilter) {
        self.level.reload(level).expect("reload the level filter");
    }
}

// ---- criterion -------------------------------------------------------------------------------

fn bench_case(b: &mut Bencher<'_>, case: &mut impl Case) {
    b.iter_custom(|iters| case.run(iters));
}

fn benches(c: &mut Criterion, logging: &Logging) {
    let mut group = c.benchmark_group("report_one_event");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));

    group.bench_function("baseline_empty_loop", |b| {
        bench_case(b, &mut Baseline { seq: 0 })
    });
    group.bench_function("null_reporter", |b| {
        bench_case(b, &mut Emit::new(NullReporter))
    });
    group.bench_function("from_fn_closure", |b| {
        bench_case(
            b,
            &mut Emit::new(from_fn(|event: &CoordinatorEvent| {
                black_box(event);
            })),
        )
    });
    group.bench_function("arc_dyn_interest_false", |b| {
        bench_case(b, &mut Emit::new(Arc::new(Off) as Arc<dyn Reporter>))
    });
    group.bench_function("tuple_fanout_closure_null_dyn", |b| {
        let closure = from_fn(|event: &CoordinatorEvent| {
            black_box(event);
        });
        let fanout = (closure, NullReporter, Arc::new(Off) as Arc<dyn Reporter>);
        bench_case(b, &mut Emit::new(fanout))
    });

    group.bench_function("channel_reporter_drained", |b| {
        let mut case = channel_reporter(true);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("channel_reporter_uncontended", |b| {
        let mut case = channel_reporter(false);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("crossbeam_array_try_send_drained", |b| {
        let mut case = crossbeam_array(true);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("crossbeam_array_try_send_uncontended", |b| {
        let mut case = crossbeam_array(false);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("crossbeam_channel_try_send_drained", |b| {
        let mut case = crossbeam_channel(true);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("crossbeam_channel_try_send_uncontended", |b| {
        let mut case = crossbeam_channel(false);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("crossbeam_array_try_send_clone_drained", |b| {
        let mut case = crossbeam_array_clone(true);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("crossbeam_array_try_send_clone_uncontended", |b| {
        let mut case = crossbeam_array_clone(false);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("crossbeam_array_try_send_clone_fence_drained", |b| {
        let mut case = crossbeam_array_clone_fence(true);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("crossbeam_array_try_send_clone_fence_uncontended", |b| {
        let mut case = crossbeam_array_clone_fence(false);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("tokio_mpsc_try_send_drained", |b| {
        let mut case = tokio_mpsc(true);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("tokio_mpsc_try_send_uncontended", |b| {
        let mut case = tokio_mpsc(false);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("tokio_watch_send_read", |b| {
        let mut case = Watch::new(true);
        bench_case(b, &mut case);
        case.finish();
    });
    group.bench_function("tokio_watch_send_idle_receiver", |b| {
        let mut case = Watch::new(false);
        bench_case(b, &mut case);
        case.finish();
    });

    // Overload: nobody reads, the channel is full, every event is dropped (and counted).
    group.bench_function("channel_reporter_full", |b| {
        let (reporter, events) = herald_channel::channel(CAPACITY);
        let names = Names::new();
        for seq in 0..CAPACITY as u64 {
            reporter.report(&names.delivered(seq));
        }
        bench_case(b, &mut Emit::new(reporter));
        drop(events);
    });
    group.bench_function("crossbeam_array_try_send_full", |b| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<CoordinatorEvent>(CAPACITY);
        let names = Names::new();
        for seq in 0..CAPACITY as u64 {
            tx.try_send(names.delivered(seq)).expect("room");
        }
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            let _ = black_box(tx.try_send(names.delivered(seq)));
        });
        drop(rx);
    });

    logging.set(LevelFilter::INFO);
    group.bench_function("log_reporter_filtered_off", |b| {
        bench_case(b, &mut Emit::new(LogReporter::new()))
    });
    logging.set(LevelFilter::TRACE);
    group.bench_function("log_reporter_on_text_to_sink", |b| {
        bench_case(b, &mut Emit::new(LogReporter::new()))
    });
    logging.set(LevelFilter::INFO);

    group.bench_function("otel_reporter_sdk_meter", |b| {
        let (provider, reporter) = otel();
        bench_case(b, &mut Emit::new(reporter));
        let _ = provider.shutdown();
    });
    group.finish();
}

// ---- side by side ----------------------------------------------------------------------------

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

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Runs the rows with targets in interleaved rounds (the order rotates every round) and prints
/// the medians and ratios.
fn side_by_side(rounds: usize) {
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

fn main() {
    let logging = Logging::install();
    // HERALD_BENCH_SIDE_BY_SIDE_ONLY=1 skips criterion's table (a quick look at the ratios).
    if std::env::var_os("HERALD_BENCH_SIDE_BY_SIDE_ONLY").is_none() {
        let mut criterion = Criterion::default().configure_from_args();
        benches(&mut criterion, &logging);
        criterion.final_summary();
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not, and runs a quick check.
    let bench = std::env::args().any(|a| a == "--bench");
    let filtered = std::env::args().skip(1).any(|a| !a.starts_with('-'));
    if !filtered {
        side_by_side(if bench { 25 } else { 1 });
    }
}
