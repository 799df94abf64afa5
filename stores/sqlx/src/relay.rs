//! [`Relay`]: the task that publishes an outbox's committed rows.
//!
//! The loop: read the oldest rows (at most `batch`), publish them in id order with
//! [`publish_batch_idempotent`](herald::Coordinator::publish_batch_idempotent), each with the
//! message id `<table>:<row id>`, and delete exactly those rows once the stream acknowledged
//! them. Nothing is held in memory but one batch. Failures (the database, NATS) are reported
//! and retried with capped backoff, for ever, until [`Relay::shutdown`].
//!
//! # When a copy can still reach the stream
//!
//! A row is deleted after its publish was acknowledged. If the process dies (or the database
//! fails) between the acknowledgement and the delete, the row is published again by the next
//! relay with the same message id, and the stream drops the copy — **as long as the new
//! attempt comes within the stream's duplicate window** (two minutes by default). A relay that
//! stays down longer than the window after such a crash stores the rows of its last batch a
//! second time. Keep the duplicate window above the longest outage you want covered.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::{Coordinator, CoordinatorEvent, ErrorKind, EventKind, Reporter};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{Db, Listener};
use crate::outbox::{OutboxRow, SqlxOutbox};

/// How a [`Relay`] works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayOptions {
    /// The most rows read and published at once: what the relay holds in memory (default 1024).
    pub batch: usize,
    /// How often the table is read when nothing woke the relay (default 50 ms). PostgreSQL
    /// wakes it at each commit (`LISTEN`/`NOTIFY`), so this is only a fallback there.
    pub poll_interval: Duration,
    /// The longest wait between retries after a failure (default 5 s).
    pub max_backoff: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch: 1024,
            poll_interval: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// The running relay of one outbox. Dropping it stops the relay at once (rows not yet deleted
/// are published again by the next relay, with the same ids); [`shutdown`](Self::shutdown)
/// lets it finish the batch in flight.
#[derive(Debug)]
pub struct Relay {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    pub(crate) fn start<DB: Db, R: Reporter>(
        outbox: SqlxOutbox<DB>,
        coordinator: Coordinator<R>,
        options: RelayOptions,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let worker = Worker {
            outbox,
            coordinator,
            options: RelayOptions {
                batch: options.batch.max(1),
                ..options
            },
            stopped,
        };
        Self {
            stop,
            task: Some(tokio::spawn(worker.run())),
        }
    }

    /// Stops the relay after the batch in flight (its rows are deleted if the stream
    /// acknowledged them) and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Whether the relay has stopped: shut down, or its coordinator was.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Worker<DB: Db, R: Reporter> {
    outbox: SqlxOutbox<DB>,
    coordinator: Coordinator<R>,
    options: RelayOptions,
    stopped: watch::Receiver<bool>,
}

/// What one pass over the table did.
enum Pass {
    /// Published and deleted this many rows.
    Relayed(usize),
    /// The coordinator is shut down: the relay ends.
    Over,
}

impl<DB: Db, R: Reporter> Worker<DB, R> {
    async fn run(mut self) {
        let mut listener: Option<Listener> = None;
        let mut attempt: u32 = 0;
        loop {
            if *self.stopped.borrow() {
                return;
            }
            if listener.is_none() {
                // Where the database can wake the relay; on failure, polling still works.
                listener = DB::listen(&self.outbox.pool, &self.outbox.table)
                    .await
                    .ok()
                    .flatten();
            }
            match self.pass().await {
                Ok(Pass::Over) => return,
                Ok(Pass::Relayed(n)) => {
                    attempt = 0;
                    if n == self.options.batch {
                        continue; // more may wait
                    }
                    self.idle(&mut listener).await;
                }
                Err(error) if error.kind() == ErrorKind::Shutdown => return,
                Err(error) => {
                    attempt = attempt.saturating_add(1);
                    let delay = backoff(attempt, self.options.max_backoff);
                    let outbox = self.outbox.table.clone();
                    self.coordinator.report(EventKind::OutboxRelayFailed, || {
                        CoordinatorEvent::OutboxRelayFailed {
                            outbox: outbox.clone(),
                            attempt,
                            delay,
                            error: error.to_string().into(),
                        }
                    });
                    listener = None; // its connection may be the one that failed
                    self.sleep(delay).await;
                }
            }
        }
    }

