//! Support for herald-sqlx's tests: a database of each kind ([`TestDb`]), the application's
//! own SQL on either ([`App`]), waits with deadlines, a seeded random number generator, a
//! private PostgreSQL cluster and a private nats-server.
//!
//! Two test binaries include this module and each uses a part of it.
#![allow(
    dead_code,
    reason = "shared by two test binaries, each of which uses a part of it"
)]

pub(crate) mod nats;
pub(crate) mod postgres;

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::{Pool, Row as _};

use postgres::Postgres;

/// Each named scenario (an `async fn <name><DB: App>(&TestDb)` of the invoking module) as a
/// test on SQLite, `sqlite::<name>`, and one on PostgreSQL, `postgres::<name>`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name::<sqlx::Sqlite>(&crate::support::TestDb::sqlite()).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name::<sqlx::Postgres>(&crate::support::TestDb::postgres()).await;
            })*
        }
    };
}
pub(crate) use on_both;

/// A `sh` process that runs `cleanup` if this process dies without dropping the watchdog (the
/// pipe to it closes, so its `read` fails): what a destructor cannot do after a SIGKILL.
pub(crate) struct Watchdog(Option<std::process::Child>);

impl Watchdog {
    pub(crate) fn new(cleanup: &str) -> Self {
        let script = format!("read _l || {{ {cleanup}; }} >/dev/null 2>&1");
        let child = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
        Self(child)
    }
}

impl Drop for Watchdog {
    /// Dismisses it: the owner cleaned up.
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = std::io::Write::write_all(&mut stdin, b"done\n");
            }
            let _ = child.wait();
        }
    }
}

/// How long a condition may take before a wait fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// A database for one test: a SQLite file in a temp dir, or a private PostgreSQL cluster.
pub(crate) struct TestDb {
    /// What `App::connect` takes: `sqlite://<path>?mode=rwc` or `postgres://...`.
    pub(crate) url: String,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<Postgres>,
}

impl TestDb {
    /// A SQLite file that does not exist yet (`mode=rwc` creates it).
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("herald-sqlx-")
            .tempdir()
            .expect("temp dir for SQLite");
        let path = dir.path().join("app.db");
        Self {
            url: format!("sqlite://{}?mode=rwc", path.display()),
            _sqlite: Some(dir),
            _postgres: None,
        }
    }

    /// A private PostgreSQL cluster's `postgres` database.
    pub(crate) fn postgres() -> Self {
        let cluster = Postgres::start();
        Self {
            url: cluster.url(),
            _sqlite: None,
            _postgres: Some(cluster),
        }
    }
}

/// What the tests do on either database with the application's own SQL. The statements use
/// `$n` parameters, which both databases accept; every value is an `i64`.
pub(crate) trait App: herald_sqlx::Db {
    /// `"sqlite"` or `"postgres"`.
    const KIND: &'static str;

    /// A pool on `url`.
    fn connect(url: &str) -> impl Future<Output = Pool<Self>> + Send;

    /// A pool on `url` set up for many small transactions: SQLite in WAL mode with
    /// `synchronous = NORMAL` (a commit survives the death of the process, not of the
    /// machine); PostgreSQL as [`connect`](Self::connect).
    fn connect_fast(url: &str) -> impl Future<Output = Pool<Self>> + Send;

    /// A pool on a database that cannot be reached (connections are made lazily, and given
    /// up after two seconds).
    fn unreachable() -> Pool<Self>;

    /// Runs `sql` with `binds` on `conn` (a transaction, say); the number of rows it changed.
    fn exec<'a>(
        conn: &'a mut Self::Connection,
        sql: &'a str,
        binds: &'a [i64],
    ) -> impl Future<Output = sqlx::Result<u64>> + Send + 'a;

    /// Runs `sql` on the pool; panics on an error.
    fn run<'a>(pool: &'a Pool<Self>, sql: &'a str) -> impl Future<Output = ()> + Send + 'a;

    /// The rows of `sql`, every column read as an `i64`.
    fn rows<'a>(
        pool: &'a Pool<Self>,
        sql: &'a str,
    ) -> impl Future<Output = Vec<Vec<i64>>> + Send + 'a;

    /// Makes every write of checkpoint `seq` into `table` fail (a trigger raises an error).
    fn fail_checkpoint_at<'a>(
        pool: &'a Pool<Self>,
        table: &'a str,
        seq: i64,
    ) -> impl Future<Output = ()> + Send + 'a;

    /// Removes what [`fail_checkpoint_at`](Self::fail_checkpoint_at) added.
    fn heal_checkpoints<'a>(
        pool: &'a Pool<Self>,
        table: &'a str,
    ) -> impl Future<Output = ()> + Send + 'a;

    /// The single integer `sql` returns.
    fn scalar<'a>(pool: &'a Pool<Self>, sql: &'a str) -> impl Future<Output = i64> + Send + 'a {
        async move {
            let rows = Self::rows(pool, sql).await;
            assert_eq!(rows.len(), 1, "{sql} returned {} rows", rows.len());
            rows[0][0]
        }
    }
}

