//! `roost doctor`: checks the host a node runs on against its config, and says what to fix.
//!
//! People run roost on Raspberry Pis, where most trouble is the host, not roost: an open-file
//! limit below `limits.max_connections`, a slow SD card under the history database, a CPU
//! that throttles when hot, a clock that is off after a boot without network (tokens carry
//! times). Each check family lives in its own file, split into a reader (the /proc and /sys
//! files, through [`Host`], or a syscall) and a pure judgement function that the unit tests
//! feed fake inputs. A file that does not exist (no thermal zone in a container, no Pi
//! firmware flags on a PC) is reported as unknown, never as an error.

mod clock;
mod limits;
mod memory;
mod remote;
mod storage;
mod thermal;

use roost_config::Config;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// How a check came out. The worst status of a run decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Nothing to judge here (not a Pi, not configured): does not change the exit code.
    Info,
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Info => "info",
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Check {
    pub check: &'static str,
    pub found: String,
    pub status: Status,
    /// What to do about it; empty when nothing is to be done.
    pub fix: String,
}

impl Check {
    pub(crate) fn new(check: &'static str, status: Status, found: impl Into<String>) -> Check {
        Check {
            check,
            found: found.into(),
            status,
            fix: String::new(),
        }
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = fix.into();
        self
    }
}

/// Reads /proc and /sys files under `root` (`/` on a real host, a fake tree in tests).
pub(crate) struct Host {
    root: PathBuf,
}

impl Host {
    pub(crate) fn real() -> Host {
        Host {
            root: PathBuf::from("/"),
        }
    }

    /// The file's text, trimmed (and without the NUL the device tree ends strings with);
    /// `None` when it does not exist or cannot be read.
    pub(crate) fn read(&self, path: &str) -> Option<String> {
        let full = self.root.join(path.trim_start_matches('/'));
        let text = std::fs::read_to_string(full).ok()?;
        Some(
            text.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_owned(),
        )
    }
}

/// The outcome of every check, in the order they ran.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub(crate) fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// 0 when all is well, 1 with warnings, 2 with failures.
    pub(crate) fn exit_code(&self) -> i32 {
        match self.worst() {
            Status::Fail => 2,
            Status::Warn => 1,
            Status::Ok | Status::Info => 0,
        }
    }

    pub(crate) fn json(&self) -> String {
        let value = serde_json::json!({
            "status": match self.worst() { Status::Info => Status::Ok, s => s },
            "exit_code": self.exit_code(),
            "checks": self.checks,
        });
        format!("{value:#}\n")
    }

    /// A plain-text table: check, found, status, fix.
    pub(crate) fn table(&self) -> String {
        let width = |f: fn(&Check) -> usize, title: &str| {
            self.checks
                .iter()
                .map(f)
                .max()
                .unwrap_or(0)
                .max(title.len())
        };
        let w_check = width(|c| c.check.len(), "CHECK");
        let w_found = width(|c| c.found.chars().count(), "FOUND");
        let mut out = String::new();
        let mut row = |check: &str, found: &str, status: &str, fix: &str| {
            let line = format!("{check:<w_check$}  {found:<w_found$}  {status:<8}{fix}");
            let _ = writeln!(out, "{}", line.trim_end());
        };
        row("CHECK", "FOUND", "STATUS", "FIX");
        for c in &self.checks {
            row(c.check, &c.found, c.status.label(), &c.fix);
        }
        let summary = match self.worst() {
            Status::Fail => "failures: the node will not do what its config asks on this host",
            Status::Warn => "warnings: the node runs, see the fixes above",
            Status::Ok | Status::Info => "all good",
        };
        let _ = writeln!(out, "\n{summary} (exit code {})", self.exit_code());
        out
    }
}

