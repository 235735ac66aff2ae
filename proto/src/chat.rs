//! The chat payload of stored topics (docs/protocol.md section 4), and the rule for
//! refusing one.
//!
//! The node checks every publish to `im/dm/...` and `im/grp/...` with
//! [`ChatMessage::parse`] before routing it, so what reaches the recipients and the
//! history database is always a well-formed chat message. Besides the shape, the check
//! keeps out what the database cannot hold (a NUL anywhere: PostgreSQL text refuses it)
//! and what has no use in an id or a kind (control characters), so one bad message can
//! never get as far as the store.

use crate::limits::{MAX_CHAT_PAYLOAD, MAX_MESSAGE_ID_CHARS};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[path = "chat_scan.rs"]
mod scan;

/// `{"id", "kind", "body", "reply_to"?, "ts"?}`: what is published on `im/dm/..` and
/// `im/grp/..`. `body` is a string for `kind = "text"`, any JSON for other kinds. Other
/// fields of a received payload are kept as sent by whoever stores it (this type does not
/// carry them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Unique per sender: the same `(from, id)` is stored once, however often it is sent.
    pub id: String,
    pub kind: String,
    pub body: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The sender's clock, unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

/// Why a payload was refused. [`code`](PayloadError::code) is the `error` notice's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("chat payload of {0} bytes is over the {MAX_CHAT_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("{0}")]
    Invalid(String),
}

impl PayloadError {
    /// `too_large` or `invalid_payload`.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::TooLarge(_) => crate::notice::code::TOO_LARGE,
            PayloadError::Invalid(_) => crate::notice::code::INVALID_PAYLOAD,
        }
    }
}

