//! What the client adds to the chat payload of roost-proto: fresh message ids and its clock.

use rand::Rng;
use roost_proto::chat::ChatMessage;

/// A text message with a fresh random id and the current time.
pub fn new_text(body: impl Into<String>) -> ChatMessage {
    ChatMessage::text(new_message_id(), body, Some(now_ms()))
}

/// 16 random lowercase hex characters.
pub fn new_message_id() -> String {
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// Unix time in milliseconds (roost-proto's clock, the one every `ts` uses).
pub use roost_proto::clock::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        let m = new_text("hello");
        assert_eq!(m.id.len(), 16);
        assert!(m.id.bytes().all(|b| b.is_ascii_hexdigit()));
        let v: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(v["kind"], "text");
        assert_eq!(v["body"], "hello");
        assert!(v["ts"].is_i64());
        assert!(v.get("reply_to").is_none());
        assert_eq!(ChatMessage::parse(&m.to_bytes()).ok(), Some(m));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(ChatMessage::parse(b"\xff\x00").is_err());
        assert!(ChatMessage::parse(b"{\"id\":1}").is_err());
        assert!(ChatMessage::parse(b"[]").is_err());
    }
}
