//! State-change events as OpenTelemetry log records whose event name names the event.
//!
//! A record carries: event name `herald.<kind>` (`herald.events_lost`), target `herald`, the
//! event's severity, the `Display` sentence as its body, and the event's fields as attributes.
//! Records are not metrics: their attributes may be high-cardinality (sequences, subjects,
//! errors), because each record is one occurrence, not a series.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use herald::{CoordinatorEvent, EventKind};
use opentelemetry::logs::{AnyValue, LogRecord, Logger, Severity};
use opentelemetry::StringValue;

use crate::names::{
    EVENT_KIND, MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME, MESSAGING_SYSTEM,
    OUTBOX, SYSTEM_NATS, TARGET,
};

/// Where the reporter sends records: any `Logger`, behind one object-safe method so that the
/// reporter's type does not depend on the logger's.
pub(crate) trait RecordSink: Send + Sync {
    /// Emits `event` as a record; false when the logger declined it (`event_enabled`).
    fn emit(&self, event: &CoordinatorEvent) -> bool;
}

pub(crate) struct LoggerSink<L>(pub(crate) L);

impl<L> RecordSink for LoggerSink<L>
where
    L: Logger + Send + Sync,
{
    fn emit(&self, event: &CoordinatorEvent) -> bool {
        let kind = event.kind();
        let name = event_name(kind);
        let severity = severity(kind);
        if !self.0.event_enabled(severity, TARGET, Some(name)) {
            return false;
        }
        let mut record = self.0.create_log_record();
        record.set_event_name(name);
        record.set_target(TARGET);
        record.set_timestamp(SystemTime::now());
        record.set_severity_number(severity);
        record.set_severity_text(severity.name());
        record.set_body(AnyValue::from(event.to_string()));
        add_attributes(&mut record, event);
        self.0.emit(record);
        true
    }
}

/// The record's event name for `kind`: `herald.<kind name>`.
///
/// `LogRecord::set_event_name` takes a `&'static str`; the names are built once per process
/// from [`EventKind::ALL`], so a kind added to Herald gets its name without a change here.
pub(crate) fn event_name(kind: EventKind) -> &'static str {
    static NAMES: OnceLock<[&'static str; EventKind::COUNT]> = OnceLock::new();
    NAMES.get_or_init(|| {
        std::array::from_fn(|i| {
            let name = format!("{TARGET}.{}", EventKind::ALL[i].name());
            &*Box::leak(name.into_boxed_str())
        })
    })[kind.index()]
}

/// The OpenTelemetry severity of events of `kind`.
pub(crate) fn severity(kind: EventKind) -> Severity {
    match kind.severity() {
        herald::Severity::Trace => Severity::Trace,
        herald::Severity::Debug => Severity::Debug,
        herald::Severity::Info => Severity::Info,
        herald::Severity::Warn => Severity::Warn,
        herald::Severity::Error => Severity::Error,
    }
}