impl ChatMessage {
    /// A text message.
    pub fn text(id: impl Into<String>, body: impl Into<String>, ts: Option<i64>) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            kind: "text".to_owned(),
            body: Value::String(body.into()),
            reply_to: None,
            ts,
        }
    }

    /// The JSON bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings, numbers and a JSON value always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The body as display text: the string itself for text, compact JSON otherwise.
    pub fn body_text(&self) -> String {
        match &self.body {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// Parses and checks a chat payload: at most [`MAX_CHAT_PAYLOAD`] bytes of a JSON
    /// object with an `id` of 1 to [`MAX_MESSAGE_ID_CHARS`] characters, a non-empty `kind`
    /// (neither with control characters), a non-null `body`, optional `reply_to` (the rules
    /// of `id`) and `ts`, and no NUL in any string or key.
    pub fn parse(payload: &[u8]) -> Result<ChatMessage, PayloadError> {
        Self::parse_within(payload, MAX_CHAT_PAYLOAD)
    }

    /// [`ChatMessage::parse`] with another size bound: the stamped copy a history service
    /// publishes is the sent payload plus the server's fields
    /// ([`crate::delivered::MAX_STAMPED_PAYLOAD`]).
    pub fn parse_within(payload: &[u8], max_bytes: usize) -> Result<ChatMessage, PayloadError> {
        if payload.len() > max_bytes {
            return Err(PayloadError::TooLarge(payload.len()));
        }
        let invalid = |message: &str| Err(PayloadError::Invalid(message.to_owned()));
        let shape = |e: serde_json::Error| {
            PayloadError::Invalid(format!(
                "a chat payload is a JSON object with id, kind and body: {e}"
            ))
        };
        let value: Value = serde_json::from_slice(payload).map_err(shape)?;
        if !value.is_object() {
            // (serde would read a struct from an array too: `["m","text","x"]`.)
            return invalid("a chat payload is a JSON object with id, kind and body");
        }
        if has_nul(&value) {
            return invalid("a chat payload must not contain NUL characters");
        }
        let chat: ChatMessage = serde_json::from_value(value).map_err(shape)?;
        if !is_valid_message_id(&chat.id) {
            return invalid("id must be 1 to 64 characters, none of them control characters");
        }
        if chat.kind.is_empty() {
            return invalid("kind must not be empty");
        }
        if chat.kind.chars().any(char::is_control) {
            return invalid("kind must not contain control characters");
        }
        if chat.body.is_null() {
            return invalid("body is required");
        }
        if chat
            .reply_to
            .as_deref()
            .is_some_and(|r| !is_valid_message_id(r))
        {
            return invalid("reply_to must be 1 to 64 characters, none of them control characters");
        }
        Ok(chat)
    }

    /// The verdict of [`ChatMessage::parse_within`] without the message: `Ok` for exactly
    /// the payloads it accepts and its very error for the others, but a valid payload is
    /// checked without building anything (`chat_scan.rs`). What the node runs on every chat
    /// PUBLISH.
    pub fn check_within(payload: &[u8], max_bytes: usize) -> Result<(), PayloadError> {
        if payload.len() > max_bytes {
            return Err(PayloadError::TooLarge(payload.len()));
        }
        if scan::certainly_valid(payload) {
            return Ok(());
        }
        Self::parse_within(payload, max_bytes).map(drop)
    }
}

/// Whether `id` is a valid chat message id: 1 to [`MAX_MESSAGE_ID_CHARS`] characters
/// (Unicode scalar values, not bytes), none of them a control character.
pub fn is_valid_message_id(id: &str) -> bool {
    let mut n = 0;
    for c in id.chars() {
        n += 1;
        if n > MAX_MESSAGE_ID_CHARS || c.is_control() {
            return false;
        }
    }
    n > 0
}

/// The `id` of a payload that may be refused, for the `error` notice: the string `id` of
/// a JSON object, whatever else is wrong with it, when it is 1 to
/// [`MAX_MESSAGE_ID_CHARS`] characters long (control characters included: the notice is
/// JSON, which escapes them, and the sender needs the id it sent to mark that message
/// failed). Parses the whole payload: meant for the refusal path.
pub fn payload_id(payload: &[u8]) -> Option<String> {
    let Ok(Value::Object(mut object)) = serde_json::from_slice(payload) else {
        return None;
    };
    match object.remove("id") {
        Some(Value::String(id)) if (1..=MAX_MESSAGE_ID_CHARS).contains(&id.chars().count()) => {
            Some(id)
        }
        _ => None,
    }
}

/// Whether a NUL is in any string or key of `value`. (serde_json bounds the nesting of
/// what it parses, so the recursion is bounded too.)
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_protocol_shape() {
        let ok = br#"{"id":"m1","kind":"text","body":"hi","reply_to":"m0","ts":1700000000000,"extra":1}"#;
        let chat = ChatMessage::parse(ok).unwrap();
        assert_eq!(chat.id, "m1");
        assert_eq!(chat.reply_to.as_deref(), Some("m0"));
        assert_eq!(chat.ts, Some(1_700_000_000_000));
        assert!(ChatMessage::parse(br#"{"id":"m1","kind":"image","body":{"url":"x"}}"#).is_ok());
        // Control characters other than NUL are fine in a body: it is text.
        assert!(ChatMessage::parse(br#"{"id":"m1","kind":"text","body":"a\nb\tc"}"#).is_ok());
    }

    #[test]
    fn text_round_trip() {
        let m = ChatMessage::text("m-1", "hello", Some(5));
        let v: Value = serde_json::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": "m-1", "kind": "text", "body": "hello", "ts": 5})
        );
        assert_eq!(ChatMessage::parse(&m.to_bytes()), Ok(m.clone()));
        assert_eq!(m.body_text(), "hello");
        let image = ChatMessage {
            body: serde_json::json!({"url": "x"}),
            ..m
        };
        assert_eq!(image.body_text(), r#"{"url":"x"}"#);
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            &b"hello"[..],
            b"[]",
            br#"["m","text","x"]"#,
            b"{}",
            br#"{"id":"","kind":"text","body":"x"}"#,
            br#"{"id":1,"kind":"text","body":"x"}"#,
            br#"{"id":"m","body":"x"}"#,
            br#"{"id":"m","kind":"text"}"#,
            br#"{"id":"m","kind":"text","body":null}"#,
            br#"{"id":"m","kind":"","body":"x"}"#,
            br#"{"id":"m","kind":"text","body":"x","ts":"soon"}"#,
            br#"{"id":"m","kind":"text","body":"x","reply_to":""}"#,
            b"\xff\xfe",
        ] {
            let e = ChatMessage::parse(bad).unwrap_err();
            assert_eq!(
                e.code(),
                "invalid_payload",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn nul_anywhere_and_control_characters_in_id_or_kind_are_refused() {
        for bad in [
            &br#"{"id":"a\u0000b","kind":"text","body":"x"}"#[..],
            br#"{"id":"m","kind":"text","body":"a\u0000"}"#,
            br#"{"id":"m","kind":"text","body":{"deep":[["\u0000"]]}}"#,
            br#"{"id":"m","kind":"text","body":"x","extra\u0000":1}"#,
            br#"{"id":"m","kind":"text","body":"x","extra":"\u0000"}"#,
            br#"{"id":"m\u0007","kind":"text","body":"x"}"#,
            br#"{"id":"m\u009f","kind":"text","body":"x"}"#,
            br#"{"id":"m","kind":"te\nxt","body":"x"}"#,
            br#"{"id":"m","kind":"text","body":"x","reply_to":"m\r"}"#,
        ] {
            let e = ChatMessage::parse(bad).unwrap_err();
            assert_eq!(
                e.code(),
                "invalid_payload",
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // An escaped backslash before `u0000` is not a NUL.
        assert!(ChatMessage::parse(br#"{"id":"m","kind":"text","body":"\\u0000"}"#).is_ok());
    }

    #[test]
    fn id_length_counts_characters() {
        let payload = |id: &str| format!(r#"{{"id":"{id}","kind":"text","body":"x"}}"#);
        let bird = "\u{1F426}";
        assert!(ChatMessage::parse(payload(&bird.repeat(64)).as_bytes()).is_ok());
        assert!(ChatMessage::parse(payload(&"a".repeat(64)).as_bytes()).is_ok());
        assert!(ChatMessage::parse(payload(&bird.repeat(65)).as_bytes()).is_err());
        assert!(ChatMessage::parse(payload(&"a".repeat(65)).as_bytes()).is_err());
        assert!(is_valid_message_id("é"));
        assert!(!is_valid_message_id(""));
    }

    #[test]
    fn too_large() {
        let big = format!(
            r#"{{"id":"m","kind":"text","body":"{}"}}"#,
            "x".repeat(MAX_CHAT_PAYLOAD)
        );
        let e = ChatMessage::parse(big.as_bytes()).unwrap_err();
        assert_eq!(e.code(), "too_large");
        assert_eq!(e, PayloadError::TooLarge(big.len()));
    }

    #[test]
    fn payload_id_is_read_from_whatever_is_refused() {
        let bird = "\u{1F426}".repeat(20);
        let no_body = serde_json::json!({"id": bird, "kind": "text"}).to_string();
        assert_eq!(payload_id(no_body.as_bytes()), Some(bird));
        assert_eq!(
            payload_id(br#"{"id":"a\u0000b","kind":"text","body":"x"}"#).as_deref(),
            Some("a\0b")
        );
        assert_eq!(payload_id(br#"{"id":"m","kind":1}"#).as_deref(), Some("m"));
        for none in [
            &b"not json"[..],
            br#"["a list"]"#,
            br#"{"id":""}"#,
            br#"{"id":7}"#,
            br#"{"kind":"text"}"#,
        ] {
            assert_eq!(payload_id(none), None, "{}", String::from_utf8_lossy(none));
        }
        let long = format!(r#"{{"id":"{}"}}"#, "a".repeat(65));
        assert_eq!(payload_id(long.as_bytes()), None);
    }
}
