//! The notices the server publishes on `im/sys/{user}` (docs/protocol.md section 5), each
//! a JSON object with a `type`, and the stable codes of their errors.
//!
//! The node (refusals) and the history service (acks, receipts, answers) both build them
//! here, so a field name cannot differ between the two.

use serde::Serialize;
use serde_json::Value;

/// The error codes of `error` notices and of `result` errors. Clients match on them.
pub mod code {
    /// Not allowed: a publish or subscription the ACL refused, a conversation the user is
    /// not in, a message that is not stored.
    pub const FORBIDDEN: &str = "forbidden";
    /// A chat payload that is not a chat message.
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
    /// A chat payload over the size limit.
    pub const TOO_LARGE: &str = "too_large";
    /// A request that is not a valid request.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// A request for a method there is none of.
    pub const UNKNOWN_METHOD: &str = "unknown_method";
    /// The history database is away; try again.
    pub const UNAVAILABLE: &str = "unavailable";
    /// More requests than the user's bounds allow; slow down.
    pub const RATE_LIMITED: &str = "rate_limited";
}

/// A notice, as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Notice<'a> {
    /// The message `id` is committed to the history as `seq` of `conv`: the "sent" tick.
    Ack {
        id: &'a str,
        conv: &'a str,
        seq: i64,
        /// Server time when first stored, unix milliseconds.
        ts: i64,
    },
    /// Something the user sent was refused; `id` is the chat message's when it had one.
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    /// Another member, `user`, read `conv` up to `read_seq`.
    Receipt {
        conv: &'a str,
        user: &'a str,
        read_seq: i64,
    },
    /// The answer to the request whose correlation id is `req` (`null` when the request
    /// had none or could not be read).
    Result {
        req: &'a Value,
        #[serde(flatten)]
        outcome: Outcome<'a>,
    },
}

/// What a `result` carries beside its `req`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Outcome<'a> {
    /// `"result": ...`
    Result { result: &'a Value },
    /// `"result": [...], "cursor": ..., "more": ...`: one page of a list (`conversations`),
    /// the list itself staying the documented array.
    Page {
        result: &'a Value,
        cursor: Option<&'a str>,
        more: bool,
    },
    /// `"error": {"code", "message"}`
    Error { error: ErrorBody<'a> },
}

/// The `error` of a `result`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: &'a str,
}

impl Notice<'_> {
    /// The JSON bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Strings, numbers and JSON values always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_of(notice: Notice) -> Value {
        serde_json::from_slice(&notice.to_bytes()).unwrap()
    }

    #[test]
    fn every_notice_has_its_documented_fields() {
        assert_eq!(
            json_of(Notice::Ack {
                id: "m1",
                conv: "dm:a:b",
                seq: 3,
                ts: 9
            }),
            json!({"type": "ack", "id": "m1", "conv": "dm:a:b", "seq": 3, "ts": 9})
        );
        assert_eq!(
            json_of(Notice::Error {
                code: code::FORBIDDEN,
                message: "no",
                id: Some("m-17")
            }),
            json!({"type": "error", "code": "forbidden", "message": "no", "id": "m-17"})
        );
        assert_eq!(
            json_of(Notice::Error {
                code: code::TOO_LARGE,
                message: "big",
                id: None
            }),
            json!({"type": "error", "code": "too_large", "message": "big"})
        );
        assert_eq!(
            json_of(Notice::Receipt {
                conv: "grp:g",
                user: "bob",
                read_seq: 4
            }),
            json!({"type": "receipt", "conv": "grp:g", "user": "bob", "read_seq": 4})
        );
        let req = json!("r1");
        let (object, empty) = (json!({"more": false}), json!([]));
        let result = |outcome| json_of(Notice::Result { req: &req, outcome });
        assert_eq!(
            result(Outcome::Result { result: &object }),
            json!({"type": "result", "req": "r1", "result": {"more": false}})
        );
        assert_eq!(
            result(Outcome::Page {
                result: &empty,
                cursor: Some("c1"),
                more: true
            }),
            json!({"type": "result", "req": "r1", "result": [], "cursor": "c1", "more": true})
        );
        assert_eq!(
            result(Outcome::Page {
                result: &empty,
                cursor: None,
                more: false
            }),
            json!({"type": "result", "req": "r1", "result": [], "cursor": null, "more": false})
        );
        let error = ErrorBody {
            code: code::UNKNOWN_METHOD,
            message: "no method \"x\"",
        };
        assert_eq!(
            json_of(Notice::Result {
                req: &Value::Null,
                outcome: Outcome::Error { error }
            }),
            json!({"type": "result", "req": null,
                   "error": {"code": "unknown_method", "message": "no method \"x\""}})
        );
    }
}
