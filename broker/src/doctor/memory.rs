//! Memory available against the connections the config plans for.
//!
//! A Pi has 1 to 16 GiB and no swap worth the name on an SD card; a node that runs out is
//! killed, dropping every user at once. The plan is the measured cost of an idle signed-in
//! connection times `limits.max_connections`, plus the node's own working set.

use super::{size, thousands, Check, Host, Status};
use roost_config::Config;

/// RSS per idle signed-in connection (6 subscriptions each, presence on), measured:
/// BENCHMARKS.md, "Targets (issue 4, Pi profile)", 8.9 KiB at 19,980 connections.
pub(crate) const BYTES_PER_CONNECTION: u64 = 8_900 * 1024 / 1000;
/// The node beyond its connections: the router, the history service and its batches,
/// SQLite's page cache, messages in flight. Measured at rest it is about 11 MiB
/// (BENCHMARKS.md: 175.9 MiB for 19,000 idle users); 4,000 users chatting used 50 MiB of
/// which 35 MiB was connections. Rounded up for bursts.
pub(crate) const NODE_BASE_BYTES: u64 = 64 * 1024 * 1024;
/// Above this share of the available memory the plan leaves too little for the page cache
/// (history reads) and for whatever else runs on the Pi.
const WARN_SHARE_PERCENT: u64 = 75;

pub(crate) fn check(host: &Host, config: &Config) -> Check {
    let available = host
        .read("/proc/meminfo")
        .and_then(|text| meminfo_bytes(&text, "MemAvailable"));
    judge(available, config.limits.max_connections as u64)
}

/// A `/proc/meminfo` line's value (`MemAvailable:  23158104 kB`), in bytes.
pub(crate) fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    })
}

pub(crate) fn planned_bytes(max_connections: u64) -> u64 {
    NODE_BASE_BYTES + max_connections * BYTES_PER_CONNECTION
}

pub(crate) fn judge(available: Option<u64>, max_connections: u64) -> Check {
    const NAME: &str = "memory";
    let plan = planned_bytes(max_connections);
    let Some(available) = available else {
        return Check::new(
            NAME,
            Status::Info,
            format!("unknown available; plan {}", size(plan)),
        );
    };
    let found = format!(
        "{} available, plan {} for {} connections at 8.9 KiB",
        size(available),
        size(plan),
        thousands(max_connections)
    );
    let fits = available / BYTES_PER_CONNECTION;
    let lower = format!(
        "lower limits.max_connections (about {} fit here) or use a Pi with more RAM",
        thousands(fits.saturating_sub(NODE_BASE_BYTES / BYTES_PER_CONNECTION) * 3 / 4)
    );
    if plan > available {
        Check::new(NAME, Status::Fail, found).fix(lower)
    } else if plan * 100 > available * WARN_SHARE_PERCENT {
        Check::new(NAME, Status::Warn, found).fix(format!(
            "the plan leaves under {}% for the page cache and the rest of the host: {lower}",
            100 - WARN_SHARE_PERCENT
        ))
    } else {
        Check::new(NAME, Status::Ok, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fake::FakeHost;

    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn per_connection_cost_is_the_measured_one() {
        assert_eq!(BYTES_PER_CONNECTION, 9113);
        // 100,000 connections need about 933 MiB.
        let plan = planned_bytes(100_000);
        assert!((920..940).contains(&(plan / 1024 / 1024)), "{plan}");
    }

    #[test]
    fn plan_against_available() {
        // A 4 GiB Pi with 3.5 GiB available holds the default 100,000 comfortably.
        assert_eq!(judge(Some(7 * GIB / 2), 100_000).status, Status::Ok);
        // A 1 GiB Pi with 800 MiB available: 100,000 do not fit.
        let small = judge(Some(800 * 1024 * 1024), 100_000);
        assert_eq!(small.status, Status::Fail);
        assert!(small.fix.contains("about 6"), "{}", small.fix);
        // 1.1 GiB available for 100,000: fits, but with little to spare.
        assert_eq!(judge(Some(11 * GIB / 10), 100_000).status, Status::Warn);
        assert_eq!(judge(None, 100).status, Status::Info);
    }

    #[test]
    fn reads_mem_available() {
        let text = "MemTotal:       24576000 kB\nMemFree:   100 kB\nMemAvailable:   23158104 kB\n";
        assert_eq!(meminfo_bytes(text, "MemAvailable"), Some(23_158_104 * 1024));
        assert_eq!(meminfo_bytes(text, "MemTotal"), Some(24_576_000 * 1024));
        assert_eq!(meminfo_bytes(text, "Mem"), None);
        assert_eq!(meminfo_bytes("", "MemAvailable"), None);

        let fake = FakeHost::new(&[("proc/meminfo", text)]);
        let mut config = Config::default();
        config.limits.max_connections = 1000;
        assert_eq!(check(&fake.host(), &config).status, Status::Ok);
    }
}
