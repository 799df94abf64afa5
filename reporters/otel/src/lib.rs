//! A [Herald](herald) reporter that exports coordinator events through OpenTelemetry: metrics
//! for everything, a log record for each state change.
//!
//! - [`OtelReporter`]: the reporter. Give it a [`Meter`](opentelemetry::metrics::Meter) and,
//!   for discrete events, a [`Logger`](opentelemetry::logs::Logger), from whatever providers and
//!   exporters you run. It depends on the `opentelemetry` API crate only and never installs a
//!   global provider.
//! - [`names`]: every instrument name, attribute key and value it uses.
//! - [`scope`]: the instrumentation scope to get the meter and logger with.
//! - [`OtelStats`]: what the reporter did, from its side.
//!
//! # Usage
//!
//! ```
//! use herald::Coordinator;
//! use herald_otel::OtelReporter;
//! use opentelemetry::logs::LoggerProvider;
//! use opentelemetry::metrics::MeterProvider;
//! use opentelemetry_sdk::logs::{InMemoryLogExporter, SdkLoggerProvider};
//! use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> herald::Result<()> {
//! // Your providers and exporters (OTLP, stdout, Prometheus, ...); in-memory here.
//! let meters = SdkMeterProvider::builder()
//!     .with_reader(PeriodicReader::builder(InMemoryMetricExporter::default()).build())
//!     .build();
//! let logs = SdkLoggerProvider::builder()
//!     .with_batch_exporter(InMemoryLogExporter::default())
//!     .build();
//!
//! let reporter = OtelReporter::new(&meters.meter_with_scope(herald_otel::scope()))
//!     .with_logger(logs.logger_with_scope(herald_otel::scope()));
//! let coordinator = Coordinator::builder().reporter(reporter).connect().await?;
//! # Ok(()) }
//! ```
//!
//! # Metrics
//!
//! Where an OpenTelemetry messaging semantic convention applies, it is followed; Herald's own
//! instruments cover the rest. Every instrument carries `messaging.system = "nats"` (the
//! embedded backend stands in for NATS and reports as it).
//!
//! | instrument | type | unit | attributes | from |
//! |---|---|---|---|---|
//! | `messaging.client.sent.messages` | counter | `{message}` | `messaging.operation.name = "publish"`, `messaging.destination.name`, `error.type` when the publish failed for good | `Published`, `PublishFailed` without retry |
//! | `messaging.client.consumed.messages` | counter | `{message}` | `messaging.operation.name = "receive"`, `messaging.destination.name`, `messaging.consumer.group.name` | `Delivered` |
//! | `herald.connection.reconnects` | counter | `{reconnect}` | | `Reconnected` |
//! | `herald.connection.downtime` | histogram | `s` | | `Reconnected { downtime }` |
//! | `herald.connection.status` | gauge | `1` | `herald.connection.state` = `connected`, `disconnected`, `shut_down` | 1 for the current state, 0 for the others |
//! | `herald.consumer.heartbeats_missed` | counter | `{heartbeat}` | destination, consumer group | `HeartbeatMissed` |
//! | `herald.consumer.deleted` | counter | `{consumer}` | destination, consumer group | `ConsumerDeleted` |
//! | `herald.consumer.recreated` | counter | `{consumer}` | destination, consumer group | `ConsumerRecreated` |
//! | `herald.consumer.events_lost` | counter | `{message}` | destination, consumer group | `EventsLost`: the number of sequences, `last - first + 1`, not the number of gaps |
//! | `herald.consumer.replay.duration` | histogram | `s` | destination, consumer group | `ReplayCompleted { elapsed }` |
//! | `herald.outbox.relayed` | counter | `{row}` | `herald.outbox` | `OutboxRelayed` (per row, duplicates included) |
//! | `herald.outbox.relay.lag` | histogram | `s` | `herald.outbox` | `OutboxRelayed { lag }`: commit to acknowledgement |
//! | `herald.outbox.pending` | gauge | `{row}` | `herald.outbox` | `OutboxBacklog { pending }`: the backlog at the relay's last non-empty read |
//! | `herald.outbox.oldest_age` | gauge | `s` | `herald.outbox` | `OutboxBacklog { oldest_age }` |
//! | `herald.outbox.relay_failures` | counter | `{failure}` | `herald.outbox` | `OutboxRelayFailed` |
//! | `herald.coordinator.events` | counter | `{event}` | `herald.event.kind`, destination, consumer group and `herald.outbox` when the event has them | every state-change event |
//!
//! The destination is the stream and the consumer group is the subscription's consumer.
//! Attributes are low-cardinality by construction: never a subject, a sequence or an error
//! text. Instruments are created once, in [`OtelReporter::new`]; attribute sets that do not
//! depend on the event are built once too.
//!
//! # Events as log records
//!
//! Each state-change event (every kind but the per-message ones) is also exported as a log
//! record when a logger is given: event name `herald.<kind>` (`herald.events_lost`), target
//! `herald`, severity from the event's (`ERROR` for loss and deletion, `WARN` for churn, `INFO`
//! for lifecycle), the event's sentence as the body, and its fields as attributes:
//! `messaging.system`, `messaging.destination.name` (the stream),
//! `messaging.consumer.group.name` (the consumer), `herald.outbox` (the outbox),
//! `herald.event.kind`, and `herald.<field>`
//! for the rest (`herald.first`, `herald.last`, `herald.count`, `herald.attempt`,
//! `herald.cause`, ...; durations in seconds as doubles). A record is one occurrence, not a
//! series, so its attributes may include sequences and subjects.
//!
//! Why log records, not span events: OpenTelemetry now models a discrete event as a log record
//! whose EventName names it (the separate Events API was folded into the Logs API, and span
//! events are being retired in favour of such records). And a coordinator's state changes have
//! no enclosing span: a reconnect or a lost range happens between requests, so a span event
//! would need an artificial long-lived span, which backends show badly and never end. When a
//! record is emitted inside an active span, the SDK still attaches that span's context.
//!
//! # Cost
//!
//! The per-message kinds cost one counter update each (about 100–200 ns with the SDK; a relayed
//! outbox row also one histogram record; turn them off with [`OtelReporter::per_message`]).
//! Checkpoint saves and commits are never built. State
//! changes are rare; they cost a few counter updates and, with a logger, one record.
//!
//! # Failures
//!
//! The reporter never panics into the coordinator and never blocks it (beyond what the SDK
//! does: prefer batching processors and periodic readers). A panic from the SDK, an exporter
//! or a custom logger is caught and counted in [`OtelReporter::stats`]. The OpenTelemetry API
//! reports no errors to its callers: after a provider shuts down its instruments record into
//! nothing, and the SDK says so through its own internal logs.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is the workspace's (`rust-version` in `Cargo.toml`).

mod metrics;
pub mod names;
mod records;
mod reporter;

pub use reporter::{OtelReporter, OtelStats};

/// The instrumentation scope of this crate (name `herald`, with this crate's version): get the
/// meter and the logger with it, so the exported data says where it comes from.
///
/// ```
/// use opentelemetry::metrics::MeterProvider;
/// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let meter = provider.meter_with_scope(herald_otel::scope());
/// assert_eq!(herald_otel::scope().name(), "herald");
/// ```
pub fn scope() -> opentelemetry::InstrumentationScope {
    opentelemetry::InstrumentationScope::builder(names::TARGET)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