fn int(v: u64) -> AnyValue {
    AnyValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

fn seconds(d: &Duration) -> AnyValue {
    AnyValue::Double(d.as_secs_f64())
}

fn text(s: &Arc<str>) -> AnyValue {
    AnyValue::String(StringValue::from(s.clone()))
}

/// The event's fields: the messaging conventions for the system, the stream and the consumer,
/// `herald.<field>` for the rest. Durations are in seconds (doubles), sequences and counts are
/// integers.
fn add_attributes<R: LogRecord>(record: &mut R, event: &CoordinatorEvent) {
    record.add_attribute(MESSAGING_SYSTEM, SYSTEM_NATS);
    record.add_attribute(EVENT_KIND, event.kind().name());
    if let Some(stream) = event.stream() {
        record.add_attribute(MESSAGING_DESTINATION_NAME, text(stream));
    }
    if let Some(consumer) = event.consumer() {
        record.add_attribute(MESSAGING_CONSUMER_GROUP_NAME, text(consumer));
    }
    if let Some(outbox) = event.outbox() {
        record.add_attribute(OUTBOX, text(outbox));
    }
    match event {
        CoordinatorEvent::Connected { server } | CoordinatorEvent::LameDuck { server } => {
            record.add_attribute("herald.server", text(server));
        }
        CoordinatorEvent::Disconnected { server, cause } => {
            record.add_attribute("herald.server", text(server));
            record.add_attribute("herald.cause", text(cause));
        }
        CoordinatorEvent::Reconnecting { attempt, delay } => {
            record.add_attribute("herald.attempt", i64::from(*attempt));
            record.add_attribute("herald.delay", seconds(delay));
        }
        CoordinatorEvent::Reconnected { server, downtime } => {
            record.add_attribute("herald.server", text(server));
            record.add_attribute("herald.downtime", seconds(downtime));
        }
        CoordinatorEvent::SlowConsumer { sid } => record.add_attribute("herald.sid", int(*sid)),
        CoordinatorEvent::ServerError { message } => {
            record.add_attribute("herald.error", text(message))
        }
        CoordinatorEvent::StreamReady {
            created,
            max_age,
            max_msgs,
            max_bytes,
            first_seq,
            last_seq,
            ..
        } => {
            record.add_attribute("herald.created", *created);
            record.add_attribute("herald.max_age", seconds(max_age));
            if let Some(max) = max_msgs {
                record.add_attribute("herald.max_msgs", int(*max));
            }
            if let Some(max) = max_bytes {
                record.add_attribute("herald.max_bytes", int(*max));
            }
            record.add_attribute("herald.first_seq", int(*first_seq));
            record.add_attribute("herald.last_seq", int(*last_seq));
        }
        CoordinatorEvent::Subscribed {
            filter,
            start,
            checkpoint,
            ..
        } => {
            record.add_attribute("herald.filter", text(filter));
            record.add_attribute("herald.start", start.to_string());
            if let Some(seq) = checkpoint {
                record.add_attribute("herald.checkpoint", int(*seq));
            }
        }
        CoordinatorEvent::HeartbeatMissed { missed, .. } => {
            record.add_attribute("herald.missed", i64::from(*missed))
        }
        CoordinatorEvent::Resubscribing {
            attempt,
            delay,
            cause,
            ..
        } => {
            record.add_attribute("herald.attempt", i64::from(*attempt));
            record.add_attribute("herald.delay", seconds(delay));
            record.add_attribute("herald.cause", cause.name());
            record.add_attribute("herald.detail", cause.to_string());
        }
        CoordinatorEvent::ConsumerRecreated { resume_from, .. } => {
            record.add_attribute("herald.resume_from", int(*resume_from))
        }
        CoordinatorEvent::ReplayStarted { from, to, .. } => {
            record.add_attribute("herald.from", int(*from));
            record.add_attribute("herald.to", int(*to));
        }
        CoordinatorEvent::ReplayCompleted {
            events, elapsed, ..
        } => {
            record.add_attribute("herald.events", int(*events));
            record.add_attribute("herald.elapsed", seconds(elapsed));
        }
        CoordinatorEvent::EventsLost { first, last, .. } => {
            record.add_attribute("herald.first", int(*first));
            record.add_attribute("herald.last", int(*last));
            if let Some(count) = event.lost_count() {
                record.add_attribute("herald.count", int(count));
            }
        }
        CoordinatorEvent::StreamReset {
            position, last_seq, ..
        } => {
            record.add_attribute("herald.position", int(*position));
            record.add_attribute("herald.last_seq", int(*last_seq));
        }
        CoordinatorEvent::CheckpointFailed { seq, error, .. }
        | CoordinatorEvent::CheckpointCommitFailed { seq, error, .. }
        | CoordinatorEvent::DecodeFailed { seq, error, .. } => {
            record.add_attribute("herald.seq", int(*seq));
            record.add_attribute("herald.error", text(error));
        }
        CoordinatorEvent::Unsubscribed { last_processed, .. } => {
            record.add_attribute("herald.last_processed", int(*last_processed))
        }
        CoordinatorEvent::PublishFailed {
            subject,
            attempt,
            will_retry,
            error,
            ..
        } => {
            record.add_attribute("herald.subject", text(subject));
            record.add_attribute("herald.attempt", i64::from(*attempt));
            record.add_attribute("herald.will_retry", *will_retry);
            record.add_attribute("herald.error", text(error));
        }
        CoordinatorEvent::Shutdown { subscriptions, .. } => {
            record.add_attribute("herald.subscriptions", int(*subscriptions))
        }
        CoordinatorEvent::OutboxBacklog {
            pending,
            oldest_age,
            ..
        } => {
            record.add_attribute("herald.pending", int(*pending));
            record.add_attribute("herald.oldest_age", seconds(oldest_age));
        }
        CoordinatorEvent::OutboxRelayFailed {
            attempt,
            delay,
            error,
            ..
        } => {
            record.add_attribute("herald.attempt", i64::from(*attempt));
            record.add_attribute("herald.delay", seconds(delay));
            record.add_attribute("herald.error", text(error));
        }
        CoordinatorEvent::ConsumerDeleted { .. } => {}
        // Per-message kinds are not exported as records; a kind newer than this crate gets
        // its fields from its serialised form.
        _ => add_serialized(record, event),
    }
}

/// `herald.<field>` for each top-level field of the event's JSON form.
fn add_serialized<R: LogRecord>(record: &mut R, event: &CoordinatorEvent) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) else {
        return;
    };
    for (key, value) in fields {
        if key == "kind" {
            continue;
        }
        let value = match value {
            serde_json::Value::Bool(b) => AnyValue::Boolean(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => AnyValue::Int(i),
                None => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => AnyValue::from(s),
            serde_json::Value::Null => continue,
            other => AnyValue::from(other.to_string()),
        };
        record.add_attribute(format!("herald.{key}"), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_namespaced_event_name() {
        for kind in EventKind::ALL {
            assert_eq!(event_name(*kind), format!("herald.{}", kind.name()));
        }
    }
}