macro_rules! impl_app {
    (
        $db:ty,
        $name:literal,
        fast = $fast:expr,
        unreachable = $unreachable:expr,
        fail = $fail:expr,
        heal = $heal:expr
    ) => {
        impl App for $db {
            const KIND: &'static str = $name;

            async fn connect(url: &str) -> Pool<Self> {
                Pool::<$db>::connect(url)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
            }

            async fn connect_fast(url: &str) -> Pool<Self> {
                let options: <<$db as sqlx::Database>::Connection as sqlx::Connection>::Options =
                    url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
                Pool::<$db>::connect_with($fast(options))
                    .await
                    .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
            }

            fn unreachable() -> Pool<Self> {
                let url: String = $unreachable();
                sqlx::pool::PoolOptions::<$db>::new()
                    .acquire_timeout(Duration::from_secs(2))
                    .connect_lazy(&url)
                    .unwrap_or_else(|e| panic!("a lazy pool on {url}: {e}"))
            }

            async fn exec(
                conn: &mut Self::Connection,
                sql: &str,
                binds: &[i64],
            ) -> sqlx::Result<u64> {
                let mut query = sqlx::query(sql);
                for bind in binds {
                    query = query.bind(*bind);
                }
                Ok(query.execute(&mut *conn).await?.rows_affected())
            }

            async fn run(pool: &Pool<Self>, sql: &str) {
                if let Err(e) = sqlx::raw_sql(sql).execute(pool).await {
                    panic!("{sql}: {e}");
                }
            }

            async fn rows(pool: &Pool<Self>, sql: &str) -> Vec<Vec<i64>> {
                let rows = sqlx::query(sql)
                    .fetch_all(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.try_get::<i64, _>(i).expect("an integer column"))
                            .collect()
                    })
                    .collect()
            }

            async fn fail_checkpoint_at(pool: &Pool<Self>, table: &str, seq: i64) {
                let sql: String = $fail(table, seq);
                Self::run(pool, &sql).await;
            }

            async fn heal_checkpoints(pool: &Pool<Self>, table: &str) {
                let sql: String = $heal(table);
                Self::run(pool, &sql).await;
            }
        }
    };
}

impl_app!(
    sqlx::Sqlite,
    "sqlite",
    fast = |options: sqlx::sqlite::SqliteConnectOptions| options
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal),
    unreachable = || "sqlite:///nonexistent-herald-sqlx-dir/app.db?mode=rwc".to_owned(),
    fail = |table: &str, seq: i64| format!(
        "CREATE TRIGGER fail_insert BEFORE INSERT ON {table} WHEN NEW.seq = {seq}
             BEGIN SELECT RAISE(ABORT, 'injected checkpoint failure'); END;
         CREATE TRIGGER fail_update BEFORE UPDATE ON {table} WHEN NEW.seq = {seq}
             BEGIN SELECT RAISE(ABORT, 'injected checkpoint failure'); END;"
    ),
    heal = |_: &str| "DROP TRIGGER fail_insert; DROP TRIGGER fail_update;".to_owned()
);
impl_app!(
    sqlx::Postgres,
    "postgres",
    fast = |options: sqlx::postgres::PgConnectOptions| options,
    unreachable = || format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        postgres::free_port()
    ),
    fail = |table: &str, seq: i64| format!(
        "CREATE FUNCTION fail_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN IF NEW.seq = {seq} THEN RAISE EXCEPTION 'injected checkpoint failure'; END IF;
             RETURN NEW; END $$;
         CREATE TRIGGER fail_checkpoint BEFORE INSERT OR UPDATE ON {table}
             FOR EACH ROW EXECUTE FUNCTION fail_checkpoint();"
    ),
    heal = |table: &str| format!(
        "DROP TRIGGER fail_checkpoint ON {table}; DROP FUNCTION fail_checkpoint();"
    )
);

/// Polls `condition` until it holds; panics with `what()` after `deadline`.
pub(crate) async fn wait_until<F, Fut>(
    deadline: Duration,
    mut condition: F,
    what: impl Fn() -> String,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while !condition().await {
        assert!(Instant::now() < end, "not within {deadline:?}: {}", what());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A small xorshift generator, seeded from `HERALD_SQLX_SEED` or the clock (printed, so a
/// failing run can be repeated).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env(what: &str) -> Self {
        let seed = std::env::var("HERALD_SQLX_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{what}: HERALD_SQLX_SEED={seed}");
        Self::new(seed)
    }

    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A number in `range`.
    pub(crate) fn in_range(&mut self, range: std::ops::Range<u64>) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        range.start + self.0 % (range.end - range.start).max(1)
    }
}
