//! The OpenTelemetry reporter read back through the SDK's in-memory exporters: the exact
//! instruments, values and attributes after a scripted run of the real coordinator (embedded
//! backend with fault injection) and after a scripted sequence of events; the log records; what
//! is never built; and what happens with a dead provider or a panicking logger.

#[path = "../../log/tests/support/script.rs"]
mod script;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use herald::testing::{sample_events, RecordingReporter};
use herald::{CoordinatorEvent, EventKind, Reporter, ResubscribeCause};
use herald_otel::{names, OtelReporter};
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::Key;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use script::{script, CONSUMER, STREAM};

/// Providers with in-memory exporters, and a reporter on them.
struct Telemetry {
    meters: SdkMeterProvider,
    metric_exporter: InMemoryMetricExporter,
    logs: SdkLoggerProvider,
    log_exporter: InMemoryLogExporter,
}

impl Telemetry {
    fn new() -> Self {
        let metric_exporter = InMemoryMetricExporter::default();
        let meters = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metric_exporter.clone()).build())
            .build();
        let log_exporter = InMemoryLogExporter::default();
        // Simple (synchronous) export: the test reads records right after the run.
        let logs = SdkLoggerProvider::builder()
            .with_simple_exporter(log_exporter.clone())
            .build();
        Self {
            meters,
            metric_exporter,
            logs,
            log_exporter,
        }
    }

    fn reporter(&self) -> OtelReporter {
        OtelReporter::new(&self.meters.meter_with_scope(herald_otel::scope()))
            .with_logger(self.logs.logger_with_scope(herald_otel::scope()))
    }

    /// The metrics as of now: name → metric.
    fn metrics(&self) -> Metrics {
        self.meters.force_flush().expect("flush");
        let mut exported = self
            .metric_exporter
            .get_finished_metrics()
            .expect("metrics");
        Metrics(exported.pop().expect("at least one export"))
    }

    fn records(&self) -> Vec<SdkLogRecord> {
        self.log_exporter
            .get_emitted_logs()
            .expect("logs")
            .into_iter()
            .map(|l| l.record)
            .collect()
    }
}

type Attributes = BTreeMap<String, String>;

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn to_attributes<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Attributes {
    kvs.map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect()
}

struct Metrics(ResourceMetrics);

impl Metrics {
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.all().map(|m| m.name().to_string()).collect();
        names.sort();
        names
    }

    fn all(&self) -> impl Iterator<Item = &Metric> {
        self.0.scope_metrics().flat_map(|sm| sm.metrics())
    }

    fn get(&self, name: &str) -> &Metric {
        self.all()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("no metric {name}; have {:?}", self.names()))
    }

    /// A monotonic u64 counter's points.
    fn counter(&self, name: &str) -> BTreeMap<Attributes, u64> {
        match self.get(name).data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                assert!(sum.is_monotonic(), "{name} is a counter");
                sum.data_points()
                    .map(|p| (to_attributes(p.attributes()), p.value()))
                    .collect()
            }
            other => panic!("{name} is not a u64 counter: {other:?}"),
        }
    }

    /// An i64 gauge's points.
    fn gauge(&self, name: &str) -> BTreeMap<Attributes, i64> {
        match self.get(name).data() {
            AggregatedMetrics::I64(MetricData::Gauge(gauge)) => gauge
                .data_points()
                .map(|p| (to_attributes(p.attributes()), p.value()))
                .collect(),
            other => panic!("{name} is not an i64 gauge: {other:?}"),
        }
    }

    /// An f64 histogram's points: (count, sum, bucket bounds).
    fn histogram(&self, name: &str) -> BTreeMap<Attributes, (u64, f64, Vec<f64>)> {
        match self.get(name).data() {
            AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                .data_points()
                .map(|p| {
                    (
                        to_attributes(p.attributes()),
                        (p.count(), p.sum(), p.bounds().collect()),
                    )
                })
                .collect(),
            other => panic!("{name} is not an f64 histogram: {other:?}"),
        }
    }
}

fn subscription(kvs: &[(&str, &str)]) -> Attributes {
    let mut a = attrs(&[
        (names::MESSAGING_SYSTEM, "nats"),
        (names::MESSAGING_DESTINATION_NAME, STREAM),
        (names::MESSAGING_CONSUMER_GROUP_NAME, CONSUMER),
    ]);
    a.extend(attrs(kvs));
    a
}

