//! `chat`'s catch-up, as docs/writing-a-client.md describes it: a `sync` from the kept
//! cursor when the chat starts and whenever it reconnects, page by page, keeping the cursor
//! after each page; on a device's first start the cursor `now` (nothing old is dumped on
//! the screen). [`Seen`] is the dedupe key `(from, id)` that keeps a message seen live and
//! again in a page (or echoed back) from being shown twice.

use crate::display::{describe, sanitize};
use crate::payload::new_message_id;
use crate::session::Session;
use crate::state::StateFile;
use anyhow::Result;
use roost_proto::topic;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};

/// The `(from, id)` of messages already shown (or sent) by this chat; the oldest are
/// forgotten past [`Seen::CAP`].
#[derive(Default)]
pub(crate) struct Seen {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Seen {
    const CAP: usize = 4096;

    /// Notes `(from, id)`; `false` when it was already seen.
    pub(crate) fn insert(&mut self, from: &str, id: &str) -> bool {
        let key = format!("{from}\n{id}");
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() == Self::CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

/// What one page of the sync gave.
pub(crate) struct Page {
    /// Lines to print for the messages not seen yet.
    pub(crate) lines: Vec<String>,
    /// Another page is waiting: ask again.
    pub(crate) more: bool,
}

pub(crate) struct CatchUp {
    state: StateFile,
    device: String,
    /// The correlation id of the sync request waiting for its answer.
    pending: Option<String>,
}

impl CatchUp {
    pub(crate) fn new(state: StateFile, device: String) -> CatchUp {
        CatchUp {
            state,
            device,
            pending: None,
        }
    }

    /// Whether this device has synced before (it has a kept cursor).
    pub(crate) fn has_cursor(&self) -> bool {
        self.state.cursor(&self.device).is_some()
    }

    pub(crate) fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Asks for the next page from the kept cursor (`now` on the first start).
    pub(crate) async fn request(&mut self, session: &Session, me: &str) -> Result<()> {
        let cursor = self.state.cursor(&self.device).unwrap_or("now");
        let req = format!("sync-{}", new_message_id());
        let request = json!({"req": req, "method": "sync", "params": {"cursor": cursor}});
        session
            .client
            .publish(&topic::req(me), request.to_string().into_bytes())
            .await?;
        self.pending = Some(req);
        Ok(())
    }

    /// A notice: `None` unless it answers the pending sync. The page's cursor is kept
    /// before its lines are returned.
    pub(crate) fn answer(&mut self, notice: &[u8], me: &str, seen: &mut Seen) -> Option<Page> {
        let notice: Value = serde_json::from_slice(notice).ok()?;
        let pending = self.pending.as_deref()?;
        if notice["type"] != "result" || notice["req"] != pending {
            return None;
        }
        self.pending = None;
        if let Some(error) = notice.get("error") {
            let code = error["code"].as_str().unwrap_or("?");
            let line = format!(
                "[sync] not caught up ({}); trying again on the next reconnect",
                sanitize(code.as_bytes())
            );
            return Some(Page {
                lines: vec![line],
                more: false,
            });
        }
        let result = &notice["result"];
        let mut lines = Vec::new();
        for m in result["messages"].as_array().into_iter().flatten() {
            let (Some(from), Some(id)) = (m["from"].as_str(), m["id"].as_str()) else {
                continue;
            };
            if !seen.insert(from, id) {
                continue;
            }
            if let Some(topic) = topic_of(m["conv"].as_str().unwrap_or_default(), from) {
                let payload = m["payload"].to_string();
                lines.push(describe(me, &topic, payload.as_bytes()));
            }
        }
        if let Some(cursor) = result["cursor"].as_str() {
            if let Err(e) = self.state.set_cursor(&self.device, cursor) {
                lines.push(format!("[sync] cursor not kept: {e:#}"));
            }
        }
        Some(Page {
            lines,
            more: result["more"] == true,
        })
    }
}

/// The topic a stored message of `conv` from `from` was published on.
fn topic_of(conv: &str, from: &str) -> Option<String> {
    if let Some(group) = conv.strip_prefix("grp:") {
        return Some(topic::group(group, from));
    }
    let (a, b) = conv.strip_prefix("dm:")?.split_once(':')?;
    let to = if from == a { b } else { a };
    Some(topic::dm(to, from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_is_keyed_by_sender_and_id() {
        let mut seen = Seen::default();
        assert!(seen.insert("bob", "m1"));
        assert!(!seen.insert("bob", "m1"));
        assert!(seen.insert("carol", "m1"));
    }

    #[test]
    fn stored_messages_map_back_to_their_topics() {
        assert_eq!(
            topic_of("dm:alice:bob", "bob").as_deref(),
            Some("im/dm/alice/bob")
        );
        assert_eq!(
            topic_of("dm:alice:bob", "alice").as_deref(),
            Some("im/dm/bob/alice")
        );
        assert_eq!(
            topic_of("grp:team", "carol").as_deref(),
            Some("im/grp/team/carol")
        );
        assert_eq!(topic_of("nope", "carol"), None);
    }
}
