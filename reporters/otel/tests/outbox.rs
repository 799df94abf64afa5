//! The outbox and transactional-checkpoint events read back through the SDK's in-memory
//! exporters: the outbox instruments with their values and attributes, the records of the
//! state changes, and the committed checkpoints that are never built.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use herald::{CoordinatorEvent, EventKind, Reporter};
use herald_otel::{names, OtelReporter};
use opentelemetry::logs::{AnyValue, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

const OUTBOX: &str = "alerts_outbox";

type Attributes = BTreeMap<String, String>;

fn points<'a, T: 'a>(
    points: impl Iterator<Item = (impl Iterator<Item = &'a opentelemetry::KeyValue>, T)>,
) -> BTreeMap<Attributes, T> {
    points
        .map(|(kvs, value)| {
            let attributes = kvs
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect();
            (attributes, value)
        })
        .collect()
}

fn outbox_attributes() -> Attributes {
    [(names::MESSAGING_SYSTEM, "nats"), (names::OUTBOX, OUTBOX)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn relayed(row: u64, lag_ms: u64) -> CoordinatorEvent {
    CoordinatorEvent::OutboxRelayed {
        outbox: OUTBOX.into(),
        row,
        seq: row + 100,
        duplicate: row == 2,
        lag: Duration::from_millis(lag_ms),
    }
}

/// Reports `events` (those the reporter wants) and returns the exported metrics and records.
fn export(
    events: &[CoordinatorEvent],
    per_message: bool,
) -> (Option<ResourceMetrics>, Vec<SdkLogRecord>) {
    let metric_exporter = InMemoryMetricExporter::default();
    let meters = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metric_exporter.clone()).build())
        .build();
    let log_exporter = InMemoryLogExporter::default();
    let logs = SdkLoggerProvider::builder()
        .with_simple_exporter(log_exporter.clone())
        .build();
    let reporter = OtelReporter::new(&meters.meter_with_scope(herald_otel::scope()))
        .with_logger(logs.logger_with_scope(herald_otel::scope()))
        .per_message(per_message);
    for event in events {
        if reporter.interest(event.kind()) {
            reporter.report(event);
        }
    }
    meters.force_flush().expect("flush");
    let metrics = metric_exporter
        .get_finished_metrics()
        .expect("metrics")
        .pop();
    let records = log_exporter
        .get_emitted_logs()
        .expect("logs")
        .into_iter()
        .map(|l| l.record)
        .collect();
    (metrics, records)
}

fn all(metrics: &Option<ResourceMetrics>) -> impl Iterator<Item = &Metric> {
    metrics
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .flat_map(|sm| sm.metrics())
}

fn metric<'a>(metrics: &'a Option<ResourceMetrics>, name: &str) -> &'a Metric {
    all(metrics)
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn attribute<'a>(record: &'a SdkLogRecord, key: &str) -> Option<&'a AnyValue> {
    record
        .attributes_iter()
        .find(|(k, _)| k.as_str() == key)
        .map(|(_, v)| v)
}

