//! PostgreSQL for the history tests: a fresh database per test on the test server
//! (`ROOST_TEST_PG_URL`, else 127.0.0.1:5432 database `test`, trust auth: see backend.rs),
//! dropped afterwards, and a private server the fault tests start, stop and restart on a
//! free port (initdb and pg_ctl from the installed PostgreSQL).
//!
//! Postgres being unreachable is a failure with a message saying so, never a skip: the
//! history issue requires these tests to run against a real server.

use super::backend::{pg_admin_url, with_database};
use super::tools::describe;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs one SQL statement with `psql` on the database at `url`: unaligned, tuples only, `|`
/// between columns. `Err` carries psql's output.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    super::tools::require("psql");
    let out = Command::new("timeout")
        .args([
            "30",
            "psql",
            "-X",
            "-qAt",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
        ])
        .args(["-c", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql (apt install postgresql-client): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    } else {
        Err(describe(&out))
    }
}

/// A name no other test (in this or another process) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database of its own on the test server, dropped (connections and all) when dropped.
pub struct PgDb {
    pub name: String,
    /// The test server's URL with database `{name}`.
    pub url: String,
}

impl PgDb {
    /// Creates `roost_e2e_...`; panics, saying why, when the server is not reachable.
    pub fn create() -> PgDb {
        let name = unique_name("roost_e2e");
        let admin = pg_admin_url();
        if let Err(e) = psql(&admin, &format!("CREATE DATABASE {name}")) {
            panic!(
                "PostgreSQL at {admin} (user postgres, trust auth) is needed by the Postgres \
                 history tests and is not usable: run the tests with scripts/test (it starts \
                 one when none is reachable) or point ROOST_TEST_PG_URL at one:\n{e}"
            );
        }
        PgDb {
            url: with_database(&admin, &name),
            name,
        }
    }

    /// Runs SQL in this database; panics on an error.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql).unwrap_or_else(|e| panic!("SQL {sql:?} failed:\n{e}"))
    }
}

impl PgDb {
    /// Opens a transaction that holds `table` in ACCESS EXCLUSIVE mode (every writer, and
    /// every reader of that table, waits) until the returned guard is dropped. Returns once
    /// the lock is granted.
    pub async fn lock_table(&self, table: &str) -> TableLock {
        let mut child = Command::new("psql")
            .args(["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", &self.url])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql");
        {
            use std::io::Write;
            let stdin = child.stdin.as_mut().unwrap();
            writeln!(
                stdin,
                "BEGIN;\nLOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;"
            )
            .unwrap();
            stdin.flush().unwrap();
        }
        let lock = TableLock { child };
        let granted = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        );
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.query(&granted) != "1" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lock on {table} was not granted within 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        lock
    }

    /// How many sessions on this database are waiting for a lock right now.
    pub fn lock_waiters(&self) -> u32 {
        self.query(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .parse()
        .unwrap()
    }
}

/// A lock held by a `psql` session; dropping it ends the session (and the lock).
pub struct TableLock {
    child: std::process::Child,
}

impl Drop for TableLock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(
            &pg_admin_url(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The newest installed PostgreSQL server's `bin` directory.
pub fn server_bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    match dirs.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin: \
             the fault tests need them (apt install postgresql)"
        ),
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A PostgreSQL server of the test's own: its data directory in a temporary folder, on a
/// free port, stopped when dropped. The server refuses to run as root, so when the tests
/// are root it runs as the `postgres` OS user.
pub struct PrivatePg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    running: bool,
}

impl PrivatePg {
    /// initdb and start; panics with the server's log when it cannot.
    pub fn start() -> PrivatePg {
        let bin = server_bin_dir();
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "chown: {}", describe(&out));
        }
        let mut pg = PrivatePg {
            dir,
            bin,
            port: free_port(),
            running: false,
        };
        let data = pg.data();
        let out = pg
            .as_postgres("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed:\n{}", describe(&out));
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// A command for a server binary, run as the `postgres` user when we are root.
    fn as_postgres(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Starts the (stopped) server on its port and waits until it accepts connections.
    pub fn start_again(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .as_postgres("pg_ctl")
            .args(["-w", "-t", "30", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.log_file())
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed:\n{}\nserver log:\n{}",
            describe(&out),
            self.log()
        );
        self.running = true;
    }

    /// Stops the server at once (`-m immediate`: no clean shutdown, like a crash or a
    /// pulled cable as far as clients can tell) and waits until it is gone.
    pub fn stop(&mut self) {
        let out = self
            .as_postgres("pg_ctl")
            .args(["-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop failed:\n{}",
            describe(&out)
        );
        self.running = false;
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL in the `postgres` database; panics on an error.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url(), sql)
            .unwrap_or_else(|e| panic!("SQL {sql:?} failed:\n{e}\nserver log:\n{}", self.log()))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .as_postgres("pg_ctl")
                .args(["-w", "-t", "30", "-m", "immediate", "-D"])
                .arg(self.data())
                .arg("stop")
                .output();
        }
    }
}

pub use super::nats::free_port;
