//! The statements, once for both databases: [`Db`] is implemented for `sqlx::Sqlite` and
//! `sqlx::Postgres` by one macro, since the SQL they share (`$n` parameters, `ON CONFLICT`
//! upserts, `IS DISTINCT FROM`) is the same text; only the column types of the outbox differ.

use futures::future::BoxFuture;
use herald::{Checkpoint, CheckpointKey};
use sqlx::{Pool, Row};

use crate::outbox::OutboxRow;

mod sealed {
    pub trait Sealed {}
}

/// A database `herald-sqlx` runs on: `sqlx::Sqlite` or `sqlx::Postgres`. Sealed.
pub trait Db: sqlx::Database + sealed::Sealed {
    #[doc(hidden)]
    fn create_checkpoints<'a>(
        pool: &'a Pool<Self>,
        table: &'a str,
    ) -> BoxFuture<'a, sqlx::Result<()>>;
    #[doc(hidden)]
    fn load_checkpoint<'a>(
        pool: &'a Pool<Self>,
        table: &'a str,
        key: &'a CheckpointKey,
    ) -> BoxFuture<'a, sqlx::Result<Option<Checkpoint>>>;
    #[doc(hidden)]
    fn save_checkpoint<'a>(
        conn: &'a mut Self::Connection,
        table: &'a str,
        key: &'a CheckpointKey,
        at: Checkpoint,
    ) -> BoxFuture<'a, sqlx::Result<()>>;
    #[doc(hidden)]
    fn create_outbox<'a>(pool: &'a Pool<Self>, table: &'a str) -> BoxFuture<'a, sqlx::Result<()>>;
    /// The outbox's instance token, made once per database: message ids carry it, so two
    /// outboxes (two databases, or a table made again) never share one.
    #[doc(hidden)]
    fn outbox_instance<'a>(
        pool: &'a Pool<Self>,
        table: &'a str,
        candidate: &'a str,
    ) -> BoxFuture<'a, sqlx::Result<String>>;
    #[doc(hidden)]
    fn enqueue<'a>(
        conn: &'a mut Self::Connection,
        table: &'a str,
        key: &'a str,
        payload: &'a [u8],
        now_ms: i64,
    ) -> BoxFuture<'a, sqlx::Result<i64>>;
    #[doc(hidden)]
    fn read_rows<'a>(
        pool: &'a Pool<Self>,
        table: &'a str,
        limit: i64,
    ) -> BoxFuture<'a, sqlx::Result<Vec<OutboxRow>>>;
    #[doc(hidden)]
    fn delete_rows<'a>(
        pool: &'a Pool<Self>,
        table: &'a str,
        ids: &'a [i64],
    ) -> BoxFuture<'a, sqlx::Result<()>>;
    #[doc(hidden)]
    fn backlog<'a>(
        pool: &'a Pool<Self>,
        table: &'a str,
    ) -> BoxFuture<'a, sqlx::Result<(i64, Option<i64>)>>;
    /// Listens for the rows committed to `table` (PostgreSQL `LISTEN`), where the database
    /// can say so; `None` where the relay polls.
    #[doc(hidden)]
    fn listen<'a>(
        pool: &'a Pool<Self>,
        table: &'a str,
    ) -> BoxFuture<'a, sqlx::Result<Option<Listener>>>;
}

/// Notifications of committed outbox rows.
#[doc(hidden)]
#[derive(Debug)]
pub struct Listener(sqlx::postgres::PgListener);

impl Listener {
    /// Resolves at the next notification (or an error: the relay then reads anyway).
    pub(crate) async fn next(&mut self) -> sqlx::Result<()> {
        self.0.recv().await.map(drop)
    }
}

/// `u64` positions are stored as `BIGINT`: sequences and nanoseconds stay far below `i64::MAX`
/// (nanoseconds until the year 2262).
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