#[test]
fn outbox_events_feed_their_instruments_by_outbox() {
    let events = [
        relayed(1, 2),
        relayed(2, 4),
        relayed(3, 6),
        CoordinatorEvent::OutboxBacklog {
            outbox: OUTBOX.into(),
            pending: 120,
            oldest_age: Duration::from_millis(1500),
        },
        CoordinatorEvent::OutboxBacklog {
            outbox: OUTBOX.into(),
            pending: 7,
            oldest_age: Duration::from_millis(250),
        },
        CoordinatorEvent::OutboxRelayFailed {
            outbox: OUTBOX.into(),
            attempt: 1,
            delay: Duration::from_millis(500),
            error: "connection refused".into(),
        },
    ];
    let (metrics, _) = export(&events, true);
    let at = outbox_attributes();

    let relayed = metric(&metrics, names::OUTBOX_RELAYED);
    assert_eq!(relayed.unit(), "{row}");
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = relayed.data() else {
        panic!("{} is not a u64 counter", names::OUTBOX_RELAYED);
    };
    assert!(sum.is_monotonic());
    let relayed = points(sum.data_points().map(|p| (p.attributes(), p.value())));
    assert_eq!(relayed, BTreeMap::from([(at.clone(), 3)]));

    let lag = metric(&metrics, names::OUTBOX_RELAY_LAG);
    assert_eq!(lag.unit(), "s");
    let AggregatedMetrics::F64(MetricData::Histogram(h)) = lag.data() else {
        panic!("{} is not an f64 histogram", names::OUTBOX_RELAY_LAG);
    };
    let lag = points(
        h.data_points()
            .map(|p| (p.attributes(), (p.count(), p.sum()))),
    );
    let (count, total) = lag[&at];
    assert_eq!(count, 3);
    assert!((total - 0.012).abs() < 1e-9, "{total}");

    let pending = metric(&metrics, names::OUTBOX_PENDING);
    assert_eq!(pending.unit(), "{row}");
    let AggregatedMetrics::U64(MetricData::Gauge(g)) = pending.data() else {
        panic!("{} is not a u64 gauge", names::OUTBOX_PENDING);
    };
    let pending = points(g.data_points().map(|p| (p.attributes(), p.value())));
    assert_eq!(
        pending,
        BTreeMap::from([(at.clone(), 7)]),
        "the last backlog"
    );

    let oldest = metric(&metrics, names::OUTBOX_OLDEST_AGE);
    assert_eq!(oldest.unit(), "s");
    let AggregatedMetrics::F64(MetricData::Gauge(g)) = oldest.data() else {
        panic!("{} is not an f64 gauge", names::OUTBOX_OLDEST_AGE);
    };
    let oldest = points(g.data_points().map(|p| (p.attributes(), p.value())));
    assert_eq!(oldest, BTreeMap::from([(at.clone(), 0.25)]));

    let failures = metric(&metrics, names::OUTBOX_RELAY_FAILURES);
    assert_eq!(failures.unit(), "{failure}");
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = failures.data() else {
        panic!("{} is not a u64 counter", names::OUTBOX_RELAY_FAILURES);
    };
    let failures = points(sum.data_points().map(|p| (p.attributes(), p.value())));
    assert_eq!(failures, BTreeMap::from([(at.clone(), 1)]));

    // The state changes are counted by kind, with the outbox and no stream.
    let events = metric(&metrics, names::COORDINATOR_EVENTS);
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = events.data() else {
        panic!("{} is not a u64 counter", names::COORDINATOR_EVENTS);
    };
    let events = points(sum.data_points().map(|p| (p.attributes(), p.value())));
    let by_kind = |kind: &str| {
        let mut a = at.clone();
        a.insert(names::EVENT_KIND.to_string(), kind.to_string());
        a
    };
    assert_eq!(
        events,
        BTreeMap::from([
            (by_kind("outbox_backlog"), 2),
            (by_kind("outbox_relay_failed"), 1)
        ])
    );
}

#[test]
fn relayed_rows_follow_per_message_and_committed_checkpoints_are_never_built() {
    let on = OtelReporter::new(&SdkMeterProvider::builder().build().meter("t"));
    assert!(on.interest(EventKind::OutboxRelayed));
    assert!(!on.interest(EventKind::CheckpointCommitted));
    assert!(on.interest(EventKind::OutboxBacklog));
    assert!(on.interest(EventKind::CheckpointCommitFailed));

    let (metrics, records) = export(&[relayed(1, 2)], false);
    assert!(
        all(&metrics).all(|m| m.name() != names::OUTBOX_RELAYED),
        "no relayed row counted with per_message off"
    );
    assert!(records.is_empty(), "a relayed row is never a record");
}

#[test]
fn outbox_failures_and_failed_commits_are_records_with_their_fields() {
    let stream: Arc<str> = "S".into();
    let events = [
        CoordinatorEvent::OutboxRelayFailed {
            outbox: OUTBOX.into(),
            attempt: 2,
            delay: Duration::from_millis(500),
            error: "connection refused".into(),
        },
        CoordinatorEvent::CheckpointCommitFailed {
            stream: stream.clone(),
            consumer: "node-a:cache".into(),
            seq: 26,
            error: "serialization failure".into(),
        },
        CoordinatorEvent::CheckpointCommitted {
            stream,
            consumer: "node-a:cache".into(),
            seq: 25,
        },
    ];
    let (_, records) = export(&events, true);
    assert_eq!(records.len(), 2, "a committed checkpoint is not a record");

    let failed = &records[0];
    assert_eq!(failed.event_name(), Some("herald.outbox_relay_failed"));
    assert_eq!(failed.severity_number(), Some(Severity::Warn));
    let text = |v: &str| AnyValue::String(v.to_string().into());
    assert_eq!(attribute(failed, names::OUTBOX), Some(&text(OUTBOX)));
    assert_eq!(attribute(failed, "herald.attempt"), Some(&AnyValue::Int(2)));
    assert_eq!(
        attribute(failed, "herald.delay"),
        Some(&AnyValue::Double(0.5))
    );
    assert_eq!(
        attribute(failed, "herald.error"),
        Some(&text("connection refused"))
    );
    assert_eq!(attribute(failed, names::MESSAGING_DESTINATION_NAME), None);

    let commit = &records[1];
    assert_eq!(commit.event_name(), Some("herald.checkpoint_commit_failed"));
    assert_eq!(commit.severity_number(), Some(Severity::Error));
    assert_eq!(attribute(commit, "herald.seq"), Some(&AnyValue::Int(26)));
    assert_eq!(
        attribute(commit, names::MESSAGING_CONSUMER_GROUP_NAME),
        Some(&text("node-a:cache"))
    );
    assert_eq!(attribute(commit, names::OUTBOX), None);
}
