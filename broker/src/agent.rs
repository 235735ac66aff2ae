//! HAProxy's agent check on `cluster.agent_listen`: each TCP connection gets one line and
//! is closed. `ready up 40%` while the node takes users, with a weight that falls as it
//! fills up (connections against `limits.max_connections`) and as its CPU gets busy, so
//! a busy Pi gets fewer new users; `drain` once it drains, and while it is an elastic
//! standby at rest (`standby.rs`).

use crate::drain::Health;
use crate::node::Context;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tracing::{debug, info};

/// The HAProxy weight, in percent, for a node with `connections` of `max` and its CPUs
/// `cpu_busy` (0.0 to 1.0) busy. Connections count fully (a full node takes no one);
/// a fully busy CPU halves the weight. Never below 1% while there is room: 0% would
/// stop the node from getting anyone, which is the drain's job.
pub(crate) fn weight(connections: usize, max: usize, cpu_busy: f64) -> u32 {
    if max == 0 || connections >= max {
        return 0;
    }
    let room = 1.0 - connections as f64 / max as f64;
    let cpu = 1.0 - cpu_busy.clamp(0.0, 1.0) / 2.0;
    ((100.0 * room * cpu).floor() as u32).clamp(1, 100)
}

/// The agent's reply for a node in `health` with `weight`; `resting`: an elastic standby
/// at rest, which takes nobody while healthy.
pub(crate) fn reply(health: Health, resting: bool, weight: u32) -> String {
    match health {
        Health::Draining => "drain\n".to_owned(),
        Health::Ok | Health::Degraded if resting => "drain\n".to_owned(),
        Health::Ok | Health::Degraded => format!("ready up {weight}%\n"),
    }
}

/// CPU time counters from the first line of /proc/stat: (busy, total).
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The busy share of the CPUs between two samples.
fn busy_between(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = after.1.saturating_sub(before.1);
    if total == 0 {
        return 0.0;
    }
    after.0.saturating_sub(before.0) as f64 / total as f64
}

/// Binds the agent listener and serves it until the process ends.
pub async fn start(addr: SocketAddr, ctx: Arc<Context>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the agent listener on {addr}"))?;
    let local = listener.local_addr()?;
    info!(kind = "agent", addr = %local, "listening");
    // CPU busy share in per mille, sampled every second.
    let cpu = Arc::new(AtomicU32::new(0));
    tokio::spawn(sample_cpu(cpu.clone()));
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let busy = f64::from(cpu.load(Ordering::Relaxed)) / 1000.0;
            let weight = weight(
                ctx.active.load(Ordering::Acquire),
                ctx.limits.max_connections,
                busy,
            );
            let line = reply(ctx.drain.health(), ctx.drain.takes_no_users(), weight);
            tokio::spawn(async move {
                let write = socket.write_all(line.as_bytes());
                if tokio::time::timeout(Duration::from_secs(2), write)
                    .await
                    .is_err()
                {
                    debug!(%peer, "agent check: peer did not take the reply");
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(local)
}

async fn sample_cpu(busy: Arc<AtomicU32>) {
    let read = || {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| cpu_times(&s))
    };
    let mut before = read();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = read();
        if let (Some(b), Some(n)) = (before, now) {
            busy.store((busy_between(b, n) * 1000.0) as u32, Ordering::Relaxed);
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_follows_connections_and_cpu() {
        assert_eq!(weight(0, 100, 0.0), 100);
        assert_eq!(weight(60, 100, 0.0), 40);
        assert_eq!(weight(0, 100, 1.0), 50);
        assert_eq!(weight(50, 100, 1.0), 25);
        // Monotonic in connections whatever the CPU.
        for cpu in [0.0, 0.3, 1.0] {
            let ws: Vec<u32> = (0..=100).map(|c| weight(c, 100, cpu)).collect();
            assert!(ws.windows(2).all(|w| w[0] >= w[1]), "{ws:?}");
        }
        // Room left: at least 1%; full: 0%.
        assert_eq!(weight(99_999, 100_000, 1.0), 1);
        assert_eq!(weight(100, 100, 0.0), 0);
        assert_eq!(weight(0, 0, 0.0), 0);
        // Out-of-range CPU readings are clamped.
        assert_eq!(weight(0, 100, 7.0), 50);
        assert_eq!(weight(0, 100, -1.0), 100);
    }

    #[test]
    fn replies() {
        assert_eq!(reply(Health::Ok, false, 40), "ready up 40%\n");
        assert_eq!(reply(Health::Degraded, false, 7), "ready up 7%\n");
        assert_eq!(reply(Health::Draining, true, 40), "drain\n");
        // A standby at rest.
        assert_eq!(reply(Health::Ok, true, 100), "drain\n");
        assert_eq!(reply(Health::Degraded, true, 100), "drain\n");
    }

    #[test]
    fn cpu_from_proc_stat() {
        let a = cpu_times("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(a, (200, 1000));
        let b = cpu_times("cpu  150 0 150 750 150 0 0 0 0 0\n").unwrap();
        assert_eq!(busy_between(a, b), 0.5);
        assert_eq!(busy_between(a, a), 0.0);
        assert_eq!(cpu_times("garbage"), None);
    }
}
