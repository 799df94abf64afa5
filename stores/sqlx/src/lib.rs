//! Exactly-once effect for [Herald](herald): the checkpoint and the outbox inside the
//! application's own database transaction, on SQLite and PostgreSQL (through `sqlx`).
//!
//! Across crashes a message bus is at-least-once at both edges. This crate closes both:
//!
//! - **The consumer's edge.** [`SqlxCheckpoints`] is a [`CheckpointStore`](herald::CheckpointStore)
//!   kept in a table, and [`commit`](SqlxCheckpoints::commit) writes a message's checkpoint in
//!   the transaction that applied the message, commits, and only then acknowledges it. After
//!   any crash, `StartPosition::LastProcessed` resumes right after the last committed message:
//!   every event's effect is applied exactly once.
//! - **The producer's edge.** [`SqlxOutbox::enqueue`] writes an event in the transaction that
//!   changed the data; a [`Relay`] publishes committed rows in order, each with a message id
//!   derived from the row (the same on every retry and after a restart), and removes a row only
//!   after the stream acknowledged it.
//!
//! ```no_run
//! # async fn demo(coordinator: herald::Coordinator) -> herald::Result<()> {
//! use herald::StartPosition;
//! use herald_sqlx::{SqlxCheckpoints, SqlxOutbox};
//! use sqlx::SqlitePool;
//!
//! let pool = SqlitePool::connect("sqlite://app.db?mode=rwc").await.expect("database");
//! // Producer: the alert and its event commit together; the relay publishes the event.
//! let outbox = SqlxOutbox::new(pool.clone()).await?;
//! let relay = outbox.relay(coordinator.clone());
//! let mut tx = pool.begin().await.expect("begin");
//! sqlx::query("UPDATE alerts SET state = 'firing' WHERE id = 42").execute(&mut *tx).await.expect("update");
//! outbox.enqueue(&mut tx, "alerts.42", b"firing").await?;
//! tx.commit().await.expect("commit");
//!
//! // Consumer: the effect and the checkpoint commit together.
//! let checkpoints = SqlxCheckpoints::new(pool.clone()).await?;
//! let mut sub = coordinator
//!     .subscribe("alerts.>")
//!     .start(StartPosition::LastProcessed)
//!     .checkpoint_store(checkpoints.clone())
//!     .await?;
//! while let Some(message) = sub.next().await {
//!     let message = message?;
//!     let mut tx = pool.begin().await.expect("begin");
//!     sqlx::query("INSERT INTO seen (seq) VALUES ($1)")
//!         .bind(message.seq as i64)
//!         .execute(&mut *tx)
//!         .await
//!         .expect("apply");
//!     checkpoints.commit(tx, &message).await?; // commits, then acknowledges
//! }
//! # relay.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Both types work on a `sqlx::SqlitePool` or a `sqlx::PgPool`; tables are created on first
//! use ([`SqlxCheckpoints::with_table`], [`SqlxOutbox::with_table`] name them), and one database
//! holds any number of subscriptions' checkpoints and of outboxes.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod checkpoints;
mod db;
mod outbox;
mod relay;
mod report;

pub use checkpoints::SqlxCheckpoints;
pub use db::Db;
pub use outbox::{OutboxRow, SqlxOutbox};
pub use relay::{Relay, RelayOptions};

use herald::{Error, ErrorKind};

/// A table name: letters, digits and `_`, not starting with a digit, at most 54 bytes (a
/// PostgreSQL identifier with room for `_instance`). Names are put into SQL text, so nothing else is accepted.
fn valid_table(name: &str) -> herald::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && name.len() <= 54 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "table name {name:?} is not allowed: use letters, digits and '_' (not first), at most 54 bytes"
            ),
        ))
    }
}

/// A database error as a Herald error that says what was being done.
fn database(what: impl Into<String>, error: sqlx::Error) -> Error {
    Error::with_source(ErrorKind::Database, what, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_identifiers() {
        for good in ["herald_checkpoints", "_x", "Outbox2"] {
            assert!(valid_table(good).is_ok(), "{good}");
        }
        for bad in ["", "2x", "a-b", "a b", "x;drop table y", &"x".repeat(64)] {
            let err = valid_table(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        }
    }
}