macro_rules! impl_db {
    ($db:ty, serial = $serial:literal, blob = $blob:literal, notify = $notify:literal, listen = $listen:expr) => {
        impl sealed::Sealed for $db {}

        impl Db for $db {
            fn create_checkpoints<'a>(
                pool: &'a Pool<Self>,
                table: &'a str,
            ) -> BoxFuture<'a, sqlx::Result<()>> {
                Box::pin(async move {
                    let ddl = format!(
                        "CREATE TABLE IF NOT EXISTS {table} (
                            stream TEXT NOT NULL,
                            durable TEXT NOT NULL,
                            filter TEXT NOT NULL,
                            seq BIGINT NOT NULL,
                            stream_created_ns BIGINT,
                            PRIMARY KEY (stream, durable, filter))"
                    );
                    sqlx::query(&ddl).execute(pool).await.map(drop)
                })
            }

            fn load_checkpoint<'a>(
                pool: &'a Pool<Self>,
                table: &'a str,
                key: &'a CheckpointKey,
            ) -> BoxFuture<'a, sqlx::Result<Option<Checkpoint>>> {
                Box::pin(async move {
                    let sql = format!(
                        "SELECT seq, stream_created_ns FROM {table}
                         WHERE stream = $1 AND durable = $2 AND filter = $3"
                    );
                    let row = sqlx::query(&sql)
                        .bind(&*key.stream)
                        .bind(&*key.durable)
                        .bind(&*key.filter)
                        .fetch_optional(pool)
                        .await?;
                    row.map(|row| {
                        let seq: i64 = row.try_get(0)?;
                        let created: Option<i64> = row.try_get(1)?;
                        Ok(Checkpoint::from_nanos(to_u64(seq), created.map(to_u64)))
                    })
                    .transpose()
                })
            }

            fn save_checkpoint<'a>(
                conn: &'a mut Self::Connection,
                table: &'a str,
                key: &'a CheckpointKey,
                at: Checkpoint,
            ) -> BoxFuture<'a, sqlx::Result<()>> {
                Box::pin(async move {
                    // Never backwards within one stream: a batched save that began before a
                    // commit of a later message must not undo it. Another stream (a reset)
                    // replaces the position whatever it is.
                    let sql = format!(
                        "INSERT INTO {table} (stream, durable, filter, seq, stream_created_ns)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (stream, durable, filter) DO UPDATE
                         SET seq = excluded.seq, stream_created_ns = excluded.stream_created_ns
                         WHERE {table}.seq < excluded.seq
                            OR {table}.stream_created_ns IS DISTINCT FROM excluded.stream_created_ns"
                    );
                    sqlx::query(&sql)
                        .bind(&*key.stream)
                        .bind(&*key.durable)
                        .bind(&*key.filter)
                        .bind(to_i64(at.seq))
                        .bind(at.stream_created_nanos().map(to_i64))
                        .execute(&mut *conn)
                        .await
                        .map(drop)
                })
            }

            fn create_outbox<'a>(
                pool: &'a Pool<Self>,
                table: &'a str,
            ) -> BoxFuture<'a, sqlx::Result<()>> {
                Box::pin(async move {
                    let ddl = format!(
                        concat!(
                            "CREATE TABLE IF NOT EXISTS {table} (id ",
                            $serial,
                            ", key TEXT NOT NULL, payload ",
                            $blob,
                            " NOT NULL, created_ms BIGINT NOT NULL)"
                        ),
                        table = table
                    );
                    sqlx::query(&ddl).execute(pool).await.map(drop)
                })
            }

            fn outbox_instance<'a>(
                pool: &'a Pool<Self>,
                table: &'a str,
                candidate: &'a str,
            ) -> BoxFuture<'a, sqlx::Result<String>> {
                Box::pin(async move {
                    let ddl = format!(
                        "CREATE TABLE IF NOT EXISTS {table}_instance (
                            one INTEGER PRIMARY KEY CHECK (one = 1), token TEXT NOT NULL)"
                    );
                    sqlx::query(&ddl).execute(pool).await?;
                    let insert = format!(
                        "INSERT INTO {table}_instance (one, token) VALUES (1, $1)
                         ON CONFLICT (one) DO NOTHING"
                    );
                    sqlx::query(&insert).bind(candidate).execute(pool).await?;
                    let select = format!("SELECT token FROM {table}_instance");
                    sqlx::query(&select).fetch_one(pool).await?.try_get(0)
                })
            }

            fn enqueue<'a>(
                conn: &'a mut Self::Connection,
                table: &'a str,
                key: &'a str,
                payload: &'a [u8],
                now_ms: i64,
            ) -> BoxFuture<'a, sqlx::Result<i64>> {
                Box::pin(async move {
                    let sql = format!(
                        "INSERT INTO {table} (key, payload, created_ms) VALUES ($1, $2, $3) RETURNING id"
                    );
                    let row = sqlx::query(&sql)
                        .bind(key)
                        .bind(payload)
                        .bind(now_ms)
                        .fetch_one(&mut *conn)
                        .await?;
                    let id: i64 = row.try_get(0)?;
                    if $notify {
                        // Delivered when the transaction commits, never before (nor if it
                        // rolls back): the relay wakes for committed rows only.
                        sqlx::query("SELECT pg_notify($1, '')")
                            .bind(table)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(id)
                })
            }

            fn read_rows<'a>(
                pool: &'a Pool<Self>,
                table: &'a str,
                limit: i64,
            ) -> BoxFuture<'a, sqlx::Result<Vec<OutboxRow>>> {
                Box::pin(async move {
                    let sql = format!(
                        "SELECT id, key, payload, created_ms FROM {table} ORDER BY id LIMIT $1"
                    );
                    let rows = sqlx::query(&sql).bind(limit).fetch_all(pool).await?;
                    rows.into_iter()
                        .map(|row| {
                            Ok(OutboxRow {
                                id: row.try_get(0)?,
                                key: row.try_get(1)?,
                                payload: row.try_get(2)?,
                                created_ms: row.try_get(3)?,
                            })
                        })
                        .collect()
                })
            }

            fn delete_rows<'a>(
                pool: &'a Pool<Self>,
                table: &'a str,
                ids: &'a [i64],
            ) -> BoxFuture<'a, sqlx::Result<()>> {
                Box::pin(async move {
                    // Exact ids, never a range: a row with a lower id may commit later.
                    for chunk in ids.chunks(500) {
                        let params: Vec<String> =
                            (1..=chunk.len()).map(|i| format!("${i}")).collect();
                        let sql =
                            format!("DELETE FROM {table} WHERE id IN ({})", params.join(", "));
                        let mut query = sqlx::query(&sql);
                        for id in chunk {
                            query = query.bind(*id);
                        }
                        query.execute(pool).await?;
                    }
                    Ok(())
                })
            }

            fn backlog<'a>(
                pool: &'a Pool<Self>,
                table: &'a str,
            ) -> BoxFuture<'a, sqlx::Result<(i64, Option<i64>)>> {
                Box::pin(async move {
                    let sql = format!("SELECT COUNT(*), MIN(created_ms) FROM {table}");
                    let row = sqlx::query(&sql).fetch_one(pool).await?;
                    Ok((row.try_get(0)?, row.try_get(1)?))
                })
            }

            fn listen<'a>(
                pool: &'a Pool<Self>,
                table: &'a str,
            ) -> BoxFuture<'a, sqlx::Result<Option<Listener>>> {
                Box::pin($listen(pool, table))
            }
        }
    };
}

impl_db!(
    sqlx::Sqlite,
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT",
    blob = "BLOB",
    notify = false,
    listen = |_, _| async { Ok(None) }
);
impl_db!(
    sqlx::Postgres,
    serial = "BIGSERIAL PRIMARY KEY",
    blob = "BYTEA",
    notify = true,
    listen = listen_postgres
);

async fn listen_postgres(
    pool: &Pool<sqlx::Postgres>,
    table: &str,
) -> sqlx::Result<Option<Listener>> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(table).await?;
    Ok(Some(Listener(listener)))
}
