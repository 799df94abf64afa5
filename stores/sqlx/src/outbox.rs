//! [`SqlxOutbox`]: events written in the application's transaction, published by a relay.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use herald::{Coordinator, Reporter};
use sqlx::{Pool, Transaction};

use crate::db::Db;
use crate::relay::{Relay, RelayOptions};
use crate::{database, valid_table};

/// A transactional outbox: a table (`herald_outbox` unless [`with_table`](Self::with_table)
/// names another) where the application writes events in the same transaction as the data
/// they describe, and a [`Relay`] that publishes them. An event is published if and only if
/// its transaction committed, even when the process dies right after the commit or NATS is
/// down for an hour: committed rows wait in the table. Clones share the pool.
pub struct SqlxOutbox<DB: Db> {
    pub(crate) pool: Pool<DB>,
    pub(crate) table: Arc<str>,
    /// This outbox's token in message ids (kept in `<table>_instance`).
    pub(crate) instance: Arc<str>,
}

impl<DB: Db> Clone for SqlxOutbox<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            table: self.table.clone(),
            instance: self.instance.clone(),
        }
    }
}

impl<DB: Db> std::fmt::Debug for SqlxOutbox<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlxOutbox")
            .field("table", &self.table)
            .finish()
    }
}

/// One row of an outbox, as the relay reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// The row's id: increasing, never reused; the message id is derived from it.
    pub id: i64,
    /// The key the event is published under.
    pub key: String,
    /// The event's payload.
    pub payload: Vec<u8>,
    /// When the row was written, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

impl<DB: Db> SqlxOutbox<DB> {
    /// The outbox in the table `herald_outbox`, created if missing.
    pub async fn new(pool: Pool<DB>) -> herald::Result<Self> {
        Self::with_table(pool, "herald_outbox").await
    }

    /// The outbox in `table` (letters, digits, `_`), created if missing. Several outboxes can
    /// share a database, each in its own table.
    pub async fn with_table(pool: Pool<DB>, table: &str) -> herald::Result<Self> {
        valid_table(table)?;
        DB::create_outbox(&pool, table)
            .await
            .map_err(|e| database(format!("could not create the outbox table {table}"), e))?;
        let candidate = nuid::next();
        let instance = DB::outbox_instance(&pool, table, &candidate)
            .await
            .map_err(|e| database(format!("could not read the instance of outbox {table}"), e))?;
        Ok(Self {
            pool,
            table: table.into(),
            instance: instance.into(),
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes an event to publish under `key` in `tx`, and returns its row id. It is
    /// published once `tx` commits, and never if `tx` rolls back.
    ///
    /// The key is checked here as the coordinator checks it (a bad key fails the transaction,
    /// never the relay later).
    pub async fn enqueue(
        &self,
        tx: &mut Transaction<'_, DB>,
        key: &str,
        payload: &[u8],
    ) -> herald::Result<i64> {
        if key.is_empty()
            || key
                .split('.')
                .any(|t| t.is_empty() || t.contains(['*', '>']) || t.contains(char::is_whitespace))
        {
            return Err(herald::Error::new(
                herald::ErrorKind::InvalidSubject,
                format!(
                    "{key:?} is not a valid key: dot-separated tokens, no wildcards or whitespace"
                ),
            ));
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        DB::enqueue(&mut *tx, &self.table, key, payload, now_ms)
            .await
            .map_err(|e| database(format!("could not write to the outbox {}", self.table), e))
    }

    /// The message id the row `row_id` is published with: `<table>:<instance>:<row id>`, the
    /// same on every retry and after a restart, and unlike any other outbox's (the instance
    /// token is made once per database, in `<table>_instance`).
    pub fn message_id(&self, row_id: i64) -> String {
        format!("{}:{}:{row_id}", self.table, self.instance)
    }

    /// The number of rows waiting to be published.
    pub async fn pending(&self) -> herald::Result<u64> {
        let (count, _) = DB::backlog(&self.pool, &self.table)
            .await
            .map_err(|e| database(format!("could not count the outbox {}", self.table), e))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Starts the relay that publishes this outbox's committed rows through `coordinator`,
    /// with the default [`RelayOptions`].
    pub fn relay<R: Reporter>(&self, coordinator: Coordinator<R>) -> Relay {
        self.relay_with(coordinator, RelayOptions::default())
    }

    /// Starts the relay with `options`.
    pub fn relay_with<R: Reporter>(
        &self,
        coordinator: Coordinator<R>,
        options: RelayOptions,
    ) -> Relay {
        Relay::start(self.clone(), coordinator, options)
    }
}
