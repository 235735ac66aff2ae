//! The one wall clock of the contract: unix milliseconds, as in every `ts` field (chat
//! payloads, presence, stamped copies, `ack`s, the history database's `ts` column).
//!
//! One function instead of a copy per crate, so that the client, the node and the history
//! store cannot drift apart on what a `ts` is (a clock before 1970 reads as 0).

use std::time::{SystemTime, UNIX_EPOCH};

/// The current unix time in milliseconds; 0 if the system clock is before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_unix_milliseconds() {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let ms = now_ms();
        assert!((ms / 1000 - secs).abs() <= 1, "{ms} vs {secs}");
    }
}
