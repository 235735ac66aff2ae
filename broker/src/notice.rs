//! Server notices on `im/sys/{user}` (PROTOCOL.md section 5).

use crate::router::SystemMessage;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `code` of an `error` notice for a refused publish or subscription.
pub const FORBIDDEN: &str = "forbidden";

/// An `error` notice for `user`. `id` is the chat message id when the refused publish
/// carried one, so the client can mark that message as failed.
pub fn error(user: &str, id: Option<&str>, code: &str, message: String) -> SystemMessage {
    let mut notice = serde_json::json!({
        "type": "error",
        "code": code,
        "message": message,
    });
    if let Some(id) = id {
        notice["id"] = serde_json::Value::from(id);
    }
    SystemMessage {
        topic: format!("im/sys/{user}"),
        payload: notice.to_string().into_bytes(),
        retain: false,
    }
}

/// The `id` of a chat payload, if it is a JSON object with a string `id`. Cheap enough for
/// the refusal path only.
pub fn payload_id(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithId {
        id: String,
    }
    serde_json::from_slice::<WithId>(payload)
        .ok()
        .map(|p| p.id)
        .filter(|id| !id.is_empty() && id.len() <= 64)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
