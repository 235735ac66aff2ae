//! Whether the kernel's clock is synchronised.
//!
//! Tokens carry times (`exp`, `nbf`, `iat`): a node whose clock is off rejects good tokens
//! or accepts expired ones. Most Pis have no battery-backed clock, so a Pi that boots
//! without network starts in the past until NTP reaches a server.

use super::{Check, Status};

/// The kernel's estimate of its error above which tokens' times are no longer trustworthy.
const MAX_ERROR_WARN_US: i64 = 500_000;

/// What the kernel says about its clock (`adjtimex` with nothing to change).
pub(crate) struct ClockState {
    /// `TIME_ERROR` means not synchronised.
    pub state: i32,
    /// `STA_*` flags.
    pub status: i32,
    /// Maximum error, microseconds.
    pub maxerror_us: i64,
}

pub(crate) fn check() -> Check {
    judge(read())
}

fn read() -> Option<ClockState> {
    // SAFETY: an all-zero timex (modes = 0) asks adjtimex to change nothing and only read.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, writable timex.
    let state = unsafe { libc::adjtimex(&mut tx) };
    (state >= 0).then_some(ClockState {
        state,
        status: tx.status,
        maxerror_us: tx.maxerror as i64,
    })
}

pub(crate) fn judge(clock: Option<ClockState>) -> Check {
    const NAME: &str = "clock sync";
    let fix = "enable NTP (systemd-timesyncd or chrony: `timedatectl set-ntp true`); tokens \
               carry times and a wrong clock refuses good ones";
    let Some(clock) = clock else {
        return Check::new(NAME, Status::Info, "unknown (adjtimex failed)");
    };
    if clock.state == libc::TIME_ERROR || clock.status & libc::STA_UNSYNC != 0 {
        return Check::new(NAME, Status::Warn, "not synchronised").fix(fix);
    }
    let found = format!(
        "synchronised, max error {:.1} ms",
        clock.maxerror_us as f64 / 1000.0
    );
    if clock.maxerror_us > MAX_ERROR_WARN_US {
        return Check::new(NAME, Status::Warn, found).fix(fix);
    }
    Check::new(NAME, Status::Ok, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(state: i32, status: i32, maxerror_us: i64) -> Option<ClockState> {
        Some(ClockState {
            state,
            status,
            maxerror_us,
        })
    }

    #[test]
    fn synchronised_unsynchronised_and_drifting() {
        let ok = judge(clock(libc::TIME_OK, libc::STA_PLL, 12_000));
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(ok.found, "synchronised, max error 12.0 ms");
        // A Pi just booted without network: the kernel says unsynchronised.
        let unsync = judge(clock(libc::TIME_ERROR, libc::STA_UNSYNC, 16_000_000));
        assert_eq!(unsync.status, Status::Warn);
        assert!(unsync.fix.contains("timedatectl set-ntp true"));
        assert_eq!(
            judge(clock(libc::TIME_OK, libc::STA_UNSYNC, 0)).status,
            Status::Warn
        );
        // Synchronised once, but the error estimate has grown past half a second.
        assert_eq!(judge(clock(libc::TIME_OK, 0, 900_000)).status, Status::Warn);
        assert_eq!(judge(None).status, Status::Info);
    }

    #[test]
    fn reads_this_host_without_changing_it() {
        // Whatever the verdict, the call itself works unprivileged.
        assert_ne!(check().status, Status::Info);
    }
}
