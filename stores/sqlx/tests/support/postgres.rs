//! A private PostgreSQL 15 cluster for one test: `initdb` into a temp dir, `pg_ctl start` on a
//! free loopback port, `pg_ctl stop -m immediate` and the dir removed on drop.
//!
//! PostgreSQL refuses to run as root: as root the cluster belongs to `nobody` and every
//! PostgreSQL command runs through `runuser -u nobody --`. A [`Watchdog`] stops the cluster
//! and removes its dir if the test process dies without running destructors.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Watchdog;

/// Where Debian's `postgresql-15` puts its programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The unprivileged user that owns the cluster when the tests run as root.
const OWNER: &str = "nobody";

/// A running PostgreSQL cluster; stopped and deleted on drop.
pub(crate) struct Postgres {
    port: u16,
    data: PathBuf,
    _watchdog: Watchdog,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Creates and starts a cluster (user `postgres`, trust authentication, no fsync: the
    /// tests kill clients, never the database).
    pub(crate) fn start() -> Self {
        let initdb = Path::new(BIN).join("initdb");
        assert!(
            initdb.is_file(),
            "PostgreSQL 15 is not installed ({} is missing): `apt-get install postgresql`",
            initdb.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("herald-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        let data = dir.path().join("data");
        fs::create_dir(&data).expect("create the data dir");
        if is_root() {
            // The temp dir (0700, root's) must be passable by the owner of the data dir.
            chmod(dir.path(), "755");
            run(Command::new("chown").args([OWNER, &path_str(&data)]));
        }
        run(pg("initdb")
            .args([
                "-D",
                &path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
            ])
            .args(["-E", "UTF8", "--locale=C"]));
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c full_page_writes=off -c max_connections=200",
                path_str(&data)
            );
            let log = path_str(&data.join("server.log"));
            let started = pg("pg_ctl")
                .args([
                    "-D",
                    &path_str(&data),
                    "-l",
                    &log,
                    "-o",
                    &options,
                    "-w",
                    "start",
                ])
                .output()
                .expect("run pg_ctl start");
            if started.status.success() {
                let watchdog = watchdog(&data, dir.path());
                return Self {
                    port,
                    data,
                    _watchdog: watchdog,
                    _dir: dir,
                };
            }
            last_error = format!(
                "{}{}\n--- server.log ---\n{}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr),
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("PostgreSQL did not start on a free port in 5 attempts:\n{last_error}");
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg("pg_ctl")
            .args(["-D", &path_str(&self.data), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Then the watchdog is dismissed, and the temp dir removed (root may remove files
        // that belong to `nobody`).
    }
}

/// A PostgreSQL program, run as the cluster's owner.
fn pg(program: &str) -> Command {
    let program = Path::new(BIN).join(program);
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", OWNER, "--"]).arg(program);
        command.current_dir("/");
        command
    } else {
        Command::new(program)
    }
}

/// Stops the cluster and removes `dir` if this process dies without dropping it.
fn watchdog(data: &Path, dir: &Path) -> Watchdog {
    let pg_ctl = if is_root() {
        format!("runuser -u {OWNER} -- {BIN}/pg_ctl")
    } else {
        format!("{BIN}/pg_ctl")
    };
    let (data, dir) = (path_str(data), path_str(dir));
    Watchdog::new(&format!(
        "{pg_ctl} -D '{data}' -m immediate stop; rm -rf '{dir}'"
    ))
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn chmod(path: &Path, mode: &str) {
    run(Command::new("chmod").args([mode, &path_str(path)]));
}

/// Runs `command`; panics with its output when it fails.
fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("could not run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// A loopback port nobody listens on now (never 4222, the machine's shared NATS port).
pub(crate) fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        if port != 4222 {
            return port;
        }
    }
}
