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
//!
//! Layout: this file (`main`, the process's tracing subscriber, the OpenTelemetry SDK),
//! `call_site` (the copy of Herald's call site, and the non-channel rows), `drain` (how a
//! channel is emptied while its row runs), `channels` (the channel rows), `table` (criterion's
//! table) and `side_by_side` (the interleaved rounds and the ratios).

#[path = "../support/mod.rs"]
mod support;

mod call_site;
mod channels;
mod drain;
mod side_by_side;
mod table;

use criterion::Criterion;
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

/// A real OpenTelemetry SDK meter provider (periodic reader, in-memory exporter) and a reporter
/// on it, interested in every kind.
pub(crate) fn otel() -> (SdkMeterProvider, OtelReporter) {
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
        .build();
    let reporter =
        OtelReporter::new(&provider.meter_with_scope(herald_otel::scope())).per_message(true);
    (provider, reporter)
}

/// The process's tracing subscriber: formatted text to a sink, its level switchable.
pub(crate) struct Logging {
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

    pub(crate) fn set(&self, level: LevelFilter) {
        self.level.reload(level).expect("reload the level filter");
    }
}
fn main() {
    let logging = Logging::install();
    // HERALD_BENCH_SIDE_BY_SIDE_ONLY=1 skips criterion's table (a quick look at the ratios).
    if std::env::var_os("HERALD_BENCH_SIDE_BY_SIDE_ONLY").is_none() {
        let mut criterion = Criterion::default().configure_from_args();
        table::benches(&mut criterion, &logging);
        criterion.final_summary();
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not, and runs a quick check.
    let bench = std::env::args().any(|a| a == "--bench");
    let filtered = std::env::args().skip(1).any(|a| !a.starts_with('-'));
    if !filtered {
        side_by_side::side_by_side(if bench { 25 } else { 1 });
    }
}
