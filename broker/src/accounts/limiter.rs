//! Login attempt limits: at most N attempts per minute per key (an address, a user name),
//! in fixed one-minute windows. The table is bounded: when it is full, windows that have
//! ended are dropped, and if it is still full the attempt is refused (an attacker spraying
//! names cannot grow memory without bound).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Keys tracked at once.
const MAX_KEYS: usize = 100_000;

pub(crate) struct Limiter {
    per_window: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub(crate) fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_window: per_minute.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for `key`; `Err(retry_after)` when it is over the limit.
    pub(crate) fn attempt(&self, key: &str) -> Result<(), Duration> {
        self.attempt_at(key, Instant::now())
    }

    /// Whether `key` is over the limit now, without counting an attempt.
    pub(crate) fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get(key) {
            Some(&(start, n)) if now < start + WINDOW && n >= self.per_window => {
                Err(start + WINDOW - now)
            }
            _ => Ok(()),
        }
    }

    fn attempt_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_KEYS && !windows.contains_key(key) {
            windows.retain(|_, (start, _)| now < *start + WINDOW);
            if windows.len() >= MAX_KEYS {
                return Err(WINDOW);
            }
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now >= entry.0 + WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_window {
            return Err(entry.0 + WINDOW - now);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_window() {
        let l = Limiter::new(2);
        let t = Instant::now();
        assert!(l.attempt_at("a", t).is_ok());
        assert!(l.attempt_at("a", t).is_ok());
        let wait = l.attempt_at("a", t + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(l.attempt_at("b", t).is_ok());
        assert!(l.attempt_at("a", t + WINDOW).is_ok());
    }
}
