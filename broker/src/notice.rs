//! Server notices on `im/sys/{user}` (docs/protocol.md section 5) as the node sends them:
//! the JSON is roost-proto's, this only addresses it to the user's system topic.

use crate::router::SystemMessage;
use roost_proto::notice::Notice;

pub use roost_proto::chat::payload_id;
pub use roost_proto::notice::code::{FORBIDDEN, INVALID_PAYLOAD};

/// An `error` notice for `user`. `id` is the chat message id when the refused publish
/// carried one ([`payload_id`]), so the client can mark that message as failed.
pub fn error(user: &str, id: Option<&str>, code: &str, message: String) -> SystemMessage {
    error_at(roost_proto::topic::sys(user), id, code, message)
}

/// An `error` notice on `topic` (one of the user's `im/sys/{user}/...` topics).
pub fn error_at(topic: String, id: Option<&str>, code: &str, message: String) -> SystemMessage {
    let notice = Notice::Error {
        code,
        message: &message,
        id,
    };
    SystemMessage {
        topic,
        payload: notice.to_bytes(),
        retain: false,
    }
}

/// Unix milliseconds, for presence `ts` (roost-proto's clock, the one every `ts` uses).
pub fn now_ms() -> u64 {
    u64::try_from(roost_proto::clock::now_ms()).unwrap_or(0)
}
