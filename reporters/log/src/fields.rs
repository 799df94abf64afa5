//! One `tracing` event per [`CoordinatorEvent`], with the event's fields as structured fields.
//!
//! `tracing` needs field names and the level at compile time, so each variant has its own
//! call site, written out: no serialisation, no allocation beyond what the subscriber does. The
//! per-message kinds (`Delivered`, `Published`) go through the same explicit match, which makes
//! them as cheap as a hand-written `tracing::trace!`.
//!
//! Field conventions, the same for every kind:
//!
//! - `kind`: the [`EventKind`](herald::EventKind) name (`events_lost`), on every event;
//! - names (`stream`, `consumer`, `subject`, `server`, `filter`) as strings;
//! - sequences and counts as integers, flags as booleans;
//! - durations in milliseconds as floats, the unit in the name: `delay_ms`, `downtime_ms`,
//!   `elapsed_ms`, `max_age_ms`;
//! - errors as `error`; the message is the event's `Display` sentence.

use std::time::Duration;

use herald::{CoordinatorEvent, ResubscribeCause, Severity};

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

/// The cause's stable name, as in its serialised form.
pub(crate) fn cause_name(cause: &ResubscribeCause) -> &'static str {
    match cause {
        ResubscribeCause::HeartbeatsMissed { .. } => "heartbeats_missed",
        ResubscribeCause::ConsumerDeleted => "consumer_deleted",
        ResubscribeCause::SequenceGap { .. } => "sequence_gap",
        ResubscribeCause::Disconnected => "disconnected",
        ResubscribeCause::RetryFailed { .. } => "retry_failed",
        ResubscribeCause::Fault { .. } => "fault",
        _ => "other",
    }
}

/// Emits `event` as a `tracing` event at its severity, target `herald`.
pub(crate) fn emit(event: &CoordinatorEvent) {
    let kind = event.kind();
    let severity = kind.severity();
    let name = kind.name();
    match event {
        // The per-message kinds first: they are the hot path.
        CoordinatorEvent::Delivered {
            stream,
            consumer,
            seq,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            seq = *seq,
            "{event}"
        ),
        CoordinatorEvent::Published {
            stream,
            subject,
            seq,
            duplicate,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            subject = &**subject,
            seq = *seq,
            duplicate = *duplicate,
            "{event}"
        ),
        CoordinatorEvent::CheckpointSaved {
            stream,
            consumer,
            seq,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            seq = *seq,
            "{event}"
        ),
        CoordinatorEvent::Connected { server } => {
            event_at!(severity, kind = name, server = &**server, "{event}")
        }
        CoordinatorEvent::Disconnected { server, cause } => event_at!(
            severity,
            kind = name,
            server = &**server,
            cause = &**cause,
            "{event}"
        ),
        CoordinatorEvent::Reconnecting { attempt, delay } => event_at!(
            severity,
            kind = name,
            attempt = *attempt,
            delay_ms = ms(delay),
            "{event}"
        ),
        CoordinatorEvent::Reconnected { server, downtime } => event_at!(
            severity,
            kind = name,
            server = &**server,
            downtime_ms = ms(downtime),
            "{event}"
        ),
        CoordinatorEvent::LameDuck { server } => {
            event_at!(severity, kind = name, server = &**server, "{event}")
        }
        CoordinatorEvent::SlowConsumer { sid } => {
            event_at!(severity, kind = name, sid = *sid, "{event}")
        }
        CoordinatorEvent::ServerError { message } => {
            // `message` is the formatted sentence's field in `tracing`: the server's text is the
            // error.
            event_at!(severity, kind = name, error = &**message, "{event}")
        }
        CoordinatorEvent::StreamReady {
            stream,
            created,
            max_age,
            max_msgs,
            max_bytes,
            first_seq,
            last_seq,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            created = *created,
            max_age_ms = ms(max_age),
            max_msgs = *max_msgs,
            max_bytes = *max_bytes,
            first_seq = *first_seq,
            last_seq = *last_seq,
            "{event}"
        ),
        CoordinatorEvent::Subscribed {
            stream,
            consumer,
            filter,
            start,
            checkpoint,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            filter = &**filter,
            start = %start,
            checkpoint = *checkpoint,
            "{event}"
        ),
        CoordinatorEvent::HeartbeatMissed {
            stream,
            consumer,
            missed,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            missed = *missed,
            "{event}"
        ),
        CoordinatorEvent::ConsumerDeleted { stream, consumer } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            "{event}"
        ),
        CoordinatorEvent::Resubscribing {
            stream,
            consumer,
            attempt,
            delay,
            cause,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            attempt = *attempt,
            delay_ms = ms(delay),
            cause = cause_name(cause),
            detail = %cause,
            "{event}"
        ),
        CoordinatorEvent::ConsumerRecreated {
            stream,
            consumer,
            resume_from,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            resume_from = *resume_from,
            "{event}"
        ),
        CoordinatorEvent::ReplayStarted {
            stream,
            consumer,
            from,
            to,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            from = *from,
            to = *to,
            "{event}"
        ),
        CoordinatorEvent::ReplayCompleted {
            stream,
            consumer,
            events,
            elapsed,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            events = *events,
            elapsed_ms = ms(elapsed),
            "{event}"
        ),
        CoordinatorEvent::EventsLost {
            stream,
            consumer,
            first,
            last,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            first = *first,
            last = *last,
            count = last.saturating_sub(*first).saturating_add(1),
            "{event}"
        ),
        CoordinatorEvent::StreamReset {
            stream,
            consumer,
            position,
            last_seq,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            position = *position,
            last_seq = *last_seq,
            "{event}"
        ),
        CoordinatorEvent::CheckpointFailed {
            stream,
            consumer,
            seq,
            error,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            seq = *seq,
            error = &**error,
            "{event}"
        ),
        CoordinatorEvent::Unsubscribed {
            stream,
            consumer,
            last_processed,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            last_processed = *last_processed,
            "{event}"
        ),
        CoordinatorEvent::PublishFailed {
            stream,
            subject,
            attempt,
            will_retry,
            error,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            subject = &**subject,
            attempt = *attempt,
            will_retry = *will_retry,
            error = &**error,
            "{event}"
        ),
        CoordinatorEvent::DecodeFailed {
            stream,
            consumer,
            seq,
            error,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            consumer = &**consumer,
            seq = *seq,
            error = &**error,
            "{event}"
        ),
        CoordinatorEvent::Shutdown {
            stream,
            subscriptions,
        } => event_at!(
            severity,
            kind = name,
            stream = &**stream,
            subscriptions = *subscriptions,
            "{event}"
        ),
        // A kind newer than this crate: its fields as one JSON object, still queryable.
        _ => {
            let fields = serde_json::to_string(event).unwrap_or_default();
            event_at!(severity, kind = name, fields = fields.as_str(), "{event}")
        }
    }
}
