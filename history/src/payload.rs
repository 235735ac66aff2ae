//! The chat payload of stored topics (PROTOCOL.md section 4), and the rule for refusing one.
//!
//! The node checks every publish to `im/dm/...` and `im/grp/...` with [`ChatPayload::parse`]
//! before routing it, so what reaches the history service (and the recipients) is always a
//! well-formed chat message.

use serde::Deserialize;

/// Largest chat payload, in bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The fields of a chat payload the server relies on. Other fields are kept as sent.
#[derive(Debug, Deserialize)]
pub struct ChatPayload {
    /// Unique per sender: the same `(from, id)` is stored once, however often it is sent.
    pub id: String,
    pub kind: String,
    pub body: serde_json::Value,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub ts: Option<i64>,
}

/// Why a payload was refused; `code` is the `error` notice's code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PayloadError {
    pub code: &'static str,
    pub message: String,
}

impl ChatPayload {
    pub fn parse(payload: &[u8]) -> Result<ChatPayload, PayloadError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(PayloadError {
                code: "too_large",
                message: format!(
                    "chat payload of {} bytes is over the {MAX_PAYLOAD}-byte limit",
                    payload.len()
                ),
            });
        }
        let invalid = |message: String| PayloadError {
            code: "invalid_payload",
            message,
        };
        let chat: ChatPayload = serde_json::from_slice(payload).map_err(|e| {
            invalid(format!(
                "a chat payload is a JSON object with id, kind and body: {e}"
            ))
        })?;
        if chat.id.is_empty() || chat.id.chars().count() > 64 {
            return Err(invalid("id must be 1 to 64 characters".to_owned()));
        }
        if chat.kind.is_empty() {
            return Err(invalid("kind must not be empty".to_owned()));
        }
        if chat.body.is_null() {
            return Err(invalid("body is required".to_owned()));
        }
        if chat
            .reply_to
            .as_ref()
            .is_some_and(|r| r.is_empty() || r.chars().count() > 64)
        {
            return Err(invalid("reply_to must be 1 to 64 characters".to_owned()));
        }
        Ok(chat)
    }
}

/// Whether messages on `topic` are stored (and so must carry a chat payload).
pub fn is_stored_topic(topic: &str) -> bool {
    topic.starts_with("im/dm/") || topic.starts_with("im/grp/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_protocol_shape() {
        let ok = br#"{"id":"m1","kind":"text","body":"hi","reply_to":"m0","ts":1700000000000,"extra":1}"#;
        let chat = ChatPayload::parse(ok).unwrap();
        assert_eq!(chat.id, "m1");
        assert!(ChatPayload::parse(br#"{"id":"m1","kind":"image","body":{"url":"x"}}"#).is_ok());
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            &b"hello"[..],
            b"[]",
            b"{}",
            br#"{"id":"","kind":"text","body":"x"}"#,
            br#"{"id":1,"kind":"text","body":"x"}"#,
            br#"{"id":"m","body":"x"}"#,
            br#"{"id":"m","kind":"text"}"#,
            br#"{"id":"m","kind":"text","body":null}"#,
            br#"{"id":"m","kind":"","body":"x"}"#,
            br#"{"id":"m","kind":"text","body":"x","ts":"soon"}"#,
            b"\xff\xfe",
        ] {
            let e = ChatPayload::parse(bad).unwrap_err();
            assert_eq!(
                e.code,
                "invalid_payload",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_id = format!(r#"{{"id":"{}","kind":"text","body":"x"}}"#, "a".repeat(65));
        assert!(ChatPayload::parse(long_id.as_bytes()).is_err());
        let big = format!(
            r#"{{"id":"m","kind":"text","body":"{}"}}"#,
            "x".repeat(MAX_PAYLOAD)
        );
        assert_eq!(
            ChatPayload::parse(big.as_bytes()).unwrap_err().code,
            "too_large"
        );
    }

    #[test]
    fn stored_topics() {
        assert!(is_stored_topic("im/dm/bob/alice"));
        assert!(is_stored_topic("im/grp/family/alice"));
        assert!(!is_stored_topic("im/sig/dm/bob/alice"));
        assert!(!is_stored_topic("im/presence/alice"));
    }
}
