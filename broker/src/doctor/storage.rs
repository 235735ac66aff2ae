//! The data dir's disk: how long a durable write takes, and how much room is left.
//!
//! Every history commit waits for an fsync; an SD card takes tens of milliseconds for one
//! where an SSD takes well under one, and a card's latency has long tails. A short probe
//! (4 KiB writes, each followed by fdatasync, in an unnamed temporary file in the data dir)
//! tells the two apart.

use super::{existing_ancestor, size, Check, Status};
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes the probe makes at most, and the time it may take: whichever ends first.
const PROBE_WRITES: usize = 200;
const PROBE_BUDGET: Duration = Duration::from_secs(3);
/// At least this many writes make a p99 worth printing, however slow the disk.
const PROBE_MIN_WRITES: usize = 20;

/// SSD class: an fsync this fast keeps history acks in single-digit milliseconds.
const SSD_P50: Duration = Duration::from_millis(5);
const SSD_P99: Duration = Duration::from_millis(20);

const FREE_FAIL_BYTES: u64 = 256 * 1024 * 1024;
const FREE_WARN_BYTES: u64 = 2 * 1024 * 1024 * 1024;

pub(crate) fn checks(data_dir: &Path, sqlite_history: bool) -> Vec<Check> {
    let Some(dir) = existing_ancestor(data_dir) else {
        return vec![Check::new(
            "data dir fsync",
            Status::Fail,
            format!("{}: no such directory", data_dir.display()),
        )
        .fix("set node.data_dir to a directory on the SSD")];
    };
    vec![
        judge_fsync(
            probe(&dir).map_err(|e| format!("{}: {e}", dir.display())),
            sqlite_history,
        ),
        judge_free(free_space(&dir)),
    ]
}

/// Latencies of `write 4 KiB + fdatasync`, sorted.
fn probe(dir: &Path) -> std::io::Result<Vec<Duration>> {
    let mut file = tempfile::tempfile_in(dir)?;
    let block = [0x5au8; 4096];
    let mut times = Vec::with_capacity(PROBE_WRITES);
    let started = Instant::now();
    while times.len() < PROBE_WRITES
        && (times.len() < PROBE_MIN_WRITES || started.elapsed() < PROBE_BUDGET)
    {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times)
}

/// The `p`th percentile (0-100) of sorted `times`.
pub(crate) fn percentile(times: &[Duration], p: usize) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    let rank = (times.len() * p).div_ceil(100).clamp(1, times.len());
    times[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn judge_fsync(times: Result<Vec<Duration>, String>, sqlite_history: bool) -> Check {
    const NAME: &str = "data dir fsync";
    let times = match times {
        Ok(times) if !times.is_empty() => times,
        Ok(_) => return Check::new(NAME, Status::Fail, "no write completed"),
        Err(e) => {
            return Check::new(NAME, Status::Fail, format!("cannot write: {e}"))
                .fix("the node keeps its secret and SQLite history there: make it writable")
        }
    };
    let (p50, p99) = (percentile(&times, 50), percentile(&times, 99));
    let found = format!(
        "p50 {} / p99 {} over {} writes",
        ms(p50),
        ms(p99),
        times.len()
    );
    if p50 <= SSD_P50 && p99 <= SSD_P99 {
        return Check::new(NAME, Status::Ok, format!("{found}: SSD class"));
    }
    let why = if sqlite_history {
        "history (SQLite, here) commits wait on it: fewer stored msg/s, slower acks"
    } else {
        "history is in PostgreSQL, but the node's state is here: an SSD is still advised"
    };
    Check::new(NAME, Status::Warn, format!("{found}: SD-card class")).fix(format!(
        "{why}; boot from or mount an SSD (docs/raspberry-pi.md)"
    ))
}

/// (bytes free for unprivileged users, total bytes) of the file system holding `dir`.
fn free_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value for the call to overwrite.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and outlives the call; `st` is a valid out pointer.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let block = st.f_frsize as u64;
    Some((st.f_bavail as u64 * block, st.f_blocks as u64 * block))
}