/// Runs every check against this host and `config`.
pub(crate) async fn run(config: &Config) -> Report {
    let host = Host::real();
    let data_dir = config.node.data_dir.clone();
    let sqlite = config.history.database_url.is_none()
        || config
            .history
            .database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("sqlite:"));
    let mut checks = vec![thermal::model(&host)];
    checks.extend(limits::checks(&host, config));
    checks.push(memory::check(&host, config));
    // The probe blocks on fsync for up to a few seconds: keep it off the runtime's threads.
    let storage = tokio::task::spawn_blocking(move || storage::checks(&data_dir, sqlite))
        .await
        .unwrap_or_else(|e| {
            vec![Check::new(
                "storage",
                Status::Fail,
                format!("probe crashed: {e}"),
            )]
        });
    checks.extend(storage);
    checks.extend(thermal::checks(&host));
    checks.push(clock::check());
    checks.push(remote::postgres(config).await);
    checks.extend(remote::cluster(config).await);
    Report { checks }
}

/// `n` with thousands separators, for the table.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `bytes` in MiB or GiB, for the table.
pub(crate) fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

/// The nearest existing directory at or above `dir` (the data dir may not exist before the
/// node's first start; what matters is the disk it will be on).
pub(crate) fn existing_ancestor(dir: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(dir).ok()?;
    absolute
        .ancestors()
        .find(|p| p.is_dir())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(statuses: &[Status]) -> Report {
        Report {
            checks: statuses.iter().map(|s| Check::new("x", *s, "y")).collect(),
        }
    }

    #[test]
    fn exit_code_is_the_worst_status() {
        assert_eq!(report(&[]).exit_code(), 0);
        assert_eq!(report(&[Status::Ok, Status::Info]).exit_code(), 0);
        assert_eq!(
            report(&[Status::Ok, Status::Warn, Status::Info]).exit_code(),
            1
        );
        assert_eq!(report(&[Status::Fail, Status::Warn]).exit_code(), 2);
    }

    #[test]
    fn table_and_json_carry_every_row() {
        let r = Report {
            checks: vec![
                Check::new("open files", Status::Warn, "soft 1,024").fix("raise it"),
                Check::new("cpu temperature", Status::Info, "unknown"),
            ],
        };
        let table = r.table();
        assert!(table.starts_with("CHECK"), "{table}");
        assert!(
            table.contains("open files") && table.contains("WARN") && table.contains("raise it")
        );
        assert!(table.contains("exit code 1"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(json["exit_code"], 1);
        assert_eq!(json["status"], "warn");
        assert_eq!(json["checks"][1]["status"], "info");
        assert_eq!(json["checks"][0]["fix"], "raise it");
    }

    #[test]
    fn host_reads_under_its_root_and_strips_device_tree_nul() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/device-tree")).unwrap();
        std::fs::write(
            dir.path().join("proc/device-tree/model"),
            "Raspberry Pi 5 Model B Rev 1.0\0",
        )
        .unwrap();
        let host = Host {
            root: dir.path().to_path_buf(),
        };
        assert_eq!(
            host.read("/proc/device-tree/model").as_deref(),
            Some("Raspberry Pi 5 Model B Rev 1.0")
        );
        assert_eq!(host.read("/sys/class/thermal/thermal_zone0/temp"), None);
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(100_228), "100,228");
        assert_eq!(thousands(1_048_576), "1,048,576");
        assert_eq!(size(512 * 1024 * 1024), "512 MiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake /proc and /sys tree for the readers' tests.
    use super::Host;

    pub(crate) struct FakeHost {
        pub dir: tempfile::TempDir,
    }

    impl FakeHost {
        pub(crate) fn new(files: &[(&str, &str)]) -> FakeHost {
            let dir = tempfile::tempdir().unwrap();
            for (path, text) in files {
                let full = dir.path().join(path.trim_start_matches('/'));
                std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                std::fs::write(full, text).unwrap();
            }
            FakeHost { dir }
        }

        pub(crate) fn host(&self) -> Host {
            Host {
                root: self.dir.path().to_path_buf(),
            }
        }
    }
}
