//! One `tracing` event per [`CoordinatorEvent`], with the event's fields as structured fields.
//!
//! `tracing` needs field names and the level at compile time, so each variant has its own
//! call site, generated from one line of the table in [`emit`]: no serialisation, no allocation
//! beyond what the subscriber does. The per-message kinds (`Delivered`, `Published`) go through
//! the same explicit match, which makes them as cheap as a hand-written `tracing::trace!`.
//!
//! Field conventions, the same for every kind:
//!
//! - `kind`: the [`EventKind`](herald::EventKind) name (`events_lost`), on every event;
//! - names (`stream`, `consumer`, `subject`, `server`, `filter`, `outbox`) as strings;
//! - sequences and counts as integers, flags as booleans;
//! - durations in milliseconds as floats, the unit in the name: `delay_ms`, `downtime_ms`,
//!   `elapsed_ms`, `max_age_ms`, `lag_ms`, `oldest_age_ms`;
//! - errors as `error`; the message is the event's `Display` sentence.

use std::time::Duration;

use herald::{CoordinatorEvent, Severity};

/// The target of every event: filter with `herald=info`, `herald=warn`, ...
pub(crate) const TARGET: &str = "herald";

/// `tracing::event!` at a level chosen at run time: one call site per level.
macro_rules! event_at {
    ($severity:expr, $($rest:tt)+) => {
        match $severity {
            Severity::Trace => ::tracing::event!(target: TARGET, ::tracing::Level::TRACE, $($rest)+),
            Severity::Debug => ::tracing::event!(target: TARGET, ::tracing::Level::DEBUG, $($rest)+),
            Severity::Info => ::tracing::event!(target: TARGET, ::tracing::Level::INFO, $($rest)+),
            Severity::Warn => ::tracing::event!(target: TARGET, ::tracing::Level::WARN, $($rest)+),
            Severity::Error => ::tracing::event!(target: TARGET, ::tracing::Level::ERROR, $($rest)+),
        }
    };
}

/// Milliseconds, rounded once (`0.026`, not `0.026080000000000002`).
fn ms(d: &Duration) -> f64 {
    d.as_nanos() as f64 / 1_000_000.0
}

/// One `tracing` call site per kind: `Variant { bindings } => [fields]` lists the variant's
/// fields to bind and the `tracing` fields to record, in order. Every event also gets `kind`
/// first and its sentence as the message; a kind newer than this crate gets [`emit_serialized`].
macro_rules! emit_by_kind {
    ($event:ident, $severity:ident, $name:ident;
     $($variant:ident { $($binding:ident),* } => [$($field:tt)*])*) => {
        match $event {
            $(CoordinatorEvent::$variant { $($binding),* } => {
                event_at!($severity, kind = $name, $($field)*, "{}", $event)
            })*
            _ => emit_serialized($event, $severity, $name),
        }
    };
}

