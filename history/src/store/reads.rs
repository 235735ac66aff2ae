//! Other members' read positions (docs/protocol.md section 5: `conversations` items'
//! `reads`, and the `members` request), so a client that was offline recovers the
//! receipts it missed without replaying them.

use std::collections::{BTreeMap, HashMap};

use super::sql::{check_conv, numbered, ROWS_PER_STATEMENT};
use super::Store;
use crate::{Conv, HistoryError};

/// Read positions by conversation id, then by user.
pub type Reads = HashMap<String, BTreeMap<String, i64>>;

impl Store {
    /// The read position of every member the server knows of in each of `convs`: a DM's
    /// two users (0 for one who never read it) and a group's participants (those who have
    /// sent to or read it; membership itself lives in tokens). `except` (the asker, whose
    /// own position is the summary's `read_seq`) is left out.
    pub async fn reads(&self, convs: &[Conv], except: Option<&str>) -> Result<Reads, HistoryError> {
        let mut out: Reads = HashMap::with_capacity(convs.len());
        for conv in convs {
            check_conv(conv)?;
            let members = out.entry(conv.to_string()).or_default();
            if let Conv::Dm { a, b } = conv {
                members.insert(a.clone(), 0);
                members.insert(b.clone(), 0);
            }
        }
        let ids: Vec<String> = out.keys().cloned().collect();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT conv, user_id, read_seq FROM history_participants WHERE conv IN ({})",
                numbered(chunk.len(), 1)
            );
            let mut q = sqlx::query_as::<_, (String, String, i64)>(&sql).persistent(false);
            for c in chunk {
                q = q.bind(c.as_str());
            }
            for (conv, user, read_seq) in q.fetch_all(&self.inner.pool).await? {
                if let Some(members) = out.get_mut(&conv) {
                    members.insert(user, read_seq);
                }
            }
        }
        if let Some(me) = except {
            for members in out.values_mut() {
                members.remove(me);
            }
        }
        Ok(out)
    }
}
