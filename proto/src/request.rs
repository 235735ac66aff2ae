//! Requests on `im/req/{user}` (docs/protocol.md section 5):
//! `{"req": <correlation id>, "method": ..., "params": {...}}`.
//!
//! This reads the envelope and the parameters' types; whether the user may read the
//! conversation named in one is the history service's to decide.

use crate::notice::code;
use serde_json::{json, Value};

/// Why a request is refused: the `code` and `message` of the `result`'s `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RequestError {
    pub code: &'static str,
    pub message: String,
}

impl RequestError {
    pub fn invalid(message: impl Into<String>) -> RequestError {
        RequestError {
            code: code::INVALID_REQUEST,
            message: message.into(),
        }
    }
}

/// The methods a request may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    History,
    Sync,
    Conversations,
    Read,
    Members,
}

/// A request read from its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The client's correlation id, sent back as is (`null` when there was none).
    pub req: Value,
    /// The method, or why it is not one.
    pub method: Result<Method, RequestError>,
    /// `params`, `{}` when absent.
    pub params: Value,
}

impl Request {
    /// Reads a request. A payload that is not JSON is an error with no `req` to answer to
    /// (the answer then carries `"req": null`).
    pub fn parse(payload: &[u8]) -> Result<Request, RequestError> {
        let request: Value = serde_json::from_slice(payload)
            .map_err(|e| RequestError::invalid(format!("a request is a JSON object: {e}")))?;
        let method = match request.get("method").and_then(Value::as_str) {
            None | Some("") => Err(RequestError::invalid("missing method")),
            Some("history") => Ok(Method::History),
            Some("sync") => Ok(Method::Sync),
            Some("conversations") => Ok(Method::Conversations),
            Some("read") => Ok(Method::Read),
            Some("members") => Ok(Method::Members),
            Some(other) => Err(RequestError {
                code: code::UNKNOWN_METHOD,
                message: format!("no method {other:?}"),
            }),
        };
        Ok(Request {
            req: request.get("req").cloned().unwrap_or(Value::Null),
            method,
            params: request.get("params").cloned().unwrap_or_else(|| json!({})),
        })
    }

    /// The string parameter `name`, if there is one.
    pub fn str_param(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    /// The integer parameter `name`: absent or `null` is `None`, anything but an integer
    /// is an error.
    pub fn int_param(&self, name: &str) -> Result<Option<i64>, RequestError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| RequestError::invalid(format!("{name} must be an integer"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_envelope() {
        let r = Request::parse(
            br#"{"req":"r1","method":"history","params":{"conv":"grp:g","limit":5}}"#,
        )
        .unwrap();
        assert_eq!(r.req, json!("r1"));
        assert_eq!(r.method, Ok(Method::History));
        assert_eq!(r.str_param("conv"), Some("grp:g"));
        assert_eq!(r.int_param("limit"), Ok(Some(5)));
        assert_eq!(r.int_param("before_seq"), Ok(None));

        let r = Request::parse(br#"{"method":"conversations"}"#).unwrap();
        assert_eq!(
            (r.req, r.method, r.params),
            (Value::Null, Ok(Method::Conversations), json!({}))
        );
        for (method, parsed) in [
            ("sync", Method::Sync),
            ("read", Method::Read),
            ("members", Method::Members),
        ] {
            let r = Request::parse(format!(r#"{{"method":"{method}"}}"#).as_bytes()).unwrap();
            assert_eq!(r.method, Ok(parsed));
        }
    }

    #[test]
    fn refusals_carry_their_codes() {
        let e = Request::parse(b"nope").unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert!(e.message.starts_with("a request is a JSON object: "), "{e}");

        let r = Request::parse(br#"{"req":7}"#).unwrap();
        assert_eq!(r.req, json!(7));
        assert_eq!(r.method, Err(RequestError::invalid("missing method")));
        let r = Request::parse(br#"{"method":"drop"}"#).unwrap();
        let e = r.method.unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("unknown_method", r#"no method "drop""#)
        );

        let r = Request::parse(br#"{"method":"read","params":{"seq":"3","conv":1}}"#).unwrap();
        assert_eq!(
            r.int_param("seq"),
            Err(RequestError::invalid("seq must be an integer"))
        );
        assert_eq!(r.str_param("conv"), None);
        let r = Request::parse(br#"{"method":"read","params":{"seq":null}}"#).unwrap();
        assert_eq!(r.int_param("seq"), Ok(None));
    }
}
