//! A [Herald](herald) reporter that sends coordinator events to a bounded channel, never
//! blocking the coordinator, and says exactly what it dropped.
//!
//! A `tokio::sync::watch` channel keeps only the latest value: states in between are lost and
//! nobody is told. This channel keeps every event in order until it is full; then it drops the
//! new ones, counts them, and puts a marker where they would have been, so the reader knows how
//! many it missed and where.
//!
//! - [`channel`] makes a [`ChannelReporter`] (give it to
//!   [`Builder::reporter`](herald::Builder::reporter)) and a [`Receiver`].
//! - [`Receiver`] yields [`Received`] items: [`Received::Event`] in the order the coordinator
//!   reported them, and [`Received::Dropped { count }`](Received::Dropped) where `count` events
//!   were dropped. Read it from a thread ([`Receiver::recv`], [`Receiver::iter`]) or a task
//!   ([`Receiver::recv_async`], or as a [`futures::Stream`]).
//! - [`ChannelReporter::dropped`] and [`Receiver::dropped`] count every drop, also per kind.
//!
//! # Usage
//!
//! ```
//! use futures::StreamExt;
//! use herald::reporter::ReporterExt;
//! use herald::{Coordinator, StartPosition};
//! use herald_channel::Received;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> herald::Result<()> {
//! let (reporter, mut events) = herald_channel::channel(1024);
//! // State changes only; the per-message kinds are never even built.
//! let reporter = reporter.only(|kind| !kind.is_per_message());
//! let coordinator = Coordinator::builder().reporter(reporter).connect().await?;
//!
//! tokio::spawn(async move {
//!     while let Some(item) = events.next().await {
//!         match item {
//!             Received::Event(event) => println!("herald: {event}"),
//!             Received::Dropped { count } => eprintln!("herald: {count} events dropped here"),
//!         }
//!     }
//! });
//! # coordinator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Cost and guarantees
//!
//! [`report`](herald::Reporter::report) clones the event (its names are `Arc<str>`, so no string
//! is copied) and calls crossbeam's `try_send`; on its usual path it adds two atomic loads and a
//! fence, takes no lock and allocates nothing. It never waits: a full channel or a dropped
//! receiver costs one counted drop.
//!
//! - **Order.** Items arrive in the order `report` was called. When one task reports (the usual
//!   case for one subscription), a `Dropped` marker sits exactly where its events were dropped;
//!   with several tasks reporting at once it sits among the events reported concurrently with
//!   the drops.
//! - **Exact counts.** Every reported event is either received or counted in exactly one
//!   marker. Once the channel is drained, the markers add up to [`Receiver::dropped`].
//! - **No lost wake-ups.** A parked receiver is woken by the next event, by a drop, and by the
//!   last reporter going away.
//! - **The end.** When every [`ChannelReporter`] is dropped (with the coordinator), the receiver
//!   yields what is left, then ends.
//!
//! # Supported Rust versions
//!
//! The minimum supported Rust version is the workspace's (`rust-version` in `Cargo.toml`).

mod receiver;
mod reporter;
mod shared;

pub use crossbeam_channel::{RecvTimeoutError, TryRecvError};
pub use receiver::{Iter, Received, Receiver, TryIter};
pub use reporter::{channel, ChannelReporter};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
