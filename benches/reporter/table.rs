//! Criterion's table: every row.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, Criterion};
use herald::reporter::from_fn;
use herald::{CoordinatorEvent, NullReporter, Reporter};
use herald_log::LogReporter;
use tracing_subscriber::filter::LevelFilter;

use crate::call_site::{Baseline, Case, Emit, Names};
use crate::channels::{
    channel_reporter, crossbeam_array, crossbeam_array_clone, crossbeam_array_clone_fence,
    crossbeam_channel, tokio_mpsc, Watch,
};
use crate::drain::Drained;
use crate::support::Off;
use crate::{otel, Logging, CAPACITY};

fn bench_case(b: &mut Bencher<'_>, case: &mut impl Case) {
    b.iter_custom(|iters| case.run(iters));
}

/// The two rows of a channel: `<name>_drained` (a reader thread busy on the channel) and
/// `<name>_uncontended` (the sender empties it itself between chunks).
fn channel_rows<S: FnMut(u64)>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    case: impl Fn(bool) -> Drained<S>,
) {
    for (threaded, suffix) in [(true, "drained"), (false, "uncontended")] {
        group.bench_function(format!("{name}_{suffix}"), |b| {
            let mut case = case(threaded);
            bench_case(b, &mut case);
            case.finish();
        });
    }
}

pub(crate) fn benches(c: &mut Criterion, logging: &Logging) {
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

    channel_rows(&mut group, "channel_reporter", channel_reporter);
    channel_rows(&mut group, "crossbeam_array_try_send", crossbeam_array);
    channel_rows(&mut group, "crossbeam_channel_try_send", crossbeam_channel);
    channel_rows(
        &mut group,
        "crossbeam_array_try_send_clone",
        crossbeam_array_clone,
    );
    channel_rows(
        &mut group,
        "crossbeam_array_try_send_clone_fence",
        crossbeam_array_clone_fence,
    );
    channel_rows(&mut group, "tokio_mpsc_try_send", tokio_mpsc);
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
