//! Chat payloads (PROTOCOL.md section 4) and the helpers to make them.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// `{"id", "kind", "body", "reply_to"?, "ts"?}`: what is published on `im/dm/..` and
/// `im/grp/..`. `body` is a string for `kind = "text"`, any JSON for other kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: String,
    pub kind: String,
    pub body: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

impl ChatMessage {
    /// A text message with a fresh random id and the current time.
    pub fn text(body: impl Into<String>) -> ChatMessage {
        ChatMessage {
            id: new_message_id(),
            kind: "text".to_string(),
            body: serde_json::Value::String(body.into()),
            reply_to: None,
            ts: Some(now_ms()),
        }
    }

    /// The JSON bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a struct of strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a received payload; `None` if it is not a chat message object.
    pub fn parse(payload: &[u8]) -> Option<ChatMessage> {
        serde_json::from_slice(payload).ok()
    }

    /// The body as display text: the string itself for text, compact JSON otherwise.
    pub fn body_text(&self) -> String {
        match &self.body {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// 16 random lowercase hex characters.
pub fn new_message_id() -> String {
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let m = ChatMessage::text("hello");
        assert_eq!(m.id.len(), 16);
        assert!(m.id.bytes().all(|b| b.is_ascii_hexdigit()));
        let v: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(v["kind"], "text");
        assert_eq!(v["body"], "hello");
        assert!(v["ts"].is_i64());
        assert!(v.get("reply_to").is_none());
        assert_eq!(ChatMessage::parse(&m.to_bytes()), Some(m));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(ChatMessage::parse(b"\xff\x00"), None);
        assert_eq!(ChatMessage::parse(b"{\"id\":1}"), None);
        assert_eq!(ChatMessage::parse(b"[]"), None);
    }
}