/// The connection status gauge's points: 1 for `current`, 0 for the other two states.
fn connection_status(current: &str) -> BTreeMap<Attributes, i64> {
    [
        names::STATE_CONNECTED,
        names::STATE_DISCONNECTED,
        names::STATE_SHUT_DOWN,
    ]
    .into_iter()
    .map(|state| {
        let point = attrs(&[
            (names::MESSAGING_SYSTEM, "nats"),
            (names::CONNECTION_STATE, state),
        ]);
        (point, i64::from(state == current))
    })
    .collect()
}

fn kind(kind: &str, stream: bool, consumer: bool) -> Attributes {
    let mut a = attrs(&[(names::MESSAGING_SYSTEM, "nats"), (names::EVENT_KIND, kind)]);
    if stream {
        a.extend(attrs(&[(names::MESSAGING_DESTINATION_NAME, STREAM)]));
    }
    if consumer {
        a.extend(attrs(&[(names::MESSAGING_CONSUMER_GROUP_NAME, CONSUMER)]));
    }
    a
}

#[tokio::test]
async fn a_scripted_run_exports_exact_instruments_values_and_attributes() {
    let telemetry = Telemetry::new();
    let c = script(telemetry.reporter()).await;
    let m = telemetry.metrics();

    let mut expected = vec![
        names::SENT_MESSAGES,
        names::CONSUMED_MESSAGES,
        names::RECONNECTS,
        names::DOWNTIME,
        names::CONNECTION_STATUS,
        names::CONSUMERS_DELETED,
        names::CONSUMERS_RECREATED,
        names::EVENTS_LOST,
        names::REPLAY_DURATION,
        names::COORDINATOR_EVENTS,
    ];
    expected.sort();
    // No heartbeat was missed, so that counter has no data and is not exported.
    assert_eq!(m.names(), expected);
    for metric in m.all() {
        assert!(!metric.description().is_empty(), "{}", metric.name());
    }
    let unit = |name: &str| m.get(name).unit().to_string();
    assert_eq!(unit(names::SENT_MESSAGES), "{message}");
    assert_eq!(unit(names::CONSUMED_MESSAGES), "{message}");
    assert_eq!(unit(names::EVENTS_LOST), "{message}");
    assert_eq!(unit(names::DOWNTIME), "s");
    assert_eq!(unit(names::REPLAY_DURATION), "s");
    assert_eq!(unit(names::CONNECTION_STATUS), "1");

    let publish = |extra: &[(&str, &str)]| {
        let mut a = attrs(&[
            (names::MESSAGING_SYSTEM, "nats"),
            (names::MESSAGING_OPERATION_NAME, "publish"),
            (names::MESSAGING_DESTINATION_NAME, STREAM),
        ]);
        a.extend(attrs(extra));
        a
    };
    assert_eq!(
        m.counter(names::SENT_MESSAGES),
        BTreeMap::from([
            (publish(&[]), 9),
            (publish(&[(names::ERROR_TYPE, "_OTHER")]), 1),
        ])
    );
    assert_eq!(
        m.counter(names::CONSUMED_MESSAGES),
        BTreeMap::from([(
            subscription(&[(names::MESSAGING_OPERATION_NAME, "receive")]),
            6
        )])
    );
    assert_eq!(
        m.counter(names::CONSUMERS_DELETED),
        BTreeMap::from([(subscription(&[]), 1)])
    );
    assert_eq!(
        m.counter(names::CONSUMERS_RECREATED),
        BTreeMap::from([(subscription(&[]), 1)])
    );
    assert_eq!(
        m.counter(names::EVENTS_LOST),
        BTreeMap::from([(subscription(&[]), 3)])
    );
    let system = attrs(&[(names::MESSAGING_SYSTEM, "nats")]);
    assert_eq!(
        m.counter(names::RECONNECTS),
        BTreeMap::from([(system.clone(), 1)])
    );

    let downtime = m.histogram(names::DOWNTIME);
    let (count, sum, bounds) = &downtime[&system];
    assert_eq!(*count, 1);
    assert!(*sum >= 0.1 && *sum < 10.0, "downtime {sum}s");
    assert_eq!(bounds.first(), Some(&0.001));
    assert_eq!(bounds.last(), Some(&600.0));
    let replays = m.histogram(names::REPLAY_DURATION);
    assert_eq!(replays.len(), 1);
    assert_eq!(replays[&subscription(&[])].0, 2, "two replays");

    assert_eq!(
        m.gauge(names::CONNECTION_STATUS),
        connection_status(names::STATE_SHUT_DOWN)
    );

    let mut events = m.counter(names::COORDINATOR_EVENTS);
    let publish_failed = events
        .remove(&kind("publish_failed", true, false))
        .expect("publish failures");
    assert!(publish_failed >= 2, "retries, then the final failure");
    // Connection events carry neither stream nor consumer, stream events the stream only,
    // subscription events both.
    let connection_kinds = [("connected", 1), ("disconnected", 1), ("reconnected", 1)];
    let stream_kinds = [("stream_ready", 1), ("shutdown", 1)];
    let subscription_kinds = [
        ("subscribed", 2),
        ("consumer_deleted", 1),
        ("resubscribing", 1),
        ("consumer_recreated", 1),
        ("replay_started", 2),
        ("replay_completed", 2),
        ("events_lost", 1),
        ("unsubscribed", 2),
    ];
    let expected: BTreeMap<Attributes, u64> = connection_kinds
        .map(|(name, n)| (kind(name, false, false), n))
        .into_iter()
        .chain(stream_kinds.map(|(name, n)| (kind(name, true, false), n)))
        .chain(subscription_kinds.map(|(name, n)| (kind(name, true, true), n)))
        .collect();
    assert_eq!(events, expected);
    // Never a subject or a sequence in a metric attribute.
    for metric in m.all() {
        let text = format!("{:?}", metric.data());
        assert!(!text.contains("SCRIPT.alerts"), "{}: {text}", metric.name());
    }

    let stats = c.reporter().stats();
    assert_eq!(stats.panics, 0);
    assert_eq!(stats.records, stats.state_changes);
    assert_eq!(c.reporter_panics(), 0);
}

