//! A private `nats-server` with JetStream for one test: a free loopback port (never 4222) and a
//! store dir of its own, [`kill`](NatsServer::kill)ed with SIGKILL and
//! [`restart`](NatsServer::restart)ed on the same port and store; killed on drop.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::postgres::free_port;
use super::Watchdog;

const READY: Duration = Duration::from_secs(15);

/// A `nats-server -js` process owned by a test, running or killed.
pub(crate) struct NatsServer {
    child: Option<Child>,
    /// Kills the server if the test process dies without dropping it.
    watchdog: Option<Watchdog>,
    port: u16,
    /// Length of the log when the current process started.
    log_offset: u64,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts clients.
    pub(crate) fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("herald-sqlx-nats-")
            .tempdir()
            .expect("temp dir for nats-server");
        fs::create_dir(dir.path().join("store")).expect("create the JetStream store dir");
        let mut server = Self {
            child: None,
            watchdog: None,
            port: 0,
            log_offset: 0,
            dir,
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn_and_wait() {
                return server;
            }
        }
        panic!(
            "nats-server did not start on a free port:\n{}",
            server.log()
        );
    }

    /// `nats://127.0.0.1:<port>`
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and waits for the process to be gone. No-op when not running.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.watchdog = None;
    }

    /// Starts again on the same port and store dir (killing a running server first) and waits
    /// until it accepts clients; retries while the port is still taken.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + READY;
        while !self.spawn_and_wait() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not restart on port {}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything every run of the server printed.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Spawns the server; true once it is ready, false when it exited (a taken port).
    fn spawn_and_wait(&mut self) -> bool {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the nats-server log");
        self.log_offset = log.metadata().map_or(0, |m| m.len());
        let store = self.dir.path().join("store");
        let bin = binary();
        let child = Command::new(&bin)
            .args(["-js", "-sd", path_str(&store), "-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", bin.display()));
        let (pid, dir) = (child.id(), path_str(self.dir.path()));
        self.watchdog = Some(Watchdog::new(&format!(
            "kill -KILL {pid}; sleep 1; rm -rf '{dir}'"
        )));
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + READY;
        loop {
            let child = self.child.as_mut().expect("spawned");
            if child.try_wait().expect("poll nats-server").is_some() {
                self.child = None;
                self.watchdog = None;
                return false;
            }
            let ready = self.current_log().contains("Server is ready")
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            if ready {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server on port {} not ready within {READY:?}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn current_log(&self) -> String {
        let log = fs::read(self.log_path()).unwrap_or_default();
        let from = usize::try_from(self.log_offset).map_or(0, |o| o.min(log.len()));
        String::from_utf8_lossy(&log[from..]).into_owned()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `$NATS_SERVER_BIN`, else `nats-server` on the `PATH`, else `/usr/sbin/nats-server`.
fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .chain([PathBuf::from("/usr/sbin/nats-server")])
        .find(|p| p.is_file())
        .expect("nats-server not found: set NATS_SERVER_BIN or `apt-get install nats-server`")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}