/// Emits `event` as a `tracing` event at its severity, target `herald`.
pub(crate) fn emit(event: &CoordinatorEvent) {
    let kind = event.kind();
    let severity = kind.severity();
    let name = kind.name();
    emit_by_kind! { event, severity, name;
        // The per-message kinds first: they are the hot path.
        Delivered { stream, consumer, seq }
            => [stream = &**stream, consumer = &**consumer, seq = *seq]
        Published { stream, subject, seq, duplicate }
            => [stream = &**stream, subject = &**subject, seq = *seq, duplicate = *duplicate]
        CheckpointSaved { stream, consumer, seq }
            => [stream = &**stream, consumer = &**consumer, seq = *seq]
        OutboxRelayed { outbox, row, seq, duplicate, lag }
            => [
                outbox = &**outbox,
                row = *row,
                seq = *seq,
                duplicate = *duplicate,
                lag_ms = ms(lag)
            ]
        CheckpointCommitted { stream, consumer, seq }
            => [stream = &**stream, consumer = &**consumer, seq = *seq]
        Connected { server } => [server = &**server]
        Disconnected { server, cause } => [server = &**server, cause = &**cause]
        Reconnecting { attempt, delay } => [attempt = *attempt, delay_ms = ms(delay)]
        Reconnected { server, downtime }
            => [server = &**server, downtime_ms = ms(downtime)]
        LameDuck { server } => [server = &**server]
        SlowConsumer { sid } => [sid = *sid]
        // `message` is the formatted sentence's field in `tracing`: the server's text is the
        // error.
        ServerError { message } => [error = &**message]
        StreamReady { stream, created, max_age, max_msgs, max_bytes, first_seq, last_seq }
            => [
                stream = &**stream,
                created = *created,
                max_age_ms = ms(max_age),
                max_msgs = *max_msgs,
                max_bytes = *max_bytes,
                first_seq = *first_seq,
                last_seq = *last_seq
            ]
        Subscribed { stream, consumer, filter, start, checkpoint }
            => [
                stream = &**stream,
                consumer = &**consumer,
                filter = &**filter,
                start = %start,
                checkpoint = *checkpoint
            ]
        HeartbeatMissed { stream, consumer, missed }
            => [stream = &**stream, consumer = &**consumer, missed = *missed]
        ConsumerDeleted { stream, consumer } => [stream = &**stream, consumer = &**consumer]
        Resubscribing { stream, consumer, attempt, delay, cause }
            => [
                stream = &**stream,
                consumer = &**consumer,
                attempt = *attempt,
                delay_ms = ms(delay),
                cause = cause.name(),
                detail = %cause
            ]
        ConsumerRecreated { stream, consumer, resume_from }
            => [stream = &**stream, consumer = &**consumer, resume_from = *resume_from]
        ReplayStarted { stream, consumer, from, to }
            => [stream = &**stream, consumer = &**consumer, from = *from, to = *to]
        ReplayCompleted { stream, consumer, events, elapsed }
            => [
                stream = &**stream,
                consumer = &**consumer,
                events = *events,
                elapsed_ms = ms(elapsed)
            ]
        EventsLost { stream, consumer, first, last }
            => [
                stream = &**stream,
                consumer = &**consumer,
                first = *first,
                last = *last,
                count = event.lost_count()
            ]
        StreamReset { stream, consumer, position, last_seq }
            => [
                stream = &**stream,
                consumer = &**consumer,
                position = *position,
                last_seq = *last_seq
            ]
        CheckpointFailed { stream, consumer, seq, error }
            => [stream = &**stream, consumer = &**consumer, seq = *seq, error = &**error]
        Unsubscribed { stream, consumer, last_processed }
            => [stream = &**stream, consumer = &**consumer, last_processed = *last_processed]
        PublishFailed { stream, subject, attempt, will_retry, error }
            => [
                stream = &**stream,
                subject = &**subject,
                attempt = *attempt,
                will_retry = *will_retry,
                error = &**error
            ]
        DecodeFailed { stream, consumer, seq, error }
            => [stream = &**stream, consumer = &**consumer, seq = *seq, error = &**error]
        Shutdown { stream, subscriptions }
            => [stream = &**stream, subscriptions = *subscriptions]
        OutboxBacklog { outbox, pending, oldest_age }
            => [outbox = &**outbox, pending = *pending, oldest_age_ms = ms(oldest_age)]
        OutboxRelayFailed { outbox, attempt, delay, error }
            => [
                outbox = &**outbox,
                attempt = *attempt,
                delay_ms = ms(delay),
                error = &**error
            ]
        CheckpointCommitFailed { stream, consumer, seq, error }
            => [stream = &**stream, consumer = &**consumer, seq = *seq, error = &**error]
    }
}

/// A kind newer than this crate: its fields as one JSON object, still queryable.
#[cold]
fn emit_serialized(event: &CoordinatorEvent, severity: Severity, name: &str) {
    let fields = serde_json::to_string(event).unwrap_or_default();
    event_at!(severity, kind = name, fields = fields.as_str(), "{event}")
}
