//! [`SqlxCheckpoints`]: checkpoints in a table, and committed with the application's own
//! transaction.

use std::sync::Arc;

use futures::future::BoxFuture;
use herald::{
    Checkpoint, CheckpointKey, CheckpointStore, Coordinator, CoordinatorEvent, EventKind, Message,
    Reporter,
};
use sqlx::{Pool, Transaction};

use crate::db::Db;
use crate::report::Events;
use crate::{database, valid_table};

/// Checkpoints kept in a table of the application's database (`herald_checkpoints` unless
/// [`with_table`](Self::with_table) names another), one row per subscription (stream, durable
/// name, filter). Clones share the pool.
///
/// Used as a subscription's [`CheckpointStore`] it saves in batches like any store. With
/// [`commit`](Self::commit), a message's checkpoint is written in the transaction that applied
/// the message: the effect and the position commit together, so after a crash
/// `StartPosition::LastProcessed` resumes right after the last committed message, and no
/// message's effect is applied twice or lost.
///
/// A stored position never moves backwards within one stream: a batched save that began
/// before a later message's commit cannot undo it.
pub struct SqlxCheckpoints<DB: Db> {
    pool: Pool<DB>,
    table: Arc<str>,
    events: Events,
}

impl<DB: Db> Clone for SqlxCheckpoints<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            table: self.table.clone(),
            events: self.events.clone(),
        }
    }
}

impl<DB: Db> std::fmt::Debug for SqlxCheckpoints<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlxCheckpoints")
            .field("table", &self.table)
            .field("events", &self.events)
            .finish()
    }
}

impl<DB: Db> SqlxCheckpoints<DB> {
    /// Checkpoints in the table `herald_checkpoints`, created if missing.
    pub async fn new(pool: Pool<DB>) -> herald::Result<Self> {
        Self::with_table(pool, "herald_checkpoints").await
    }

    /// Checkpoints in `table` (letters, digits, `_`), created if missing.
    pub async fn with_table(pool: Pool<DB>, table: &str) -> herald::Result<Self> {
        valid_table(table)?;
        DB::create_checkpoints(&pool, table)
            .await
            .map_err(|e| database(format!("could not create the checkpoint table {table}"), e))?;
        Ok(Self {
            pool,
            table: table.into(),
            events: Events::default(),
        })
    }

    /// Reports commits (`CheckpointCommitted`, per message: opt-in through `interest`) and
    /// failed commits (`CheckpointCommitFailed`) through `coordinator`'s reporter.
    pub fn reporting_to<R: Reporter>(mut self, coordinator: &Coordinator<R>) -> Self {
        self.events = Events::to(coordinator);
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Writes `message`'s checkpoint in `tx`, commits `tx`, then acknowledges `message`.
    ///
    /// Everything `tx` did and the new position become durable together, or neither does: on
    /// an error nothing of `tx` was applied, the message is not acknowledged, and after a
    /// restart it is delivered again.
    pub async fn commit(
        &self,
        mut tx: Transaction<'_, DB>,
        message: &Message,
    ) -> herald::Result<()> {
        let key = message.checkpoint_key();
        let at = message.checkpoint();
        let written = DB::save_checkpoint(&mut tx, &self.table, key, at).await;
        let committed = match written {
            Ok(()) => tx.commit().await,
            Err(error) => Err(error),
        };
        match committed {
            Ok(()) => {
                message.ack();
                self.events.report(EventKind::CheckpointCommitted, || {
                    CoordinatorEvent::CheckpointCommitted {
                        stream: key.stream.clone(),
                        consumer: key.durable.clone(),
                        seq: at.seq,
                    }
                });
                Ok(())
            }
            Err(error) => {
                let error = database(
                    format!("could not commit the checkpoint {} of {key}", at.seq),
                    error,
                );
                self.events.report(EventKind::CheckpointCommitFailed, || {
                    CoordinatorEvent::CheckpointCommitFailed {
                        stream: key.stream.clone(),
                        consumer: key.durable.clone(),
                        seq: at.seq,
                        error: error.to_string().into(),
                    }
                });
                Err(error)
            }
        }
    }

    /// The checkpoint stored for `key`, if any.
    pub async fn get(&self, key: &CheckpointKey) -> herald::Result<Option<Checkpoint>> {
        DB::load_checkpoint(&self.pool, &self.table, key)
            .await
            .map_err(|e| database(format!("could not read the checkpoint of {key}"), e))
    }
}

impl<DB: Db> CheckpointStore for SqlxCheckpoints<DB> {
    fn load<'a>(
        &'a self,
        key: &'a CheckpointKey,
    ) -> BoxFuture<'a, herald::Result<Option<Checkpoint>>> {
        Box::pin(self.get(key))
    }

    fn save<'a>(
        &'a self,
        key: &'a CheckpointKey,
        at: Checkpoint,
    ) -> BoxFuture<'a, herald::Result<()>> {
        Box::pin(async move {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| database("could not reach the checkpoint database", e))?;
            DB::save_checkpoint(&mut conn, &self.table, key, at)
                .await
                .map_err(|e| {
                    database(
                        format!("could not save the checkpoint {} of {key}", at.seq),
                        e,
                    )
                })
        })
    }
}
