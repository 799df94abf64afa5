//! [`OtelReporter`]: metrics for every event, a log record for every state change.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use herald::{CoordinatorEvent, EventKind, Reporter};
use opentelemetry::logs::Logger;
use opentelemetry::metrics::Meter;

use crate::metrics::Instruments;
use crate::records::{LoggerSink, RecordSink};

/// A [`Reporter`] that exports coordinator events through the OpenTelemetry API.
///
/// - **Metrics**, from the [`Meter`] you give it: the messaging semantic conventions'
///   `messaging.client.sent.messages` and `messaging.client.consumed.messages`, and Herald's
///   own instruments for reconnects, downtime, connection state, missed heartbeats, deleted and
///   recreated consumers, events lost, replay duration and every state change by kind. See the
///   [crate docs](crate#metrics) and [`names`](crate::names).
/// - **Log records**, from the [`Logger`] you give it with
///   [`with_logger`](Self::with_logger): one per state-change event, its event name naming the
///   event (`herald.events_lost`) and its fields as attributes. See the
///   [crate docs](crate#events-as-log-records).
///
/// The reporter never installs or reads a global provider: it uses what you hand it, from
/// whatever provider and exporter you run. Instruments are created once, here.
///
/// Clones share the instruments, the logger and the [`stats`](Self::stats).
///
/// ```
/// use herald::Coordinator;
/// use herald_otel::OtelReporter;
/// use opentelemetry::metrics::MeterProvider;
/// use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> herald::Result<()> {
/// let exporter = InMemoryMetricExporter::default();
/// let provider = SdkMeterProvider::builder()
///     .with_reader(PeriodicReader::builder(exporter.clone()).build())
///     .build();
/// let meter = provider.meter_with_scope(herald_otel::scope());
///
/// let coordinator = Coordinator::builder()
///     .reporter(OtelReporter::new(&meter))
///     .connect()
///     .await?;
/// coordinator.publish("alerts.1", "changed").await?;
///
/// provider.force_flush().expect("flush");
/// let metrics = exporter.get_finished_metrics().expect("metrics");
/// let names: Vec<String> = metrics
///     .iter()
///     .flat_map(|rm| rm.scope_metrics())
///     .flat_map(|sm| sm.metrics())
///     .map(|m| m.name().to_string())
///     .collect();
/// assert!(names.contains(&"messaging.client.sent.messages".to_string()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OtelReporter {
    instruments: Arc<Instruments>,
    records: Option<Arc<dyn RecordSink>>,
    per_message: bool,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    state_changes: AtomicU64,
    records: AtomicU64,
    records_declined: AtomicU64,
    panics: AtomicU64,
}

/// What an [`OtelReporter`] did, for the people who run it; see [`OtelReporter::stats`].
///
/// ```
/// use herald::{CoordinatorEvent, Reporter};
/// use opentelemetry::metrics::MeterProvider;
/// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let reporter = herald_otel::OtelReporter::new(&provider.meter("herald"));
/// reporter.report(&CoordinatorEvent::Connected { server: "memory://embedded".into() });
/// let stats = reporter.stats();
/// assert_eq!(stats.state_changes, 1);
/// assert_eq!(stats.records, 0); // no logger given
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OtelStats {
    /// State-change events recorded (every kind but the per-message ones, which are counted by
    /// the messaging counters themselves).
    pub state_changes: u64,
    /// Log records handed to the logger.
    pub records: u64,
    /// Records the logger declined through `Logger::event_enabled` (its filter, or a provider
    /// without processors); they were never built.
    pub records_declined: u64,
    /// Panics caught while recording or emitting (from the SDK, an exporter or a custom
    /// `Logger`). The coordinator and the other reporters went on.
    pub panics: u64,
}

