//! Every event as a one-line sentence: what `Display` prints, and what logs show.

use std::fmt;
use std::time::Duration;

use crate::event::kind::ResubscribeCause;
use crate::event::CoordinatorEvent;

impl fmt::Display for ResubscribeCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeartbeatsMissed { missed } => write!(f, "{missed} heartbeats missed"),
            Self::ConsumerDeleted => f.write_str("consumer deleted"),
            Self::SequenceGap { expected, received } => write!(
                f,
                "consumer sequence gap (expected {expected}, received {received})"
            ),
            Self::Disconnected => f.write_str("disconnected"),
            Self::RetryFailed { error } => write!(f, "previous attempt failed: {error}"),
            Self::Fault { error } => write!(f, "{error}"),
        }
    }
}

/// A duration written for people: `850µs`, `42ms`, `1.5s`.
struct Human(Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_millis(1) {
            write!(f, "{}µs", d.as_micros())
        } else if d < Duration::from_secs(1) {
            write!(f, "{}ms", d.as_millis())
        } else if d < Duration::from_secs(120) {
            write!(f, "{:.1}s", d.as_secs_f64())
        } else {
            write!(f, "{}min", d.as_secs() / 60)
        }
    }
}

impl fmt::Display for CoordinatorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected { server } => write!(f, "connected to {server}"),
            Self::Disconnected { server, cause } => {
                write!(f, "disconnected from {server}: {cause}")
            }
            Self::Reconnecting { attempt, delay } => {
                write!(f, "reconnecting (attempt {attempt}) in {}", Human(*delay))
            }
            Self::Reconnected { server, downtime } => {
                write!(f, "reconnected to {server} after {} down", Human(*downtime))
            }
            Self::LameDuck { server } => {
                write!(f, "server {server} entered lame duck mode and will shut down")
            }
            Self::SlowConsumer { sid } => {
                write!(f, "subscription {sid} is a slow consumer: messages were dropped")
            }
            Self::ServerError { message } => write!(f, "server error: {message}"),
            Self::StreamReady {
                stream,
                created,
                max_age,
                first_seq,
                last_seq,
                ..
            } => write!(
                f,
                "stream {stream} {} (max age {}, {})",
                if *created { "created" } else { "ready" },
                Human(*max_age),
                if *last_seq == 0 || first_seq > last_seq {
                    format!("empty, next sequence {}", last_seq + 1)
                } else {
                    format!("sequences {first_seq}..={last_seq}")
                }
            ),
            Self::Subscribed {
                stream,
                consumer,
                filter,
                start,
                checkpoint,
            } => {
                write!(
                    f,
                    "consumer {consumer} subscribed to {filter} on stream {stream} from {start}"
                )?;
                match checkpoint {
                    Some(seq) => write!(f, " (checkpoint {seq})"),
                    None => f.write_str(" (no checkpoint)"),
                }
            }
            Self::HeartbeatMissed {
                stream,
                consumer,
                missed,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} missed heartbeats ({missed} in a row)"
            ),
            Self::ConsumerDeleted { stream, consumer } => {
                write!(f, "consumer {consumer} on stream {stream} was deleted")
            }
            Self::Resubscribing {
                stream,
                consumer,
                attempt,
                delay,
                cause,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} resubscribing (attempt {attempt}) in {}: {cause}",
                Human(*delay)
            ),
            Self::ConsumerRecreated {
                stream,
                consumer,
                resume_from,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} recreated, resuming at sequence {resume_from}"
            ),
            Self::ReplayStarted {
                stream,
                consumer,
                from,
                to,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} replaying sequences {from}..={to}"
            ),
            Self::ReplayCompleted {
                stream,
                consumer,
                events,
                elapsed,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} replayed {events} events in {}",
                Human(*elapsed)
            ),
            Self::EventsLost {
                stream,
                consumer,
                first,
                last,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} lost events {first}..={last} ({} events) to retention before they were delivered",
                self.lost_count().unwrap_or_default()
            ),
            Self::StreamReset {
                stream,
                consumer,
                position,
                last_seq,
            } => write!(
                f,
                "stream {stream} was reset (last sequence {last_seq}, below position {position} of consumer {consumer}): starting over at its first sequence"
            ),
            Self::CheckpointSaved {
                stream,
                consumer,
                seq,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} saved checkpoint {seq}"
            ),
            Self::CheckpointFailed {
                stream,
                consumer,
                seq,
                error,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} failed to checkpoint sequence {seq}: {error}"
            ),
            Self::Unsubscribed {
                stream,
                consumer,
                last_processed,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} unsubscribed at sequence {last_processed}"
            ),
            Self::Published {
                stream,
                subject,
                seq,
                duplicate,
            } => {
                write!(f, "published {subject} to stream {stream} as sequence {seq}")?;
                if *duplicate {
                    f.write_str(" (duplicate, not stored again)")?;
                }
                Ok(())
            }
            Self::PublishFailed {
                stream,
                subject,
                attempt,
                will_retry,
                error,
            } => write!(
                f,
                "publish of {subject} to stream {stream} failed (attempt {attempt}, {}): {error}",
                if *will_retry { "will retry" } else { "giving up" }
            ),
            Self::Delivered {
                stream,
                consumer,
                seq,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} delivered sequence {seq}"
            ),
            Self::DecodeFailed {
                stream,
                consumer,
                seq,
                error,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} could not decode sequence {seq}: {error}"
            ),
            Self::Shutdown {
                stream,
                subscriptions,
            } => write!(
                f,
                "coordinator for stream {stream} shut down ({subscriptions} subscriptions ended)"
            ),
            Self::OutboxRelayed {
                outbox,
                row,
                seq,
                duplicate,
                lag,
            } => {
                write!(
                    f,
                    "outbox {outbox} relayed row {row} as stream sequence {seq} after {}",
                    Human(*lag)
                )?;
                if *duplicate {
                    f.write_str(" (duplicate, not stored again)")?;
                }
                Ok(())
            }
            Self::OutboxBacklog {
                outbox,
                pending,
                oldest_age,
            } => write!(
                f,
                "outbox {outbox} has {pending} rows waiting, the oldest for {}",
                Human(*oldest_age)
            ),
            Self::OutboxRelayFailed {
                outbox,
                attempt,
                delay,
                error,
            } => write!(
                f,
                "outbox {outbox} failed to relay (attempt {attempt}), retrying in {}: {error}",
                Human(*delay)
            ),
            Self::CheckpointCommitted {
                stream,
                consumer,
                seq,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} committed checkpoint {seq} with the application's transaction"
            ),
            Self::CheckpointCommitFailed {
                stream,
                consumer,
                seq,
                error,
            } => write!(
                f,
                "consumer {consumer} on stream {stream} failed to commit checkpoint {seq} with the application's transaction, which was not applied (the message comes again after a restart): {error}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::kind::ResubscribeCause;

    #[test]
    fn events_round_trip_through_serde() {
        let event = CoordinatorEvent::Resubscribing {
            stream: "S".into(),
            consumer: "c".into(),
            attempt: 2,
            delay: Duration::from_millis(150),
            cause: ResubscribeCause::SequenceGap {
                expected: 4,
                received: 9,
            },
        };
        let json = serde_json::to_string(&event).expect("serialize");
        assert!(json.contains("\"kind\":\"resubscribing\""), "{json}");
        let back: CoordinatorEvent = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, event);
        assert_eq!(
            event.to_string(),
            "consumer c on stream S resubscribing (attempt 2) in 150ms: consumer sequence gap (expected 4, received 9)"
        );
    }

    #[test]
    fn outbox_events_read_as_sentences() {
        let relayed = CoordinatorEvent::OutboxRelayed {
            outbox: "alerts_outbox".into(),
            row: 42,
            seq: 17,
            duplicate: false,
            lag: Duration::from_millis(3),
        };
        assert_eq!(
            relayed.to_string(),
            "outbox alerts_outbox relayed row 42 as stream sequence 17 after 3ms"
        );
        let backlog = CoordinatorEvent::OutboxBacklog {
            outbox: "alerts_outbox".into(),
            pending: 120,
            oldest_age: Duration::from_millis(1500),
        };
        assert_eq!(
            backlog.to_string(),
            "outbox alerts_outbox has 120 rows waiting, the oldest for 1.5s"
        );
        let json = serde_json::to_string(&backlog).expect("serialize");
        assert!(json.contains("\"kind\":\"outbox_backlog\""), "{json}");
        let back: CoordinatorEvent = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, backlog);
    }
}