fn attribute<'a>(record: &'a SdkLogRecord, key: &str) -> Option<&'a AnyValue> {
    record
        .attributes_iter()
        .find(|(k, _)| k.as_str() == key)
        .map(|(_, v)| v)
}

fn string(value: &str) -> AnyValue {
    AnyValue::String(value.to_string().into())
}

#[tokio::test]
async fn each_state_change_is_one_log_record_named_for_its_event() {
    let telemetry = Telemetry::new();
    // The state changes (every kind but the per-message ones): the reference for the records.
    let recorder = RecordingReporter::new();
    script((telemetry.reporter(), recorder.clone())).await;

    let events = recorder.events();
    let records = telemetry.records();
    assert_eq!(records.len(), events.len());
    for (record, event) in records.iter().zip(&events) {
        let name = format!("herald.{}", event.kind().name());
        assert_eq!(record.event_name(), Some(name.as_str()));
        assert_eq!(record.target().map(|t| t.as_ref()), Some("herald"));
        assert_eq!(record.body(), Some(&string(&event.to_string())));
        let expected = match event.severity() {
            herald::Severity::Error => Severity::Error,
            herald::Severity::Warn => Severity::Warn,
            herald::Severity::Info => Severity::Info,
            other => panic!("a state change at {other:?}"),
        };
        assert_eq!(record.severity_number(), Some(expected));
        assert_eq!(record.severity_text(), Some(expected.name()));
        assert!(record.timestamp().is_some());
        assert_eq!(
            attribute(record, names::MESSAGING_SYSTEM),
            Some(&string("nats"))
        );
        assert_eq!(
            attribute(record, names::EVENT_KIND),
            Some(&string(event.kind().name()))
        );
    }

    let find = |name: &str| -> Vec<&SdkLogRecord> {
        records
            .iter()
            .filter(|r| r.event_name() == Some(name))
            .collect()
    };
    let lost = find("herald.events_lost");
    assert_eq!(lost.len(), 1);
    let lost = lost[0];
    assert_eq!(lost.severity_number(), Some(Severity::Error));
    assert_eq!(
        attribute(lost, names::MESSAGING_DESTINATION_NAME),
        Some(&string(STREAM))
    );
    assert_eq!(
        attribute(lost, names::MESSAGING_CONSUMER_GROUP_NAME),
        Some(&string(CONSUMER))
    );
    assert_eq!(attribute(lost, "herald.first"), Some(&AnyValue::Int(5)));
    assert_eq!(attribute(lost, "herald.last"), Some(&AnyValue::Int(7)));
    assert_eq!(attribute(lost, "herald.count"), Some(&AnyValue::Int(3)));

    let resubscribing = find("herald.resubscribing")[0];
    assert_eq!(
        attribute(resubscribing, "herald.cause"),
        Some(&string("consumer_deleted"))
    );
    assert_eq!(
        attribute(resubscribing, "herald.attempt"),
        Some(&AnyValue::Int(1))
    );
    assert!(matches!(
        attribute(resubscribing, "herald.delay"),
        Some(AnyValue::Double(_))
    ));

    let replays: Vec<(Option<&AnyValue>, Option<&AnyValue>)> = find("herald.replay_started")
        .iter()
        .map(|r| (attribute(r, "herald.from"), attribute(r, "herald.to")))
        .collect();
    assert_eq!(
        replays,
        [
            (Some(&AnyValue::Int(4)), Some(&AnyValue::Int(4))),
            (Some(&AnyValue::Int(8)), Some(&AnyValue::Int(9))),
        ]
    );

    let reconnected = find("herald.reconnected")[0];
    assert_eq!(
        attribute(reconnected, "herald.server"),
        Some(&string("memory://embedded"))
    );
    match attribute(reconnected, "herald.downtime") {
        Some(AnyValue::Double(s)) => assert!(*s >= 0.1, "{s}"),
        other => panic!("downtime {other:?}"),
    }
    let given_up = find("herald.publish_failed");
    let last = given_up.last().expect("publish failures");
    assert_eq!(
        attribute(last, "herald.will_retry"),
        Some(&AnyValue::Boolean(false))
    );
    assert_eq!(
        attribute(last, "herald.subject"),
        Some(&string("SCRIPT.alerts.10"))
    );
}

