//! The node's presence payload on `im/presence/{user}` (docs/protocol.md section 3):
//! `{"status": "online" | "offline", "ts": <unix ms>}`, published retained; and the rule
//! for the status a user publishes there themselves ([`check_user_status`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The statuses a user may publish on their own `im/presence/{me}`.
pub const USER_STATUSES: [&str; 5] = ["online", "away", "busy", "dnd", "offline"];
/// Largest status payload a user may publish, in bytes.
pub const MAX_STATUS_PAYLOAD: usize = 512;
/// Longest `text` of a user's status, in characters.
pub const MAX_STATUS_TEXT_CHARS: usize = 140;

/// Checks a status a user publishes on `im/presence/{me}`: a JSON object of at most
/// [`MAX_STATUS_PAYLOAD`] bytes with `status` from [`USER_STATUSES`], and optionally `text`
/// (at most [`MAX_STATUS_TEXT_CHARS`] characters, no control characters) and `ts` (an
/// integer); nothing else. Presence goes to every reader of the topic, so it is kept small
/// and predictable. The error is the `error` notice's message (code `invalid_payload`).
pub fn check_user_status(payload: &[u8]) -> Result<(), String> {
    if payload.len() > MAX_STATUS_PAYLOAD {
        return Err(format!(
            "presence of {} bytes is over the {MAX_STATUS_PAYLOAD}-byte limit",
            payload.len()
        ));
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(payload) else {
        return Err("presence is a JSON object: {\"status\": ..., \"text\"?, \"ts\"?}".to_owned());
    };
    match fields.get("status").and_then(Value::as_str) {
        Some(s) if USER_STATUSES.contains(&s) => {}
        _ => {
            return Err(format!(
                "presence status must be one of {}",
                USER_STATUSES.join(", ")
            ))
        }
    }
    if let Some(text) = fields.get("text") {
        let ok = text.as_str().is_some_and(|t| {
            t.chars().count() <= MAX_STATUS_TEXT_CHARS && !t.chars().any(char::is_control)
        });
        if !ok {
            return Err(format!(
                "presence text must be a string of at most {MAX_STATUS_TEXT_CHARS} characters without control characters"
            ));
        }
    }
    if fields.get("ts").is_some_and(|ts| !ts.is_i64()) {
        return Err("presence ts must be an integer (unix milliseconds)".to_owned());
    }
    if let Some(other) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "status" | "text" | "ts"))
    {
        return Err(format!(
            "presence has no field {other:?} (status, text, ts)"
        ));
    }
    Ok(())
}

/// Whether any of a user's devices is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Offline,
}

/// What the node publishes when a user's first device arrives or their last one leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub status: Status,
    /// When it changed, unix milliseconds.
    pub ts: u64,
}

impl Presence {
    /// The JSON bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // An enum and a number always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_statuses() {
        for ok in [
            r#"{"status":"away"}"#,
            r#"{"status":"busy","text":"in a meeting","ts":1700000000000}"#,
            r#"{"status":"online"}"#,
        ] {
            assert_eq!(check_user_status(ok.as_bytes()), Ok(()), "{ok}");
        }
        let long = format!(r#"{{"status":"away","text":"{}"}}"#, "é".repeat(141));
        let big = format!(r#"{{"status":"away","text":"{}"}}"#, "x".repeat(600));
        for bad in [
            "",
            "online",
            "[]",
            r#"{"status":"sleeping"}"#,
            r#"{"status":1}"#,
            r#"{"text":"hi"}"#,
            r#"{"status":"away","text":"ab"}"#,
            r#"{"status":"away","ts":"now"}"#,
            r#"{"status":"away","avatar":"x"}"#,
            long.as_str(),
            big.as_str(),
        ] {
            assert!(check_user_status(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn wire_shape() {
        let online = Presence {
            status: Status::Online,
            ts: 17,
        };
        assert_eq!(online.to_bytes(), br#"{"status":"online","ts":17}"#);
        let offline: Presence = serde_json::from_str(r#"{"status":"offline","ts":1}"#).unwrap();
        assert_eq!(
            offline,
            Presence {
                status: Status::Offline,
                ts: 1
            }
        );
    }
}
