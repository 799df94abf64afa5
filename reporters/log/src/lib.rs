//! A [Herald](herald) reporter that turns every coordinator event into a [`tracing`] event.
//!
//! - [`LogReporter`]: the reporter. Target `herald`, level from the event's severity, the
//!   event's sentence as the message and its fields as structured fields.
//! - [`level`]: the level a kind is logged at.
//!
//! Filtering happens before the coordinator builds an event: the reporter's minimum level and
//! kind filter, and the installed subscriber's own filter, all feed
//! [`Reporter::interest`](herald::Reporter::interest).
//!
//! # Usage
//!
//! ```
//! use herald::Coordinator;
//! use herald_log::LogReporter;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> herald::Result<()> {
//! // Text: `RUST_LOG=herald=info` or any filter you like.
//! tracing_subscriber::fmt()
//!     .with_env_filter(tracing_subscriber::EnvFilter::new("herald=info"))
//!     .init();
//! let coordinator = Coordinator::builder()
//!     .reporter(LogReporter::new())
//!     .connect()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! With `tracing_subscriber::fmt().json()`, each event is one queryable line:
//!
//! ```json
//! {"timestamp":"…","level":"ERROR","target":"herald","fields":{"message":"consumer node-a on stream HERALD lost events 5..=7 (3 events) to retention before they were delivered","kind":"events_lost","stream":"HERALD","consumer":"node-a","first":5,"last":7,"count":3}}
//! ```
//!
//! # Levels
//!
//! | level | kinds |
//! |---|---|
//! | `ERROR` | loss, deletion and failures: `events_lost`, `consumer_deleted`, `stream_reset`, `checkpoint_failed`, `checkpoint_commit_failed`, `server_error` |
//! | `WARN` | churn Herald recovers from: `disconnected`, `reconnecting`, `reconnected`, `lame_duck`, `slow_consumer`, `heartbeat_missed`, `resubscribing`, `consumer_recreated`, `publish_failed`, `decode_failed`, `outbox_relay_failed` |
//! | `INFO` | routine lifecycle: `connected`, `stream_ready`, `subscribed`, `replay_started`, `replay_completed`, `unsubscribed`, `shutdown`, `outbox_backlog` |
//! | `TRACE` | per message: `published`, `delivered`, `checkpoint_saved`, `outbox_relayed`, `checkpoint_committed` |
//!
//! # Fields
//!
//! Every event carries `kind` (the [`EventKind`](herald::EventKind) name) and the event's own
//! fields under their own names: `stream`, `consumer`, `subject`, `server`, `filter`, `outbox`
//! as strings; sequences and counts (`seq`, `first`, `last`, `count`, `attempt`, `resume_from`,
//! ...) as integers; flags (`created`, `duplicate`, `will_retry`) as booleans; durations in
//! milliseconds as floats with the unit in the name (`delay_ms`, `downtime_ms`, `elapsed_ms`,
//! `max_age_ms`, `lag_ms`, `oldest_age_ms`); errors as `error`. `resubscribing` adds `cause` (`heartbeats_missed`,
//! `consumer_deleted`, `sequence_gap`, `disconnected`, `retry_failed`, `fault`) and `detail`;
//! `events_lost` adds `count`, the number of sequences lost.
//!
//! # Cost
//!
//! A filtered-out kind costs the coordinator one call to `interest` (a few comparisons and
//! `tracing`'s cached call-site check: 2–3 ns measured) and is never built. An event that is
//! logged costs what the subscriber does with it, about two microseconds for
//! formatted text: keep the per-message kinds off in production (the default subscriber level,
//! `INFO`, does that).
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is the workspace's (`rust-version` in `Cargo.toml`).

mod fields;
mod reporter;

pub use reporter::{level, LogReporter};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
