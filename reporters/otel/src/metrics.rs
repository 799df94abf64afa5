//! The instruments, created once from the user's `Meter`, and how each event feeds them.
//!
//! Attribute sets are low-cardinality: the system, the stream, the consumer, the outbox, the
//! kind, the connection state; never a subject or a sequence. Sets that do not depend on the event are
//! built once here; the others are assembled on the stack from the event's `Arc<str>` names
//! (a reference count, no copy, no formatting, no allocation on the per-message path).

use std::sync::Arc;

use herald::CoordinatorEvent;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use opentelemetry::KeyValue;

use crate::names::*;

/// Bucket boundaries, in seconds, for downtime and replay durations: a millisecond to ten
/// minutes. The histogram's default boundaries are meant for milliseconds.
const DURATION_BOUNDARIES: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];

pub(crate) struct Instruments {
    sent: Counter<u64>,
    consumed: Counter<u64>,
    reconnects: Counter<u64>,
    downtime: Histogram<f64>,
    status: Gauge<i64>,
    heartbeats_missed: Counter<u64>,
    deleted: Counter<u64>,
    recreated: Counter<u64>,
    events_lost: Counter<u64>,
    replay: Histogram<f64>,
    events: Counter<u64>,
    outbox_relayed: Counter<u64>,
    outbox_lag: Histogram<f64>,
    outbox_pending: Gauge<u64>,
    outbox_oldest_age: Gauge<f64>,
    outbox_failures: Counter<u64>,
    // Prebuilt attributes.
    system: KeyValue,
    publish: KeyValue,
    receive: KeyValue,
    failed: KeyValue,
    /// One set per connection state: `[system, state]`.
    states: [[KeyValue; 2]; 3],
}