    /// Reads one batch, publishes it, deletes what the stream acknowledged.
    async fn pass(&self) -> herald::Result<Pass> {
        let SqlxOutbox { pool, table, .. } = &self.outbox;
        let limit = i64::try_from(self.options.batch).unwrap_or(i64::MAX);
        let rows = DB::read_rows(pool, table, limit)
            .await
            .map_err(|e| crate::database(format!("could not read the outbox {table}"), e))?;
        if rows.is_empty() {
            // Nothing to publish: still notice a coordinator that was shut down.
            let none: [(&str, Vec<u8>, String); 0] = [];
            return match self.coordinator.publish_batch_idempotent(none).await {
                Err(error) if error.kind() == ErrorKind::Shutdown => Ok(Pass::Over),
                _ => Ok(Pass::Relayed(0)),
            };
        }
        let count = rows.len();
        let rows: Vec<(i64, i64, String, Vec<u8>)> = rows
            .into_iter()
            .map(|r: OutboxRow| (r.id, r.created_ms, r.key, r.payload))
            .collect();
        let mut items = Vec::with_capacity(count);
        for (id, _, key, payload) in &rows {
            items.push((key.as_str(), payload.clone(), self.outbox.message_id(*id)));
        }
        let acks = match self.coordinator.publish_batch_idempotent(items).await {
            Ok(acks) => acks,
            Err(error) if error.kind() == ErrorKind::Shutdown => return Ok(Pass::Over),
            Err(error) => return Err(error),
        };
        let ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
        DB::delete_rows(pool, table, &ids).await.map_err(|e| {
            crate::database(format!("could not remove relayed rows from {table}"), e)
        })?;
        // What is left once the batch is out (0 when drained): a query, only when someone listens.
        if self.coordinator.wants(EventKind::OutboxBacklog) {
            let (pending, oldest) = DB::backlog(pool, table)
                .await
                .map_err(|e| crate::database(format!("could not count the outbox {table}"), e))?;
            self.coordinator.report(EventKind::OutboxBacklog, || {
                CoordinatorEvent::OutboxBacklog {
                    outbox: table.clone(),
                    pending: u64::try_from(pending).unwrap_or(0),
                    oldest_age: oldest.map_or(Duration::ZERO, age),
                }
            });
        }
        for ((id, created_ms, _, _), ack) in rows.iter().zip(&acks) {
            self.coordinator.report(EventKind::OutboxRelayed, || {
                CoordinatorEvent::OutboxRelayed {
                    outbox: table.clone(),
                    row: u64::try_from(*id).unwrap_or(0),
                    seq: ack.seq,
                    duplicate: ack.duplicate,
                    lag: age(*created_ms),
                }
            });
        }
        Ok(Pass::Relayed(count))
    }

    /// Waits for a notification, the poll interval, or the stop.
    async fn idle(&mut self, listener: &mut Option<Listener>) {
        let poll = self.options.poll_interval;
        match listener {
            Some(l) => {
                let woke = tokio::select! {
                    woke = l.next() => woke.is_ok(),
                    _ = tokio::time::sleep(poll.max(Duration::from_secs(1))) => true,
                    _ = self.stopped.changed() => true,
                };
                if !woke {
                    *listener = None;
                }
            }
            None => self.sleep(poll).await,
        }
    }

    async fn sleep(&mut self, delay: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.stopped.changed() => {}
        }
    }
}

/// How long ago `created_ms` was.
fn age(created_ms: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let created = u128::try_from(created_ms).unwrap_or(0);
    Duration::from_millis(u64::try_from(now.saturating_sub(created)).unwrap_or(u64::MAX))
}

/// 50 ms doubling up to `max`.
fn backoff(attempt: u32, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(16);
    Duration::from_millis(50u64.saturating_mul(1 << exp)).min(max)
}
