//! The copy of a stored chat message that recipients get under stamped delivery
//! (docs/protocol.md section 4, "Delivery"): the payload as sent, plus the server's
//! `conv`, `seq`, `ts` and `from`, so a client can order it, merge it with `history`/`sync`
//! and send `read` without asking anything.
//!
//! The sent bytes are kept as they are whenever the payload has none of the four fields
//! (the server's fields are appended before the closing brace); a payload that has some
//! gets them replaced, the server being the one that knows them.

use crate::limits::MAX_CHAT_PAYLOAD;
use serde_json::{Map, Value};

/// The fields the server sets on the delivered copy. `ts` is the server's clock (as in
/// `ack`, `history` and `sync`): a client's own `ts` is replaced in the copy and stays in
/// the stored payload.
pub const STAMP_FIELDS: [&str; 4] = ["conv", "seq", "ts", "from"];

/// Largest stamped copy: a chat payload at its limit, plus the four fields at their
/// longest (a group conversation id and a sender of 64 characters, two 64-bit numbers),
/// with room to spare.
pub const MAX_STAMPED_PAYLOAD: usize = MAX_CHAT_PAYLOAD + 1024;

/// What the history service knows of a message once it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    pub conv: &'a str,
    pub seq: i64,
    /// Server time when stored, unix milliseconds.
    pub ts: i64,
    /// The verified sender (the topic's `{from}`).
    pub from: &'a str,
}

/// The stamped copy of `payload`, or `None` if it is not a JSON object (the node never
/// routes such a chat payload).
pub fn stamped(payload: &[u8], stamp: &Stamp) -> Option<Vec<u8>> {
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(payload) else {
        return None;
    };
    if STAMP_FIELDS.iter().any(|k| fields.contains_key(*k)) {
        insert(&mut fields, stamp);
        return serde_json::to_vec(&fields).ok();
    }
    // The sent bytes, the server's fields spliced in before the closing brace. A chat
    // payload always has `id`, so the object is not empty and a comma goes first.
    let end = payload.iter().rposition(|&b| b == b'}')?;
    let mut tail = Map::new();
    insert(&mut tail, stamp);
    let tail = serde_json::to_vec(&tail).ok()?;
    let mut out = Vec::with_capacity(payload.len() + tail.len());
    out.extend_from_slice(&payload[..end]);
    out.push(b',');
    // `{"conv":...}` without its braces.
    out.extend_from_slice(&tail[1..tail.len() - 1]);
    out.extend_from_slice(&payload[end..]);
    Some(out)
}

fn insert(fields: &mut Map<String, Value>, stamp: &Stamp) {
    fields.insert("conv".into(), stamp.conv.into());
    fields.insert("seq".into(), stamp.seq.into());
    fields.insert("ts".into(), stamp.ts.into());
    fields.insert("from".into(), stamp.from.into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ChatMessage;
    use serde_json::json;

    const STAMP: Stamp = Stamp {
        conv: "dm:alice:bob",
        seq: 7,
        ts: 1_700_000_000_123,
        from: "alice",
    };

    #[test]
    fn sent_bytes_are_kept_and_the_stamp_appended() {
        let sent =
            br#"{"id":"m-1","kind":"text","body":"h\u00e9","reply_to":"m-0","x":{"y":1.50}} "#;
        let copy = stamped(sent, &STAMP).unwrap();
        let text = String::from_utf8(copy.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"id":"m-1","kind":"text","body":"h\u00e9","reply_to":"m-0","x":{"y":1.50},"#
            ),
            "{text}"
        );
        let v: Value = serde_json::from_slice(&copy).unwrap();
        assert_eq!(
            v,
            json!({"id": "m-1", "kind": "text", "body": "hé", "reply_to": "m-0", "x": {"y": 1.5},
                   "conv": "dm:alice:bob", "seq": 7, "ts": 1_700_000_000_123_i64, "from": "alice"})
        );
        assert!(ChatMessage::parse(&copy).is_ok());
    }

    #[test]
    fn the_server_fields_replace_what_the_client_sent() {
        let sent = br#"{"id":"m","kind":"text","body":"x","ts":5,"seq":99,"from":"mallory","conv":"grp:x"}"#;
        let v: Value = serde_json::from_slice(&stamped(sent, &STAMP).unwrap()).unwrap();
        assert_eq!(v["ts"], 1_700_000_000_123_i64);
        assert_eq!(v["seq"], 7);
        assert_eq!(v["from"], "alice");
        assert_eq!(v["conv"], "dm:alice:bob");
        assert_eq!(v["body"], "x");
        assert_eq!(v.as_object().unwrap().len(), 7);
    }

    #[test]
    fn the_largest_payload_fits_its_bound() {
        let conv = format!("grp:{}", "g".repeat(64));
        let from = "f".repeat(64);
        let stamp = Stamp {
            conv: &conv,
            seq: i64::MAX,
            ts: i64::MIN,
            from: &from,
        };
        let head = r#"{"id":"m","kind":"text","body":""#;
        let body = "b".repeat(MAX_CHAT_PAYLOAD - head.len() - 2);
        let sent = format!("{head}{body}\"}}");
        assert_eq!(sent.len(), MAX_CHAT_PAYLOAD);
        let copy = stamped(sent.as_bytes(), &stamp).unwrap();
        assert!(copy.len() <= MAX_STAMPED_PAYLOAD);
        assert!(ChatMessage::parse_within(&copy, MAX_STAMPED_PAYLOAD).is_ok());
        assert!(ChatMessage::parse(&copy).is_err());
    }

    #[test]
    fn not_an_object() {
        for bad in [&b"[]"[..], b"nope", b"\"s\""] {
            assert_eq!(stamped(bad, &STAMP), None);
        }
    }
}
