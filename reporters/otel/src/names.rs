//! The names this crate exports under: instruments, attribute keys and their values.
//!
//! Use them in dashboards, alerts and tests instead of repeating the strings.
//!
//! ```
//! use herald_otel::names;
//! assert_eq!(names::CONSUMED_MESSAGES, "messaging.client.consumed.messages");
//! assert_eq!(names::EVENTS_LOST, "herald.consumer.events_lost");
//! ```

// --- Instruments following the OpenTelemetry messaging semantic conventions ---

/// Counter, `{message}`: messages published, one per publish call that ended: stored (a
/// duplicate included) or failed for good (with [`ERROR_TYPE`]). Retried attempts are not
/// counted again.
pub const SENT_MESSAGES: &str = "messaging.client.sent.messages";
/// Counter, `{message}`: messages handed to the application by a subscription.
pub const CONSUMED_MESSAGES: &str = "messaging.client.consumed.messages";

// --- Herald's own instruments ---

/// Counter, `{reconnect}`: connections restored after a disconnect.
pub const RECONNECTS: &str = "herald.connection.reconnects";
/// Histogram, `s`: how long the connection was down, per reconnect.
pub const DOWNTIME: &str = "herald.connection.downtime";
/// Gauge, `1`: 1 for the connection's current [`CONNECTION_STATE`], 0 for the other states.
pub const CONNECTION_STATUS: &str = "herald.connection.status";
/// Counter, `{heartbeat}`: idle heartbeats a consumer missed.
pub const HEARTBEATS_MISSED: &str = "herald.consumer.heartbeats_missed";
/// Counter, `{consumer}`: consumers the server (or an operator) deleted under a subscription.
pub const CONSUMERS_DELETED: &str = "herald.consumer.deleted";
/// Counter, `{consumer}`: consumers recreated to resume a subscription.
pub const CONSUMERS_RECREATED: &str = "herald.consumer.recreated";
/// Counter, `{message}`: stream sequences retention removed before a subscription received
/// them: the number of sequences, not the number of gaps.
pub const EVENTS_LOST: &str = "herald.consumer.events_lost";
/// Histogram, `s`: how long each replay took, from `ReplayStarted` to its last message.
pub const REPLAY_DURATION: &str = "herald.consumer.replay.duration";
/// Counter, `{row}`: outbox rows relayed to the stream, duplicates included, by [`OUTBOX`]
/// (per row: counted only while [`per_message`](crate::OtelReporter::per_message) is on).
pub const OUTBOX_RELAYED: &str = "herald.outbox.relayed";
/// Histogram, `s`: per relayed outbox row, the time from its commit to the stream's
/// acknowledgement, by [`OUTBOX`] (per row, like [`OUTBOX_RELAYED`]).
pub const OUTBOX_RELAY_LAG: &str = "herald.outbox.relay.lag";
/// Gauge, `{row}`: rows waiting in the outbox after the relay's last batch (0 once drained), by
/// [`OUTBOX`]. The relay reports only a backlog it found, so the value stays until the next.
pub const OUTBOX_PENDING: &str = "herald.outbox.pending";
/// Gauge, `s`: how long the oldest waiting row had waited at that read, by [`OUTBOX`].
pub const OUTBOX_OLDEST_AGE: &str = "herald.outbox.oldest_age";
/// Counter, `{failure}`: failed relay attempts (database or NATS), by [`OUTBOX`].
pub const OUTBOX_RELAY_FAILURES: &str = "herald.outbox.relay_failures";
/// Counter, `{event}`: every state-change event (every kind but the per-message ones), by
/// [`EVENT_KIND`].
pub const COORDINATOR_EVENTS: &str = "herald.coordinator.events";

// --- Attribute keys ---

/// `messaging.system`: always [`SYSTEM_NATS`].
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// `messaging.operation.name`: [`OPERATION_PUBLISH`] or [`OPERATION_RECEIVE`].
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
/// `messaging.destination.name`: the stream. Subjects carry per-message keys and would make
/// a series per key, so they are never used as an attribute on metrics.
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
/// `messaging.consumer.group.name`: the subscription's consumer (its durable name, prefixed
/// with the node id). Give coordinators a stable
/// [`node_id`](herald::Builder::node_id) so the series survive restarts.
pub const MESSAGING_CONSUMER_GROUP_NAME: &str = "messaging.consumer.group.name";
/// `error.type`: why a publish failed for good; [`ERROR_OTHER`] (Herald's errors carry no
/// finer low-cardinality type).
pub const ERROR_TYPE: &str = "error.type";
/// `herald.outbox`: the transactional outbox (its table's name), on outbox instruments and
/// records.
pub const OUTBOX: &str = "herald.outbox";
/// `herald.event.kind`: the [`EventKind`](herald::EventKind) name, `events_lost`.
pub const EVENT_KIND: &str = "herald.event.kind";
/// `herald.connection.state`: [`STATE_CONNECTED`], [`STATE_DISCONNECTED`] or
/// [`STATE_SHUT_DOWN`].
pub const CONNECTION_STATE: &str = "herald.connection.state";

// --- Attribute values ---

/// The value of [`MESSAGING_SYSTEM`].
pub const SYSTEM_NATS: &str = "nats";
/// [`MESSAGING_OPERATION_NAME`] on [`SENT_MESSAGES`].
pub const OPERATION_PUBLISH: &str = "publish";
/// [`MESSAGING_OPERATION_NAME`] on [`CONSUMED_MESSAGES`].
pub const OPERATION_RECEIVE: &str = "receive";
/// [`ERROR_TYPE`] for a publish that failed for good.
pub const ERROR_OTHER: &str = "_OTHER";
/// [`CONNECTION_STATE`]: connected (or reconnected).
pub const STATE_CONNECTED: &str = "connected";
/// [`CONNECTION_STATE`]: disconnected, reconnecting.
pub const STATE_DISCONNECTED: &str = "disconnected";
/// [`CONNECTION_STATE`]: the coordinator shut down.
pub const STATE_SHUT_DOWN: &str = "shut_down";

/// The log records' target, and the prefix of their event names (`herald.events_lost`).
pub const TARGET: &str = "herald";
