//! `roost drain`: asks the node running on a data dir to drain, by sending SIGTERM to the
//! pid it wrote there. A signal rather than an HTTP call: only the node's own user (or
//! root) may send it, with no endpoint to protect.

use anyhow::{bail, Context as _};
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) fn drain(config: Option<&Path>) -> anyhow::Result<()> {
    let config = roost_config::load(config)?;
    let pid_file = crate::node::pid_file(&config);
    let text = std::fs::read_to_string(&pid_file).with_context(|| {
        format!(
            "reading {} (is a node running on this data dir?)",
            pid_file.display()
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a pid", pid_file.display()))?;
    // A stale file may name a pid the system has since given to another program.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let is_roost = cmdline
        .split(|b| *b == 0)
        .next()
        .is_some_and(|exe| exe.ends_with(b"roost"));
    if pid <= 1 || !is_roost {
        bail!(
            "no roost node runs as pid {pid} (from {}); remove the stale file",
            pid_file.display()
        );
    }
    // SAFETY: kill(2) with a checked pid and a constant signal; it touches no memory.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!("sending SIGTERM to pid {pid}: {e}");
    }
    eprintln!("draining pid {pid}; waiting for it to exit");
    let bound = config.cluster.drain_period() + Duration::from_secs(120);
    let start = Instant::now();
    while running(pid) {
        if start.elapsed() > bound {
            bail!("pid {pid} still runs after {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("drained");
    Ok(())
}

/// Whether `pid` still runs (an exited child its parent has not reaped yet does not).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last `)`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}