#[tokio::test]
async fn a_scripted_sequence_feeds_every_instrument() {
    let telemetry = Telemetry::new();
    let reporter = telemetry.reporter();
    let s = || -> Arc<str> { "S".into() };
    let c = || -> Arc<str> { "n-c".into() };
    let script = [
        CoordinatorEvent::Connected {
            server: "nats://127.0.0.1:4222".into(),
        },
        CoordinatorEvent::HeartbeatMissed {
            stream: s(),
            consumer: c(),
            missed: 1,
        },
        CoordinatorEvent::HeartbeatMissed {
            stream: s(),
            consumer: c(),
            missed: 2,
        },
        CoordinatorEvent::Resubscribing {
            stream: s(),
            consumer: c(),
            attempt: 1,
            delay: Duration::from_millis(50),
            cause: ResubscribeCause::HeartbeatsMissed { missed: 2 },
        },
        CoordinatorEvent::Disconnected {
            server: "nats://127.0.0.1:4222".into(),
            cause: "connection reset".into(),
        },
        CoordinatorEvent::Reconnecting {
            attempt: 1,
            delay: Duration::from_millis(100),
        },
        CoordinatorEvent::Reconnected {
            server: "nats://127.0.0.1:4222".into(),
            downtime: Duration::from_millis(700),
        },
        CoordinatorEvent::EventsLost {
            stream: s(),
            consumer: c(),
            first: 10,
            last: 11,
        },
        CoordinatorEvent::EventsLost {
            stream: s(),
            consumer: c(),
            first: 20,
            last: 24,
        },
        CoordinatorEvent::ReplayCompleted {
            stream: s(),
            consumer: c(),
            events: 3,
            elapsed: Duration::from_millis(30),
        },
        CoordinatorEvent::Disconnected {
            server: "nats://127.0.0.1:4222".into(),
            cause: "connection reset".into(),
        },
        CoordinatorEvent::CheckpointSaved {
            stream: s(),
            consumer: c(),
            seq: 24,
        },
    ];
    for event in &script {
        if reporter.interest(event.kind()) {
            reporter.report(event);
        }
    }
    let m = telemetry.metrics();
    let group = attrs(&[
        (names::MESSAGING_SYSTEM, "nats"),
        (names::MESSAGING_DESTINATION_NAME, "S"),
        (names::MESSAGING_CONSUMER_GROUP_NAME, "n-c"),
    ]);
    assert_eq!(
        m.counter(names::HEARTBEATS_MISSED),
        BTreeMap::from([(group.clone(), 2)])
    );
    // Two gaps, seven sequences.
    assert_eq!(
        m.counter(names::EVENTS_LOST),
        BTreeMap::from([(group.clone(), 7)])
    );
    let system = attrs(&[(names::MESSAGING_SYSTEM, "nats")]);
    let (count, sum, _) = m.histogram(names::DOWNTIME)[&system].clone();
    assert_eq!((count, sum), (1, 0.7));
    let (count, sum, _) = m.histogram(names::REPLAY_DURATION)[&group].clone();
    assert_eq!((count, sum), (1, 0.03));
    assert_eq!(
        m.gauge(names::CONNECTION_STATUS),
        connection_status(names::STATE_DISCONNECTED)
    );
    let events = m.counter(names::COORDINATOR_EVENTS);
    assert_eq!(events[&kind_of("heartbeat_missed", &group)], 2);
    assert_eq!(events[&kind_of("reconnecting", &system)], 1);
    assert_eq!(events[&kind_of("disconnected", &system)], 2);
    assert_eq!(
        events.values().sum::<u64>(),
        11,
        "the checkpoint save is not a state change"
    );

    // Heartbeats missed and the resubscribe, as records too.
    let records = telemetry.records();
    assert_eq!(records.len(), 11);
    assert_eq!(
        attribute(&records[1], "herald.missed"),
        Some(&AnyValue::Int(1))
    );
    assert_eq!(
        attribute(&records[3], "herald.cause"),
        Some(&string("heartbeats_missed"))
    );
}