/// The connection states, in the order of `Instruments::states`.
const STATES: [&str; 3] = [STATE_CONNECTED, STATE_DISCONNECTED, STATE_SHUT_DOWN];

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BOUNDARIES.to_vec())
                .build()
        };
        let system = KeyValue::new(MESSAGING_SYSTEM, SYSTEM_NATS);
        Self {
            sent: counter(
                SENT_MESSAGES,
                "{message}",
                "Messages published to the stream (stored, or failed for good with error.type).",
            ),
            consumed: counter(
                CONSUMED_MESSAGES,
                "{message}",
                "Messages handed to the application by a subscription.",
            ),
            reconnects: counter(
                RECONNECTS,
                "{reconnect}",
                "Connections restored after a disconnect.",
            ),
            downtime: seconds(DOWNTIME, "How long the connection was down, per reconnect."),
            status: meter
                .i64_gauge(CONNECTION_STATUS)
                .with_unit("1")
                .with_description(
                    "1 for the connection's current herald.connection.state, 0 for the others.",
                )
                .build(),
            heartbeats_missed: counter(
                HEARTBEATS_MISSED,
                "{heartbeat}",
                "Idle heartbeats a subscription's consumer missed.",
            ),
            deleted: counter(
                CONSUMERS_DELETED,
                "{consumer}",
                "Consumers deleted under a subscription by the server or an operator.",
            ),
            recreated: counter(
                CONSUMERS_RECREATED,
                "{consumer}",
                "Consumers recreated to resume a subscription.",
            ),
            events_lost: counter(
                EVENTS_LOST,
                "{message}",
                "Stream sequences removed by retention before the subscription received them.",
            ),
            replay: seconds(
                REPLAY_DURATION,
                "How long each replay took, from its start to its last message.",
            ),
            events: counter(
                COORDINATOR_EVENTS,
                "{event}",
                "State-change events the coordinator reported, by kind.",
            ),
            outbox_relayed: counter(
                OUTBOX_RELAYED,
                "{row}",
                "Outbox rows relayed to the stream, duplicates included.",
            ),
            outbox_lag: seconds(
                OUTBOX_RELAY_LAG,
                "Per relayed outbox row, the time from its commit to the stream's acknowledgement.",
            ),
            outbox_pending: meter
                .u64_gauge(OUTBOX_PENDING)
                .with_unit("{row}")
                .with_description("Rows waiting in the outbox at the relay's last non-empty read.")
                .build(),
            outbox_oldest_age: meter
                .f64_gauge(OUTBOX_OLDEST_AGE)
                .with_unit("s")
                .with_description("How long the oldest waiting outbox row had waited at that read.")
                .build(),
            outbox_failures: counter(
                OUTBOX_RELAY_FAILURES,
                "{failure}",
                "Failed outbox relay attempts (database or NATS).",
            ),
            publish: KeyValue::new(MESSAGING_OPERATION_NAME, OPERATION_PUBLISH),
            receive: KeyValue::new(MESSAGING_OPERATION_NAME, OPERATION_RECEIVE),
            failed: KeyValue::new(ERROR_TYPE, ERROR_OTHER),
            states: STATES.map(|state| [system.clone(), KeyValue::new(CONNECTION_STATE, state)]),
            system,
        }
    }

    /// Feeds `event` to the instruments it concerns.
    #[inline]
    pub(crate) fn record(&self, event: &CoordinatorEvent) {
        match event {
            // The per-message path: one counter, attributes on the stack.
            CoordinatorEvent::Delivered {
                stream, consumer, ..
            } => self.consumed.add(
                1,
                &[
                    self.system.clone(),
                    self.receive.clone(),
                    destination(stream),
                    group(consumer),
                ],
            ),
            CoordinatorEvent::Published { stream, .. } => self.sent.add(
                1,
                &[
                    self.system.clone(),
                    self.publish.clone(),
                    destination(stream),
                ],
            ),
            CoordinatorEvent::OutboxRelayed { outbox, lag, .. } => {
                let attributes = [self.system.clone(), outbox_name(outbox)];
                self.outbox_relayed.add(1, &attributes);
                self.outbox_lag.record(lag.as_secs_f64(), &attributes);
            }
            CoordinatorEvent::CheckpointSaved { .. }
            | CoordinatorEvent::CheckpointCommitted { .. } => {}
            _ => self.state_change(event),
        }
    }

    /// Everything but the per-message kinds: rare, so clarity over speed.
    #[cold]
    fn state_change(&self, event: &CoordinatorEvent) {
        let stream = event.stream();
        let consumer = event.consumer();

        let mut attributes = Vec::with_capacity(4);
        attributes.push(self.system.clone());
        attributes.push(KeyValue::new(EVENT_KIND, event.kind().name()));
        attributes.extend(stream.map(destination));
        attributes.extend(consumer.map(group));
        attributes.extend(event.outbox().map(outbox_name));
        self.events.add(1, &attributes);

        let subscription = |stream: &Arc<str>, consumer: &Arc<str>| {
            [self.system.clone(), destination(stream), group(consumer)]
        };
        match event {
            CoordinatorEvent::Connected { .. } => self.connection(STATE_CONNECTED),
            CoordinatorEvent::Disconnected { .. } => self.connection(STATE_DISCONNECTED),
            CoordinatorEvent::Reconnected { downtime, .. } => {
                let system = std::slice::from_ref(&self.system);
                self.reconnects.add(1, system);
                self.downtime.record(downtime.as_secs_f64(), system);
                self.connection(STATE_CONNECTED);
            }
            CoordinatorEvent::Shutdown { .. } => self.connection(STATE_SHUT_DOWN),
            CoordinatorEvent::PublishFailed {
                stream,
                will_retry: false,
                ..
            } => self.sent.add(
                1,
                &[
                    self.system.clone(),
                    self.publish.clone(),
                    destination(stream),
                    self.failed.clone(),
                ],
            ),
            CoordinatorEvent::HeartbeatMissed {
                stream, consumer, ..
            } => self
                .heartbeats_missed
                .add(1, &subscription(stream, consumer)),
            CoordinatorEvent::ConsumerDeleted { stream, consumer } => {
                self.deleted.add(1, &subscription(stream, consumer))
            }
            CoordinatorEvent::ConsumerRecreated {
                stream, consumer, ..
            } => self.recreated.add(1, &subscription(stream, consumer)),
            CoordinatorEvent::EventsLost {
                stream, consumer, ..
            } => {
                let lost = event.lost_count().unwrap_or_default();
                self.events_lost.add(lost, &subscription(stream, consumer))
            }
            CoordinatorEvent::ReplayCompleted {
                stream,
                consumer,
                elapsed,
                ..
            } => self
                .replay
                .record(elapsed.as_secs_f64(), &subscription(stream, consumer)),
            CoordinatorEvent::OutboxBacklog {
                outbox,
                pending,
                oldest_age,
            } => {
                let attributes = [self.system.clone(), outbox_name(outbox)];
                self.outbox_pending.record(*pending, &attributes);
                self.outbox_oldest_age
                    .record(oldest_age.as_secs_f64(), &attributes);
            }
            CoordinatorEvent::OutboxRelayFailed { outbox, .. } => self
                .outbox_failures
                .add(1, &[self.system.clone(), outbox_name(outbox)]),
            _ => {}
        }
    }

    /// 1 for `current`, 0 for the other states.
    fn connection(&self, current: &str) {
        for (state, attributes) in STATES.iter().zip(&self.states) {
            self.status
                .record(i64::from(*state == current), attributes.as_slice());
        }
    }
}

fn destination(stream: &Arc<str>) -> KeyValue {
    KeyValue::new(MESSAGING_DESTINATION_NAME, stream.clone())
}

fn group(consumer: &Arc<str>) -> KeyValue {
    KeyValue::new(MESSAGING_CONSUMER_GROUP_NAME, consumer.clone())
}

fn outbox_name(outbox: &Arc<str>) -> KeyValue {
    KeyValue::new(OUTBOX, outbox.clone())
}
