//! Herald: a cluster coordinator on NATS JetStream whose every state change is a typed event.
//!
//! Services publish cluster-wide events ("alert 42 changed") to one stream and every node
//! subscribes. Subscriptions survive reconnects, missed heartbeats, deleted consumers and
//! restarts, resuming at exactly the right sequence; and every state change of the coordinator —
//! connected, subscribed, missed heartbeat, consumer deleted, replay started, events lost — is
//! sent as a typed [`CoordinatorEvent`] through a [`Reporter`] you choose.
//!
//! - [`Coordinator`] and its [`Builder`]: publish, subscribe, shut down.
//! - [`Subscription`]: an async stream of [`Message`]s, exactly once and in order within a
//!   process, resumed from a [`CheckpointStore`] across restarts.
//! - [`Reporter`], [`CoordinatorEvent`], [`EventKind`]: what happened, to whom it matters.
//!   [`NullReporter`] (the default) costs nothing; [`StatsReporter`] keeps a [`Stats`] snapshot;
//!   [`reporter::from_fn`] turns a closure into a reporter. The `herald-channel`, `herald-log`
//!   and `herald-otel` crates send events to channels, `tracing` and OpenTelemetry.
//! - Two backends: the embedded [`MemoryServer`] (default, no setup) and NATS JetStream
//!   ([`Builder::nats`]).
//!
//! # Usage
//!
//! ```
//! use herald::{Coordinator, StartPosition, reporter::from_fn};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> herald::Result<()> {
//! let coordinator = Coordinator::builder()
//!     .stream("CLUSTER")
//!     .reporter(from_fn(|event| println!("herald: {event}")))
//!     .connect()
//!     .await?;
//! let mut alerts = coordinator.subscribe("alerts.>").start(StartPosition::All).await?;
//! coordinator.publish("alerts.42", "changed").await?;
//! while let Some(msg) = alerts.next().await {
//!     let msg = msg?;
//!     println!("{} #{}", msg.key(), msg.seq);
//!     msg.ack();
//!     break;
//! }
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//!
//! - `testing`: fault injection on [`MemoryServer`] (delete consumers, stop heartbeats,
//!   disconnect, expire messages), for tests of Herald and of applications built on it.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod backoff;
mod checkpoint;
mod coordinator;
mod deadline;
mod emitter;
mod error;
mod event;
mod position;
mod redact;
pub mod reporter;
mod setters;
mod state;
mod subject;
mod subscription;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use backend::memory::MemoryServer;
pub use backend::nats::NatsOptions;
pub use backend::seam::{PublishAck, Storage};
pub use backoff::Backoff;
pub use checkpoint::file::FileCheckpointStore;
pub use checkpoint::{
    Checkpoint, CheckpointKey, CheckpointPolicy, CheckpointStore, MemoryCheckpointStore,
};
pub use coordinator::builder::{Builder, MAX_AGE_LIMIT};
pub use coordinator::Coordinator;
pub use error::{Error, ErrorKind, Result};
pub use event::{CoordinatorEvent, EventKind, EventKindSet, ResubscribeCause, Severity};
pub use position::StartPosition;
pub use reporter::{
    ConnectionState, NullReporter, OutboxStats, Reporter, Stats, StatsReporter, SubscriptionState,
    SubscriptionStats,
};
pub use subscription::builder::Subscribe;
pub use subscription::json::{DecodePolicy, Decoded, JsonSubscription};
pub use subscription::message::Message;
pub use subscription::Subscription;

/// The README's Rust examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
