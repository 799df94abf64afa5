//! [`Run`]: one scenario on one database, and the [`Process`]es it starts.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use herald::{Coordinator, Reporter, StartPosition};
use herald_sqlx::{SqlxCheckpoints, SqlxOutbox};
use sqlx::Pool;

use crate::roles::{id_and_token, nats_coordinator};
use crate::support::nats::NatsServer;
use crate::support::{wait_until, App, Rng, TestDb, Watchdog};
use crate::{events, DB_KIND, DB_URL, EVENTS, KILLS, NATS_URL, ROLE, SLOW, TABLES};

/// One scenario on one database: the tables, a nats-server, the processes it starts.
pub(crate) struct Run<DB: App> {
    name: &'static str,
    url: String,
    pub(crate) pool: Pool<DB>,
    pub(crate) nats: NatsServer,
    pub(crate) events: i64,
    rng: Rng,
    /// The children's output; kept when the scenario fails.
    logs: Option<tempfile::TempDir>,
    spawned: usize,
    started: Instant,
}

impl<DB: App> Run<DB> {
    pub(crate) async fn start(db: &TestDb, name: &'static str) -> Self {
        let pool = DB::connect_fast(&db.url).await;
        DB::run(&pool, TABLES).await;
        // Made once here, not by two processes at a time.
        SqlxOutbox::new(pool.clone()).await.expect("outbox");
        SqlxCheckpoints::new(pool.clone())
            .await
            .expect("checkpoints");
        Self {
            name,
            url: db.url.clone(),
            pool,
            nats: NatsServer::start(),
            events: events(),
            rng: Rng::from_env(&format!("{name} on {}", DB::KIND)),
            logs: Some(tempfile::tempdir().expect("temp dir for logs")),
            spawned: 0,
            started: Instant::now(),
        }
    }

    /// Starts a process playing `role`.
    pub(crate) fn spawn(&mut self, role: &str) -> Process {
        self.spawned += 1;
        let logs = self.logs.as_ref().expect("logs").path();
        let log = logs.join(format!("{}-{role}.log", self.spawned));
        let file = std::fs::File::create(&log).expect("create a log");
        let child = Command::new(std::env::current_exe().expect("this test binary"))
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(DB_KIND, DB::KIND)
            .env(DB_URL, &self.url)
            .env(NATS_URL, self.nats.url())
            .env(EVENTS, self.events.to_string())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log handle"))
            .stderr(file)
            .spawn()
            .expect("start a child process");
        Process {
            _watchdog: Watchdog::new(&format!("kill -KILL {}", child.id())),
            child,
            log,
            role: role.into(),
            status: None,
        }
    }

    /// Waits until `table` has grown by a random step (capped at 90% of the events), while
    /// `processes` run: the next random point to kill one at.
    pub(crate) async fn progress(&mut self, table: &str, processes: &mut [&mut Process]) {
        let count = format!("SELECT COUNT(*) FROM {table}");
        let now = DB::scalar(&self.pool, &count).await;
        let step = u64::try_from(self.events).expect("positive") / (KILLS as u64 + 6);
        let step = i64::try_from(self.rng.in_range(step / 2..step * 3 / 2)).expect("small");
        let goal = (now + step).min(self.events * 9 / 10);
        let deadline = Instant::now() + SLOW;
        while DB::scalar(&self.pool, &count).await < goal {
            for process in processes.iter_mut() {
                if process.exited().is_some() {
                    return; // a non-final process that finished: nothing left to kill it in
                }
            }
            assert!(
                Instant::now() < deadline,
                "{table} stayed below {goal} for {SLOW:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A coordinator of this scenario's stream, for the test itself.
    pub(crate) async fn coordinator(&self) -> Coordinator<impl Reporter> {
        nats_coordinator(&self.nats.url(), "test").await
    }

    /// Every event in the stream, as (id, token).
    pub(crate) async fn read_stream(&self) -> Vec<Vec<i64>> {
        let coordinator = self.coordinator().await;
        let mut sub = coordinator
            .subscribe(">")
            .start(StartPosition::All)
            .await
            .expect("subscribe");
        let end = coordinator.publish("end", "end").await.expect("publish");
        let mut found = Vec::new();
        loop {
            let message = tokio::time::timeout(SLOW, sub.next()).await;
            let message = message
                .expect("the stream's end in time")
                .expect("open")
                .expect("a message");
            if message.seq == end {
                break;
            }
            if message.key() != "end" {
                found.push(id_and_token(&message.payload));
            }
        }
        coordinator.shutdown().await;
        found
    }

    /// What the consumer applied, as (id, token).
    pub(crate) async fn applied(&self) -> Vec<Vec<i64>> {
        DB::rows(&self.pool, "SELECT id, token FROM applied").await
    }
}

impl<DB: App> Drop for Run<DB> {
    fn drop(&mut self) {
        let (name, kind) = (self.name, DB::KIND);
        eprintln!(
            "{name} on {kind}: {} events, {:?}",
            self.events,
            self.started.elapsed()
        );
        if std::thread::panicking() {
            if let Some(logs) = self.logs.take() {
                eprintln!(
                    "{name} on {kind}: the processes' output is kept in {}",
                    logs.keep().display()
                );
            }
        }
    }
}

/// A child process, SIGKILLed when dropped.
pub(crate) struct Process {
    child: Child,
    log: PathBuf,
    role: String,
    status: Option<ExitStatus>,
    /// Kills it if the test process dies without dropping it.
    _watchdog: Watchdog,
}

impl Process {
    /// Its exit status once it exited; panics with its output when it failed.
    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("poll a child");
            if let Some(status) = self.status.filter(|s| !s.success()) {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("the {} process failed ({status}):\n{log}", self.role);
            }
        }
        self.status
    }

    /// SIGKILL (`Child::kill` on Unix), then reaps it.
    pub(crate) fn kill(mut self) {
        if self.exited().is_none() {
            self.child.kill().expect("SIGKILL");
            self.status = Some(self.child.wait().expect("reap"));
        }
    }

    /// Waits until it exits, successfully.
    pub(crate) async fn finish(mut self) {
        let (role, log) = (self.role.clone(), self.log.clone());
        let done = || std::future::ready(self.exited().is_some());
        wait_until(SLOW, done, || {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("the {role} process did not finish:\n{log}")
        })
        .await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
