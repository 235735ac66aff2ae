//! Descriptor and kernel network limits against `limits.max_connections`.
//!
//! Every client is a socket, so the open-file limit caps the connections a node can hold
//! whatever its config says; the accept and SYN queues decide whether a reconnect storm
//! (a Pi rebooting, every phone coming back at once) is absorbed or turned into timeouts;
//! the ephemeral port range caps the connections a proxy or load generator on this host
//! can open towards one node.

use super::{thousands, Check, Host, Status};
use roost_config::Config;

/// Descriptors the node holds besides client sockets: stdio, the runtime's epoll and
/// wakers, up to five listeners, HTTP API clients, SQLite's files (database and WAL per
/// pooled connection), JWKS and key files while they are read. Generous on purpose.
pub(crate) const FDS_BESIDES_CLIENTS: u64 = 128;
/// Accept-queue length the MQTT listeners ask for; the kernel caps it at somaxconn.
const WANT_BACKLOG: u64 = crate::listener::LISTEN_BACKLOG as u64;
/// `1024 65535`, what deploy/sysctl.d/90-roost.conf sets.
const WIDEST_PORT_RANGE: u64 = 64_512;

pub(crate) fn checks(host: &Host, config: &Config) -> Vec<Check> {
    let need = descriptors_needed(config);
    vec![
        nofile(current_nofile(), need, config.limits.max_connections),
        backlog(
            "net.core.somaxconn",
            host.read("/proc/sys/net/core/somaxconn"),
        ),
        backlog(
            "net.ipv4.tcp_max_syn_backlog",
            host.read("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
        ),
        port_range(
            host.read("/proc/sys/net/ipv4/ip_local_port_range"),
            config.limits.max_connections as u64,
        ),
    ]
}

/// Client sockets plus everything else, plus the history pool's database connections.
pub(crate) fn descriptors_needed(config: &Config) -> u64 {
    let pool = config
        .history
        .pool_size
        .unwrap_or(roost_history::DEFAULT_POOL_SIZE);
    config.limits.max_connections as u64 + FDS_BESIDES_CLIENTS + u64::from(pool)
}

/// This process's (soft, hard) RLIMIT_NOFILE; `None` if the call fails.
fn current_nofile() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

pub(crate) fn nofile(limit: Option<(u64, u64)>, need: u64, max_connections: usize) -> Check {
    const NAME: &str = "open files";
    let Some((soft, hard)) = limit else {
        return Check::new(NAME, Status::Warn, "getrlimit failed").fix("check `ulimit -n`");
    };
    let shown = |n: u64| {
        if n == libc::RLIM_INFINITY {
            "unlimited".to_owned()
        } else {
            thousands(n)
        }
    };
    let found = format!(
        "soft {} / hard {}, need {} for limits.max_connections = {}",
        shown(soft),
        shown(hard),
        thousands(need),
        thousands(max_connections as u64)
    );
    if soft >= need {
        return Check::new(NAME, Status::Ok, found);
    }
    Check::new(NAME, Status::Fail, found).fix(format!(
        "LimitNOFILE={need} in roost.service (deploy/systemd), or `ulimit -n {need}` before \
         `roost serve`; or lower limits.max_connections. (This is the shell's limit; run \
         the doctor the way the node runs.)"
    ))
}

/// `net.core.somaxconn` and `net.ipv4.tcp_max_syn_backlog` share the judgement.
pub(crate) fn backlog(name: &'static str, value: Option<String>) -> Check {
    let Some(value) = value.and_then(|v| v.parse::<u64>().ok()) else {
        return Check::new(name, Status::Info, "unknown (not readable here)");
    };
    let found = thousands(value);
    if value >= WANT_BACKLOG {
        return Check::new(name, Status::Ok, found);
    }
    Check::new(name, Status::Warn, format!("{found} (< {WANT_BACKLOG})")).fix(format!(
        "{name} = {WANT_BACKLOG} (deploy/sysctl.d/90-roost.conf): a reconnect storm \
         overflows a short queue and clients time out"
    ))
}

pub(crate) fn port_range(value: Option<String>, max_connections: u64) -> Check {
    const NAME: &str = "net.ipv4.ip_local_port_range";
    let parsed = value.as_deref().and_then(|v| {
        let mut it = v.split_whitespace().map(str::parse::<u64>);
        match (it.next(), it.next()) {
            (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Some((lo, hi)),
            _ => None,
        }
    });
    let Some((lo, hi)) = parsed else {
        return Check::new(NAME, Status::Info, "unknown (not readable here)");
    };
    let ports = hi - lo + 1;
    let found = format!("{lo}-{hi} ({} ports)", thousands(ports));
    if ports >= max_connections.min(WIDEST_PORT_RANGE) {
        return Check::new(NAME, Status::Ok, found);
    }
    Check::new(NAME, Status::Warn, found).fix(
        "on a host that opens the client connections (HAProxy in front, a load generator), \
         each needs a port from this range: net.ipv4.ip_local_port_range = 1024 65535 \
         (deploy/sysctl.d/90-roost.conf)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fake::FakeHost;

    #[test]
    fn nofile_needs_room_for_every_client_and_the_node() {
        let ok = nofile(Some((1_048_576, 1_048_576)), 100_128, 100_000);
        assert_eq!(ok.status, Status::Ok);
        assert!(ok.found.contains("need 100,128"), "{}", ok.found);

        // Debian's default shell limit against the default config.
        let low = nofile(Some((1024, 524_288)), 100_128, 100_000);
        assert_eq!(low.status, Status::Fail);
        assert!(low.fix.contains("LimitNOFILE=100128"), "{}", low.fix);

        // Exactly enough is enough; one short is not.
        assert_eq!(nofile(Some((228, 228)), 228, 100).status, Status::Ok);
        assert_eq!(nofile(Some((227, 4096)), 228, 100).status, Status::Fail);

        let unlimited = nofile(Some((libc::RLIM_INFINITY, libc::RLIM_INFINITY)), 228, 100);
        assert_eq!(unlimited.status, Status::Ok);
        assert!(unlimited.found.contains("unlimited"));
        assert_eq!(nofile(None, 228, 100).status, Status::Warn);
    }

    #[test]
    fn descriptors_count_the_postgres_pool() {
        let mut config = Config::default();
        config.limits.max_connections = 1000;
        assert_eq!(descriptors_needed(&config), 1010 + FDS_BESIDES_CLIENTS);
        config.history.pool_size = Some(20);
        assert_eq!(descriptors_needed(&config), 1020 + FDS_BESIDES_CLIENTS);
    }

    #[test]
    fn backlogs_below_4096_warn() {
        let name = "net.core.somaxconn";
        assert_eq!(backlog(name, Some("4096".into())).status, Status::Ok);
        assert_eq!(backlog(name, Some("65535".into())).status, Status::Ok);
        let old = backlog(name, Some("128".into()));
        assert_eq!(old.status, Status::Warn);
        assert!(old.fix.contains("net.core.somaxconn = 4096"), "{}", old.fix);
        assert_eq!(backlog(name, None).status, Status::Info);
        assert_eq!(backlog(name, Some("garbage".into())).status, Status::Info);
    }

    #[test]
    fn port_range_covers_the_planned_connections() {
        let linux_default = Some("32768\t60999".to_owned());
        assert_eq!(port_range(linux_default.clone(), 20_000).status, Status::Ok);
        let wide = port_range(linux_default, 100_000);
        assert_eq!(wide.status, Status::Warn);
        assert!(wide.found.contains("28,232 ports"), "{}", wide.found);
        // The widest range there is satisfies any plan.
        assert_eq!(
            port_range(Some("1024 65535".into()), 100_000).status,
            Status::Ok
        );
        assert_eq!(
            port_range(Some("60999 32768".into()), 10).status,
            Status::Info
        );
        assert_eq!(port_range(None, 10).status, Status::Info);
    }

    #[test]
    fn reads_the_kernel_values_from_proc() {
        let fake = FakeHost::new(&[
            ("proc/sys/net/core/somaxconn", "128\n"),
            ("proc/sys/net/ipv4/tcp_max_syn_backlog", "4096\n"),
            ("proc/sys/net/ipv4/ip_local_port_range", "1024\t65535\n"),
        ]);
        let mut config = Config::default();
        config.limits.max_connections = 10;
        let checks = checks(&fake.host(), &config);
        let status: Vec<_> = checks.iter().map(|c| (c.check, c.status)).collect();
        assert_eq!(status[1], ("net.core.somaxconn", Status::Warn));
        assert_eq!(status[2], ("net.ipv4.tcp_max_syn_backlog", Status::Ok));
        assert_eq!(status[3], ("net.ipv4.ip_local_port_range", Status::Ok));
    }
}
