//! roost chat history: the storage layer.
//!
//! Every chat message published on a stored topic (`im/dm/{to}/{from}`,
//! `im/grp/{group}/{from}`) is stored once, identified by `(from, id)`, with a
//! gapless per-conversation `seq` and a global sync position, on PostgreSQL (what
//! a cluster shares) or SQLite (the embedded default), with one schema.
//!
//! The database layer is [`Store`] and its types; [`service`] runs it against the node's
//! traffic (inside `roost serve`, or as `roost history-worker` over MQTT via [`worker`]).
//! Authorization
//! is the caller's: it hands in the verified user and their token's `groups`, and
//! checks [`Conv::can_read`] before [`Store::history`] or [`Store::mark_read`].
//! Group membership lives in tokens, never in the store.

mod answer;
mod conv;
mod error;
mod fair;
pub mod metrics;
mod reply;
pub mod service;
mod store;
pub mod worker;

use std::time::Duration;

use roost_proto::limits::MAX_MESSAGE_ID_CHARS;
use serde::{Deserialize, Serialize};

pub use conv::Conv;
pub use error::HistoryError;
pub use store::{
    Account, AccountError, Backend, Credentials, Group, Reads, Store, DEFAULT_POOL_SIZE,
    MAX_CONTACTS, MAX_DISABLED, SQLITE_POOL_SIZE,
};

/// The `sync` cursor that stands for the end of the log: its page is empty, and its
/// `cursor` is where a new device's first sync starts (docs/writing-a-client.md).
pub const SYNC_NOW: &str = "now";

/// A chat message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub conv: Conv,
    /// The sender (the topic's `{from}`, which the broker's ACL verified).
    pub from: String,
    /// The payload's `id`, unique per sender.
    pub id: String,
    /// The JSON payload as sent.
    pub payload: String,
}

impl NewMessage {
    /// A message published on a stored topic, with the `id` taken from its JSON
    /// payload. Checks only what the store needs (a stored topic, a JSON object
    /// with a string `id` of 1..64 chars); the payload's other fields are the
    /// caller's to check.
    pub fn from_publish(topic: &str, payload: &[u8]) -> Result<NewMessage, String> {
        let (conv, from) = Conv::from_topic(topic).ok_or("not a stored chat topic")?;
        let text = std::str::from_utf8(payload).map_err(|_| "payload is not UTF-8")?;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("payload is not JSON: {e}"))?;
        let id = value
            .as_object()
            .ok_or("payload is not a JSON object")?
            .get("id")
            .and_then(|v| v.as_str())
            .ok_or("payload has no string `id`")?;
        let m = NewMessage {
            conv,
            from,
            id: id.to_owned(),
            payload: text.to_owned(),
        };
        m.validate()?;
        Ok(m)
    }

    /// Whether the store accepts this message: a valid conversation, a valid
    /// sender who (for a DM) is one of its two users, and an `id` of 1..64 chars.
    pub fn validate(&self) -> Result<(), String> {
        if !self.conv.is_valid() {
            return Err(format!("invalid conversation {}", self.conv));
        }
        if !roost_proto::id::is_valid_id(&self.from) {
            return Err(format!("invalid sender {:?}", self.from));
        }
        if matches!(self.conv, Conv::Dm { .. }) && !self.conv.is_dm_participant(&self.from) {
            return Err(format!(
                "{} is not a participant of {}",
                self.from, self.conv
            ));
        }
        // Only the length: what else the node refuses in an id (NUL, control characters:
        // roost_proto::chat) is kept out before it gets here, and what the database itself
        // refuses is set apart by `Store::store_each`.
        let n = self.id.chars().count();
        if n == 0 || n > MAX_MESSAGE_ID_CHARS {
            return Err(format!(
                "message id must be 1..={MAX_MESSAGE_ID_CHARS} chars"
            ));
        }
        Ok(())
    }
}

/// The outcome of storing one message: where it is, and whether it was already
/// there (`duplicate`: same `(from, id)` stored before, nothing new written; the
/// conv, seq and ts are the original ones, so the `ack` can be sent again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub conv: String,
    pub from: String,
    pub id: String,
    pub seq: i64,
    /// Server time when first stored, unix milliseconds.
    pub ts: i64,
    pub duplicate: bool,
}

/// A stored message as served back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub seq: i64,
    pub id: String,
    pub from: String,
    /// Server time when stored, unix milliseconds.
    pub ts: i64,
    /// The payload as sent, parsed (a JSON string if it somehow does not parse).
    pub payload: serde_json::Value,
}

impl Message {
    /// About how many bytes the payload takes in an answer.
    fn payload_size(&self) -> usize {
        match &self.payload {
            serde_json::Value::String(s) => s.len(),
            other => other.to_string().len(),
        }
    }
}

/// A message of a `sync` page: the message and its conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncMessage {
    pub conv: String,
    #[serde(flatten)]
    pub message: Message,
}

/// A `history` page: messages in ascending seq order; `more` = there are further
/// messages in the direction of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub messages: Vec<Message>,
    pub more: bool,
}

/// A `sync` page: messages oldest first, the cursor to pass back for the next
/// page, and whether more are already waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncPage {
    pub messages: Vec<SyncMessage>,
    /// Opaque; pass it back as is.
    pub cursor: String,
    pub more: bool,
}

/// One line of `conversations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub conv: String,
    pub last_seq: i64,
    pub read_seq: i64,
    /// `last_seq - read_seq`, never below 0.
    pub unread: i64,
    /// The last message, unless retention deleted it.
    pub last: Option<Message>,
    /// The other members' read positions (user -> read seq): a DM's other user, a group's
    /// members who have sent to or read it.
    #[serde(default)]
    pub reads: std::collections::BTreeMap<String, i64>,
}

/// A page of `conversations`, most recent first; pass `cursor` back for the next
/// page when `more`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationsPage {
    pub conversations: Vec<Summary>,
    pub cursor: Option<String>,
    pub more: bool,
}

/// Retention limits; `None` keeps everything in that respect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete messages stored longer ago than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many of the newest messages per conversation.
    pub max_messages: Option<u64>,
}
