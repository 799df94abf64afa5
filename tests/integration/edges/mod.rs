//! The edges the core fixed, each a scenario that failed before its fix (findings are cited by
//! number):
//!
//! - `positions`: idle subscriptions stay quiet, loss is reported exactly and only when real,
//!   a recreated consumer says where it resumes, only consecutive missed heartbeats add up;
//! - `checkpoints`: the crash window holds, a dropped subscription hands over its
//!   acknowledgements, a cancelled subscribe gives its name back, broken stores and bad
//!   policies are reported, acknowledgements are cumulative;
//! - `coordinator`: publishes are stored once and give up in time, shutdown is the last word,
//!   connection events count attempts from one, absurd durations are harmless.

use std::time::Duration;

use herald::{
    Backoff, Builder, CheckpointKey, Coordinator, MemoryServer, Message, Reporter, Subscription,
};

use crate::support::DEADLINE;

mod checkpoints;
mod coordinator;
mod positions;

/// Retries quickly.
const QUICK: Backoff = Backoff {
    initial: Duration::from_millis(10),
    max: Duration::from_millis(200),
};

/// A builder on `server`, which the test keeps to inject faults.
fn on(server: &MemoryServer) -> Builder {
    Coordinator::builder().memory_server(server.clone())
}

/// Where subscription `durable` on `filter` keeps its checkpoint in `stream`.
fn key(stream: &str, durable: &str, filter: &str) -> CheckpointKey {
    CheckpointKey {
        stream: stream.into(),
        durable: durable.into(),
        filter: format!("{stream}.{filter}").into(),
    }
}

/// The next message, not acknowledged; fails if none comes in time.
async fn next<R: Reporter>(sub: &mut Subscription<R>) -> Message {
    match tokio::time::timeout(DEADLINE, sub.next()).await {
        Ok(Some(Ok(message))) => message,
        other => panic!("no message within {DEADLINE:?}: {other:?}"),
    }
}