pub(crate) fn judge_free(space: Option<(u64, u64)>) -> Check {
    const NAME: &str = "data dir free space";
    let Some((free, total)) = space else {
        return Check::new(NAME, Status::Info, "unknown (statvfs failed)");
    };
    let percent = (free * 100).checked_div(total).unwrap_or(0);
    let found = format!("{} free of {} ({percent}%)", size(free), size(total));
    let fix = "free space, a bigger disk, or bound history with history.max_age / max_messages";
    if free < FREE_FAIL_BYTES {
        Check::new(NAME, Status::Fail, found).fix(fix)
    } else if free < FREE_WARN_BYTES || percent < 10 {
        Check::new(NAME, Status::Warn, found).fix(fix)
    } else {
        Check::new(NAME, Status::Ok, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(list: &[u64]) -> Vec<Duration> {
        let mut v: Vec<_> = list.iter().map(|&u| Duration::from_micros(u)).collect();
        v.sort();
        v
    }

    #[test]
    fn percentiles() {
        let times = micros(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&times, 50), Duration::from_micros(50));
        assert_eq!(percentile(&times, 99), Duration::from_micros(99));
        let three = micros(&[1, 2, 3]);
        assert_eq!(percentile(&three, 50), Duration::from_micros(2));
        assert_eq!(percentile(&three, 99), Duration::from_micros(3));
        assert_eq!(percentile(&[], 99), Duration::ZERO);
    }

    #[test]
    fn ssd_and_sd_card_latencies() {
        // An NVMe/USB SSD: fdatasync well under a millisecond.
        let ssd = judge_fsync(Ok(micros(&[300; 100])), true);
        assert_eq!(ssd.status, Status::Ok);
        assert!(ssd.found.contains("SSD class"), "{}", ssd.found);

        // A class-10 SD card: 15-40 ms with tails past 100 ms.
        let mut card = vec![15_000; 90];
        card.extend([40_000; 8]);
        card.extend([120_000; 2]);
        let sd = judge_fsync(Ok(micros(&card)), true);
        assert_eq!(sd.status, Status::Warn);
        assert!(sd.found.contains("SD-card class"), "{}", sd.found);
        assert!(sd.found.contains("p99 120.00 ms"), "{}", sd.found);
        assert!(sd.fix.contains("SQLite"), "{}", sd.fix);
        let pg = judge_fsync(Ok(micros(&card)), false);
        assert!(pg.fix.contains("PostgreSQL"), "{}", pg.fix);

        // A fast median with a bad tail is not SSD class.
        let mut tail = vec![1_000; 95];
        tail.extend([50_000; 5]);
        assert_eq!(judge_fsync(Ok(micros(&tail)), true).status, Status::Warn);
    }

    #[test]
    fn unwritable_dir_fails() {
        let c = judge_fsync(Err("/var/lib/roost: permission denied".into()), true);
        assert_eq!(c.status, Status::Fail);
        assert!(c.found.contains("permission denied"));
        assert_eq!(judge_fsync(Ok(vec![]), true).status, Status::Fail);
    }

    #[test]
    fn free_space_thresholds() {
        const MIB: u64 = 1024 * 1024;
        let total = 64 * 1024 * MIB;
        assert_eq!(
            judge_free(Some((20 * 1024 * MIB, total))).status,
            Status::Ok
        );
        assert_eq!(judge_free(Some((1024 * MIB, total))).status, Status::Warn);
        // 3 GiB is plenty in bytes but under 10% of a 1 TB disk.
        assert_eq!(
            judge_free(Some((3 * 1024 * MIB, 1024 * 1024 * MIB))).status,
            Status::Warn
        );
        assert_eq!(judge_free(Some((100 * MIB, total))).status, Status::Fail);
        assert_eq!(judge_free(None).status, Status::Info);
    }

    #[test]
    fn probes_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let checks = checks(&dir.path().join("not-yet-created"), true);
        assert_eq!(checks.len(), 2);
        assert_ne!(checks[0].status, Status::Fail, "{:?}", checks[0]);
        assert!(checks[0].found.contains("writes"), "{:?}", checks[0]);
        assert_ne!(checks[1].status, Status::Info, "{:?}", checks[1]);
    }
}