impl OtelReporter {
    /// A reporter recording metrics on `meter`; every instrument is created now.
    ///
    /// Get the meter from your provider, ideally with [`scope`](crate::scope) so the data says
    /// where it comes from: `provider.meter_with_scope(herald_otel::scope())`.
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider;
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let reporter = herald_otel::OtelReporter::new(&provider.meter_with_scope(herald_otel::scope()));
    /// ```
    pub fn new(meter: &Meter) -> Self {
        Self {
            instruments: Arc::new(Instruments::new(meter)),
            records: None,
            per_message: true,
            counters: Arc::default(),
        }
    }

    /// Also exports each state-change event as a log record through `logger`.
    ///
    /// Use a logger whose provider batches (`with_batch_exporter`): a simple processor exports
    /// on the coordinator's task, while it reports.
    ///
    /// ```
    /// use opentelemetry::logs::LoggerProvider;
    /// use opentelemetry::metrics::MeterProvider;
    /// use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
    /// let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let logs = SdkLoggerProvider::builder()
    ///     .with_batch_exporter(InMemoryLogExporter::default())
    ///     .build();
    /// let reporter = herald_otel::OtelReporter::new(&meters.meter_with_scope(herald_otel::scope()))
    ///     .with_logger(logs.logger_with_scope(herald_otel::scope()));
    /// ```
    pub fn with_logger<L>(mut self, logger: L) -> Self
    where
        L: Logger + Send + Sync + 'static,
    {
        self.records = Some(Arc::new(LoggerSink(logger)));
        self
    }

    /// Whether to count every message in `messaging.client.sent.messages` and
    /// `messaging.client.consumed.messages`, and every relayed outbox row in
    /// `herald.outbox.relayed` and `herald.outbox.relay.lag` (default `true`). Each costs one
    /// counter update per message (about 100–200 ns with the SDK); turn it off to leave the
    /// per-message events unbuilt and keep only the state changes.
    ///
    /// ```
    /// use herald::{EventKind, Reporter};
    /// use opentelemetry::metrics::MeterProvider;
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let reporter = herald_otel::OtelReporter::new(&provider.meter("herald")).per_message(false);
    /// assert!(!reporter.interest(EventKind::Delivered));
    /// assert!(reporter.interest(EventKind::EventsLost));
    /// ```
    pub fn per_message(mut self, enabled: bool) -> Self {
        self.per_message = enabled;
        self
    }

    /// What the reporter did so far.
    ///
    /// The OpenTelemetry API reports no errors to its callers: a measurement on a meter whose
    /// provider has shut down, or a record for an exporter that fails, is dropped by the SDK
    /// (which says so through its own internal logs, target `opentelemetry_sdk`). These counts
    /// are what the reporter can see from its side; compare them with what arrives at your
    /// backend.
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider;
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let reporter = herald_otel::OtelReporter::new(&provider.meter("herald"));
    /// assert_eq!(reporter.stats().panics, 0);
    /// ```
    pub fn stats(&self) -> OtelStats {
        let c = &self.counters;
        OtelStats {
            state_changes: c.state_changes.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            records_declined: c.records_declined.load(Ordering::Relaxed),
            panics: c.panics.load(Ordering::Relaxed),
        }
    }

    fn export(&self, event: &CoordinatorEvent) {
        self.instruments.record(event);
        if event.kind().is_per_message() {
            return;
        }
        self.counters.state_changes.fetch_add(1, Ordering::Relaxed);
        if let Some(records) = &self.records {
            let counter = if records.emit(event) {
                &self.counters.records
            } else {
                &self.counters.records_declined
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Reporter for OtelReporter {
    #[inline]
    fn interest(&self, kind: EventKind) -> bool {
        match kind {
            EventKind::Published | EventKind::Delivered | EventKind::OutboxRelayed => {
                self.per_message
            }
            // Per-message kinds without an instrument (checkpoint saves and commits) are never
            // built.
            _ => !kind.is_per_message(),
        }
    }

    fn report(&self, event: &CoordinatorEvent) {
        if catch_unwind(AssertUnwindSafe(|| self.export(event))).is_err() {
            self.counters.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for OtelReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelReporter")
            .field("records", &self.records.is_some())
            .field("per_message", &self.per_message)
            .field("stats", &self.stats())
            .finish()
    }
}