fn kind_of(kind: &str, base: &Attributes) -> Attributes {
    let mut a = base.clone();
    a.insert(names::EVENT_KIND.to_string(), kind.to_string());
    a
}

#[tokio::test]
async fn without_per_message_metrics_no_per_message_event_is_built() {
    let telemetry = Telemetry::new();
    let reporter = telemetry.reporter().per_message(false);
    for kind in EventKind::ALL {
        assert_eq!(reporter.interest(*kind), !kind.is_per_message(), "{kind}");
    }
    let before = herald::testing::events_built();
    let c = script(reporter).await;
    let built = herald::testing::events_built() - before;
    let stats = c.reporter().stats();
    assert_eq!(built, stats.state_changes, "only state changes were built");
    assert!(!telemetry
        .metrics()
        .names()
        .contains(&names::CONSUMED_MESSAGES.to_string()));
}

/// A logger whose every record panics, as a buggy exporter might.
struct PanickingLogger;

struct NoRecord;

impl LogRecord for NoRecord {
    fn set_event_name(&mut self, _name: &'static str) {}
    fn set_target<T>(&mut self, _target: T)
    where
        T: Into<Cow<'static, str>>,
    {
    }
    fn set_timestamp(&mut self, _timestamp: SystemTime) {}
    fn set_observed_timestamp(&mut self, _timestamp: SystemTime) {}
    fn set_severity_text(&mut self, _text: &'static str) {}
    fn set_severity_number(&mut self, _number: Severity) {}
    fn set_body(&mut self, _body: AnyValue) {}
    fn add_attributes<I, K, V>(&mut self, _attributes: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<Key>,
        V: Into<AnyValue>,
    {
    }
    fn add_attribute<K, V>(&mut self, _key: K, _value: V)
    where
        K: Into<Key>,
        V: Into<AnyValue>,
    {
    }
}

impl Logger for PanickingLogger {
    type LogRecord = NoRecord;

    fn create_log_record(&self) -> NoRecord {
        NoRecord
    }

    fn emit(&self, _record: NoRecord) {
        panic!("an exporter bug");
    }

    fn event_enabled(&self, _level: Severity, _target: &str, _name: Option<&str>) -> bool {
        true
    }
}

#[tokio::test]
async fn a_panicking_logger_is_counted_and_the_metrics_go_on() {
    let telemetry = Telemetry::new();
    let reporter = OtelReporter::new(&telemetry.meters.meter_with_scope(herald_otel::scope()))
        .with_logger(PanickingLogger);
    let recorder = RecordingReporter::everything();
    let c = script((reporter.clone(), recorder.clone())).await;

    let stats = reporter.stats();
    assert!(stats.state_changes > 10);
    assert_eq!(stats.panics, stats.state_changes, "every record panicked");
    assert_eq!(stats.records, 0);
    assert_eq!(c.reporter_panics(), 0, "contained in the reporter");
    // The metrics were recorded before each panic, and the recorder next to it saw everything.
    assert_eq!(
        telemetry
            .metrics()
            .counter(names::EVENTS_LOST)
            .values()
            .sum::<u64>(),
        3
    );
    assert!(recorder.events().len() as u64 > stats.state_changes);
}

#[tokio::test]
async fn providers_that_have_shut_down_never_stop_the_coordinator() {
    let telemetry = Telemetry::new();
    telemetry.meters.shutdown().expect("shutdown");
    telemetry.logs.shutdown().expect("shutdown");
    // Meters and loggers from shut-down providers, as an application tearing down too early
    // would hand over.
    let reporter = telemetry.reporter();
    let c = script(reporter.clone()).await;

    assert_eq!(c.reporter_panics(), 0);
    let stats = reporter.stats();
    assert_eq!(stats.panics, 0);
    assert!(
        stats.state_changes > 10,
        "the reporter kept working: {stats:?}"
    );
    assert!(telemetry
        .log_exporter
        .get_emitted_logs()
        .expect("logs")
        .is_empty());
}

#[test]
fn every_state_change_kind_is_a_record_with_its_own_attributes() {
    let events = sample_events();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, EventKind::ALL);

    let telemetry = Telemetry::new();
    let reporter = telemetry.reporter();
    for event in &events {
        if reporter.interest(event.kind()) {
            reporter.report(event);
        }
    }
    let records = telemetry.records();
    let state_changes: Vec<&CoordinatorEvent> = events
        .iter()
        .filter(|e| !e.kind().is_per_message())
        .collect();
    assert_eq!(records.len(), state_changes.len());
    for (record, event) in records.iter().zip(state_changes) {
        let keys: Vec<&str> = record.attributes_iter().map(|(k, _)| k.as_str()).collect();
        // Written out per kind: the generic fallback (for kinds newer than the crate) would
        // repeat the stream and consumer as herald.stream and herald.consumer.
        assert!(
            !keys.contains(&"herald.stream") && !keys.contains(&"herald.consumer"),
            "{}: {keys:?}",
            event.kind()
        );
        assert_eq!(
            keys.contains(&names::MESSAGING_CONSUMER_GROUP_NAME),
            event.consumer().is_some(),
            "{}",
            event.kind()
        );
    }
    let by_name = |name: &str| {
        records
            .iter()
            .find(|r| r.event_name() == Some(name))
            .unwrap_or_else(|| panic!("{name}"))
    };
    let gap = by_name("herald.resubscribing");
    assert_eq!(
        attribute(gap, "herald.cause"),
        Some(&string("sequence_gap"))
    );
    assert_eq!(
        attribute(gap, "herald.detail"),
        Some(&string("consumer sequence gap (expected 4, received 9)"))
    );
    assert_eq!(attribute(gap, "herald.delay"), Some(&AnyValue::Double(0.4)));
    let ready = by_name("herald.stream_ready");
    assert_eq!(
        attribute(ready, "herald.max_msgs"),
        Some(&AnyValue::Int(1000))
    );
    assert_eq!(attribute(ready, "herald.max_bytes"), None);
    assert_eq!(
        attribute(ready, "herald.max_age"),
        Some(&AnyValue::Double(60.0))
    );
    let failed = by_name("herald.checkpoint_failed");
    assert_eq!(failed.severity_number(), Some(Severity::Error));
    assert_eq!(
        attribute(failed, "herald.error"),
        Some(&string("disk full"))
    );
    assert_eq!(attribute(failed, "herald.seq"), Some(&AnyValue::Int(21)));
}
