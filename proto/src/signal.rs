//! Signals on `im/sig/dm/{to}/{from}` and `im/sig/grp/{group}/{from}` (docs/protocol.md
//! section 3, "Signals"): small, ephemeral notes between the members of a conversation,
//! such as "bob is typing". Never stored, never retained, delivered at most as far as the
//! members subscribed right now.
//!
//! The payload is checked like a presence status, so every receiving app can rely on its
//! shape: a JSON object of at most [`MAX_SIGNAL_PAYLOAD`] bytes with a `type`:
//!
//! - `{"type": "typing", "state": "start" | "stop", "ts"?: <unix ms>}`: the sender started
//!   or stopped typing in this conversation;
//! - `{"type": "x-{name}", "data"?: <any JSON>, "ts"?: <unix ms>}`: a signal an app defines
//!   for itself (`name` of `A-Z a-z 0-9 _ . -`, the whole type at most
//!   [`MAX_SIGNAL_TYPE_CHARS`] characters).
//!
//! Nothing else: another `type`, a missing or other `state`, any other field is refused.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest signal payload, in bytes.
pub const MAX_SIGNAL_PAYLOAD: usize = 1024;
/// Longest `type`, in characters.
pub const MAX_SIGNAL_TYPE_CHARS: usize = 32;
/// The prefix of app-defined signal types.
pub const APP_TYPE_PREFIX: &str = "x-";

/// `typing`'s `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Typing {
    Start,
    Stop,
}

/// The typing signal, as a client sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingSignal {
    #[serde(rename = "type")]
    pub kind: TypingTag,
    pub state: Typing,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ts: Option<i64>,
}

/// The constant `"typing"` of [`TypingSignal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypingTag {
    Typing,
}

impl TypingSignal {
    pub fn new(state: Typing, ts: Option<i64>) -> TypingSignal {
        TypingSignal {
            kind: TypingTag::Typing,
            state,
            ts,
        }
    }

    /// The JSON bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Checks a signal payload as the module doc says. The error is the `error` notice's
/// message (code `invalid_payload`).
pub fn check_signal(payload: &[u8]) -> Result<(), String> {
    if payload.len() > MAX_SIGNAL_PAYLOAD {
        return Err(format!(
            "a signal of {} bytes is over the {MAX_SIGNAL_PAYLOAD}-byte limit",
            payload.len()
        ));
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(payload) else {
        return Err("a signal is a JSON object: {\"type\": ..., ...}".to_owned());
    };
    if fields.get("ts").is_some_and(|ts| !ts.is_i64()) {
        return Err("signal ts must be an integer (unix milliseconds)".to_owned());
    }
    let allowed: &[&str] = match fields.get("type").and_then(Value::as_str) {
        Some("typing") => {
            match fields.get("state").and_then(Value::as_str) {
                Some("start" | "stop") => {}
                _ => return Err("typing state must be \"start\" or \"stop\"".to_owned()),
            }
            &["type", "state", "ts"]
        }
        Some(kind) if is_app_type(kind) => &["type", "data", "ts"],
        _ => {
            return Err(format!(
                "signal type must be \"typing\" or \"{APP_TYPE_PREFIX}{{name}}\" \
                 (at most {MAX_SIGNAL_TYPE_CHARS} characters of A-Z a-z 0-9 _ . -)"
            ))
        }
    };
    if let Some(other) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "this signal has no field {other:?} ({})",
            allowed.join(", ")
        ));
    }
    Ok(())
}

fn is_app_type(kind: &str) -> bool {
    kind.len() <= MAX_SIGNAL_TYPE_CHARS
        && kind.strip_prefix(APP_TYPE_PREFIX).is_some_and(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_round_trips_and_passes() {
        let start = TypingSignal::new(Typing::Start, Some(1_700_000_000_000));
        let bytes = start.to_bytes();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"type":"typing","state":"start","ts":1700000000000}"#
        );
        assert_eq!(check_signal(&bytes), Ok(()));
        assert_eq!(
            serde_json::from_slice::<TypingSignal>(&bytes).unwrap(),
            start
        );
        let stop = TypingSignal::new(Typing::Stop, None).to_bytes();
        assert_eq!(stop, br#"{"type":"typing","state":"stop"}"#);
        assert_eq!(check_signal(&stop), Ok(()));
    }

    #[test]
    fn app_signals_pass() {
        for good in [
            r#"{"type":"x-read-aloud"}"#,
            r#"{"type":"x-poll.vote","data":{"choice":2},"ts":5}"#,
        ] {
            assert_eq!(check_signal(good.as_bytes()), Ok(()), "{good}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        let big = format!(r#"{{"type":"x-a","data":"{}"}}"#, "y".repeat(1100));
        let long_type = format!(r#"{{"type":"x-{}"}}"#, "a".repeat(31));
        for (bad, says) in [
            ("typing", "JSON object"),
            ("[]", "JSON object"),
            (r#"{"state":"start"}"#, "signal type"),
            (r#"{"type":"typing"}"#, "start"),
            (r#"{"type":"typing","state":"maybe"}"#, "start"),
            (
                r#"{"type":"typing","state":"start","text":"hi"}"#,
                "\"text\"",
            ),
            (r#"{"type":"typing","state":"stop","ts":"now"}"#, "ts"),
            (r#"{"type":"x-"}"#, "signal type"),
            (r#"{"type":"x-a b"}"#, "signal type"),
            (r#"{"type":"call"}"#, "signal type"),
            (r#"{"type":"x-a","state":"start"}"#, "\"state\""),
            (long_type.as_str(), "signal type"),
            (big.as_str(), "byte limit"),
        ] {
            let err = check_signal(bad.as_bytes()).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
