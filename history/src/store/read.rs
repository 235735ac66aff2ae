//! Reading: a conversation's pages, a user's sync across all their
//! conversations, their conversation list, and read cursors (the one small
//! write readers make, with the receipts' recipients).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::sql::{check_conv, group_convs, numbered, ROWS_PER_STATEMENT};
use super::Store;
use crate::{Conv, ConversationsPage, HistoryError, Message, Page, Summary, SyncMessage, SyncPage};
use roost_proto::limits::{
    MAX_ANSWER_BYTES, MAX_CONVERSATIONS_LIMIT, MAX_HISTORY_LIMIT, MAX_SYNC_LIMIT,
};

const CURSOR_PREFIX: &str = "v1:";
/// What one listed item adds to an answer besides its payload (fields, ids, JSON).
const PER_ITEM_BYTES: usize = 160;

impl Store {
    /// A page of one conversation, always in ascending seq order.
    ///
    /// - neither bound: the latest `limit` messages; `more` = older ones exist;
    /// - `before_seq`: the `limit` messages just below it; `more` = older ones exist;
    /// - `after_seq`: the `limit` messages just above it; `more` = newer ones exist;
    /// - both: the first `limit` messages strictly between them; `more` = further
    ///   messages in that range.
    ///
    /// `limit` is clamped to 1..=100. The caller checks [`Conv::can_read`].
    pub async fn history(
        &self,
        conv: &Conv,
        before_seq: Option<i64>,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Page, HistoryError> {
        self.history_within(conv, before_seq, after_seq, limit, MAX_ANSWER_BYTES)
            .await
    }

    /// [`Store::history`] with a page of about `max_bytes` of payloads at most (at least
    /// one message), for an asker that takes only small packets.
    pub async fn history_within(
        &self,
        conv: &Conv,
        before_seq: Option<i64>,
        after_seq: Option<i64>,
        limit: u32,
        max_bytes: usize,
    ) -> Result<Page, HistoryError> {
        check_conv(conv)?;
        let limit = i64::from(limit.clamp(1, MAX_HISTORY_LIMIT));
        const COLS: &str =
            "SELECT seq, msg_id, sender, ts, payload FROM history_messages WHERE conv = $1";
        let conv_id = conv.to_string();
        let (rows, descending) = match (before_seq, after_seq) {
            (None, None) => (
                sqlx::query(&format!("{COLS} ORDER BY seq DESC LIMIT $2"))
                    .bind(&conv_id)
                    .bind(limit + 1)
                    .fetch_all(&self.inner.pool)
                    .await?,
                true,
            ),
            (Some(before), None) => (
                sqlx::query(&format!("{COLS} AND seq < $2 ORDER BY seq DESC LIMIT $3"))
                    .bind(&conv_id)
                    .bind(before)
                    .bind(limit + 1)
                    .fetch_all(&self.inner.pool)
                    .await?,
                true,
            ),
            (None, Some(after)) => (
                sqlx::query(&format!("{COLS} AND seq > $2 ORDER BY seq ASC LIMIT $3"))
                    .bind(&conv_id)
                    .bind(after)
                    .bind(limit + 1)
                    .fetch_all(&self.inner.pool)
                    .await?,
                false,
            ),
            (Some(before), Some(after)) => (
                sqlx::query(&format!(
                    "{COLS} AND seq > $2 AND seq < $3 ORDER BY seq ASC LIMIT $4"
                ))
                .bind(&conv_id)
                .bind(after)
                .bind(before)
                .bind(limit + 1)
                .fetch_all(&self.inner.pool)
                .await?,
                false,
            ),
        };
        let mut more = rows.len() as i64 > limit;
        let mut messages = rows
            .iter()
            .take(limit as usize)
            .map(|r| message_from_row(r, 0))
            .collect::<Result<Vec<_>, _>>()?;
        // In query order, the messages nearest the anchor come first: keep those.
        more |= fit(&mut messages, |m| m.payload_size(), max_bytes);
        if descending {
            messages.reverse();
        }
        Ok(Page { messages, more })
    }

    /// Every message of every conversation `user` can read (the DMs they are in,
    /// the groups in `groups`, i.e. their verified token's groups) after `cursor`,
    /// oldest first. `limit` is clamped to 1..=500. Pass the returned cursor back;
    /// `more` = further messages are already waiting. A malformed cursor is a
    /// bad request ([`HistoryError::InvalidCursor`]).
    ///
    /// The cursor is a global log position (gid); see [`Store::store_batch`] for
    /// why no message that commits later can land behind it. A page holds the
    /// user's messages between the cursor and the head of the log as read at the
    /// start of the call; when it is not full, the cursor moves to that head, so
    /// a user whose conversations are quiet never rescans other users' traffic.
    pub async fn sync(
        &self,
        user: &str,
        groups: &[String],
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SyncPage, HistoryError> {
        self.sync_within(user, groups, cursor, limit, MAX_ANSWER_BYTES)
            .await
    }

    /// [`Store::sync`] with a page of about `max_bytes` of payloads at most (at least one
    /// message).
    pub async fn sync_within(
        &self,
        user: &str,
        groups: &[String],
        cursor: Option<&str>,
        limit: u32,
        max_bytes: usize,
    ) -> Result<SyncPage, HistoryError> {
        let after = match cursor {
            None => 0,
            Some(c) => parse_cursor(c)?,
        };
        let limit = i64::from(limit.clamp(1, MAX_SYNC_LIMIT));
        // 1. The head of the log. Every gid up to it is committed (gids are
        //    allocated in commit order), so this page is "the user's messages
        //    in (after, head]": everything later is for the next call.
        let head: i64 = sqlx::query_scalar("SELECT last_gid FROM history_head WHERE id = 1")
            .fetch_one(&self.inner.pool)
            .await?;
        if head <= after {
            return Ok(SyncPage {
                messages: Vec::new(),
                cursor: format!("{CURSOR_PREFIX}{after}"),
                more: false,
            });
        }
        // 2. The user's conversations. Read after the head, so it includes the
        //    conversation of every message up to the head.
        let mut convs: Vec<String> = sqlx::query_scalar(
            "SELECT conv FROM history_conversations WHERE dm_a = $1 OR dm_b = $1",
        )
        .bind(user)
        .fetch_all(&self.inner.pool)
        .await?;
        convs.extend(group_convs(groups));
        convs.sort();
        convs.dedup();
        // 3. Their messages in (after, head], oldest first. The conversations
        //    are bound as a list (not a subquery) and the statement is not
        //    cached, so PostgreSQL plans with the actual values: a user with
        //    little traffic is served from the (conv, gid) index instead of a
        //    walk over everyone's messages since the cursor.
        let mut rows: Vec<(i64, SyncMessage)> = Vec::new();
        for chunk in convs.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT seq, msg_id, sender, ts, payload, conv, gid FROM history_messages \
                 WHERE gid > $1 AND gid <= $2 AND conv IN ({}) ORDER BY gid LIMIT $3",
                numbered(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql)
                .persistent(false)
                .bind(after)
                .bind(head)
                .bind(limit + 1);
            for c in chunk {
                q = q.bind(c.as_str());
            }
            for row in q.fetch_all(&self.inner.pool).await? {
                let message = SyncMessage {
                    conv: row.try_get(5)?,
                    message: message_from_row(&row, 0)?,
                };
                rows.push((row.try_get(6)?, message));
            }
        }
        rows.sort_by_key(|(gid, _)| *gid);
        let mut more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        more |= fit(&mut rows, |(_, m)| m.message.payload_size(), max_bytes);
        let position = match rows.last() {
            Some((gid, _)) if more => *gid,
            _ => head,
        };
        let messages = rows.into_iter().map(|(_, m)| m).collect();
        Ok(SyncPage {
            messages,
            cursor: format!("{CURSOR_PREFIX}{position}"),
            more,
        })
    }

    /// The conversations of `user` that have had messages: the DMs they are in
    /// and the groups in `groups` (their verified token's groups), newest last
    /// message first, with their read cursor and unread count
    /// (`last_seq - read_seq`, never below 0).
    ///
    /// One page of at most `limit` (clamped to 1..=[`MAX_CONVERSATIONS_LIMIT`]) and
    /// about [`MAX_ANSWER_BYTES`]; `cursor` (from the previous page) continues with
    /// the conversations whose last message is older than that page's last one. A
    /// conversation that gets a new message meanwhile moves to the front, so a
    /// walk through the pages may miss it: its new message arrives live anyway.
    pub async fn conversations(
        &self,
        user: &str,
        groups: &[String],
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ConversationsPage, HistoryError> {
        self.conversations_within(user, groups, cursor, limit, MAX_ANSWER_BYTES)
            .await
    }

    /// [`Store::conversations`] with a page of about `max_bytes` of payloads at most (at
    /// least one conversation).
    pub async fn conversations_within(
        &self,
        user: &str,
        groups: &[String],
        cursor: Option<&str>,
        limit: u32,
        max_bytes: usize,
    ) -> Result<ConversationsPage, HistoryError> {
        let before = match cursor {
            None => i64::MAX,
            Some(c) => parse_cursor(c)?,
        };
        let limit = i64::from(limit.clamp(1, MAX_CONVERSATIONS_LIMIT));
        let group_convs = group_convs(groups);
        let mut sql = String::from(
            "SELECT m.seq, m.msg_id, m.sender, m.ts, m.payload, c.conv, c.last_seq, \
             COALESCE(p.read_seq, 0) AS read_seq, c.last_gid \
             FROM history_conversations c \
             LEFT JOIN history_participants p ON p.conv = c.conv AND p.user_id = $1 \
             LEFT JOIN history_messages m ON m.conv = c.conv AND m.seq = c.last_seq \
             WHERE c.last_gid < $2 AND (c.dm_a = $1 OR c.dm_b = $1",
        );
        if !group_convs.is_empty() {
            sql.push_str(" OR c.conv IN (");
            sql.push_str(&numbered(group_convs.len(), 4));
            sql.push(')');
        }
        sql.push_str(") ORDER BY c.last_gid DESC LIMIT $3");
        let mut q = sqlx::query(&sql).bind(user).bind(before).bind(limit + 1);
        for g in &group_convs {
            q = q.bind(g.as_str());
        }
        let rows = q.fetch_all(&self.inner.pool).await?;
        let mut more = rows.len() as i64 > limit;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.iter().take(limit as usize) {
            let last_seq: i64 = row.try_get(6)?;
            let read_seq: i64 = row.try_get(7)?;
            let last = match row.try_get::<Option<i64>, _>(0)? {
                Some(_) => Some(message_from_row(row, 0)?),
                None => None,
            };
            let summary = Summary {
                conv: row.try_get(5)?,
                last_seq,
                read_seq,
                unread: (last_seq - read_seq).max(0),
                last,
                reads: Default::default(),
            };
            out.push((row.try_get::<i64, _>(8)?, summary));
        }
        more |= fit(
            &mut out,
            |(_, s)| s.last.as_ref().map_or(0, Message::payload_size),
            max_bytes,
        );
        let cursor = match out.last() {
            Some((gid, _)) if more => Some(format!("{CURSOR_PREFIX}{gid}")),
            _ => None,
        };
        let convs: Vec<Conv> = out
            .iter()
            .filter_map(|(_, s)| Conv::parse(&s.conv))
            .collect();
        let mut reads = self.reads(&convs, Some(user)).await?;
        for (_, summary) in &mut out {
            summary.reads = reads.remove(&summary.conv).unwrap_or_default();
        }
        Ok(ConversationsPage {
            conversations: out.into_iter().map(|(_, s)| s).collect(),
            cursor,
            more,
        })
    }

    /// Moves `user`'s read cursor in `conv` to `max(old, min(seq, last_seq))` and
    /// returns it. A conversation without messages keeps no cursor (returns 0).
    /// The caller checks [`Conv::can_read`].
    pub async fn mark_read(&self, conv: &Conv, user: &str, seq: i64) -> Result<i64, HistoryError> {
        check_conv(conv)?;
        let conv_id = conv.to_string();
        let last_seq: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM history_conversations WHERE conv = $1")
                .bind(&conv_id)
                .fetch_optional(&self.inner.pool)
                .await?;
        let last_seq = last_seq.unwrap_or(0);
        if last_seq <= 0 {
            return Ok(0);
        }
        // last_seq only grows, so clamping to the value just read is safe.
        let target = seq.clamp(0, last_seq);
        let _writer = self.writer().await;
        let read_seq: i64 = sqlx::query_scalar(
            "INSERT INTO history_participants (conv, user_id, read_seq) VALUES ($1, $2, $3) \
             ON CONFLICT (conv, user_id) DO UPDATE SET read_seq = \
             CASE WHEN excluded.read_seq > history_participants.read_seq \
             THEN excluded.read_seq ELSE history_participants.read_seq END \
             RETURNING read_seq",
        )
        .bind(&conv_id)
        .bind(user)
        .bind(target)
        .fetch_one(&self.inner.pool)
        .await?;
        Ok(read_seq)
    }

    /// Who gets a `receipt` when `reader` reads `conv`.
    ///
    /// For a DM, the other participant. For a group, every user who has sent to
    /// it or read it (the store's participants), minus the reader. Group
    /// membership lives in tokens, not in the store, so a member who has never
    /// sent nor read is not listed, and a former member still is: the caller
    /// may filter further.
    pub async fn members_to_notify(
        &self,
        conv: &Conv,
        reader: &str,
    ) -> Result<Vec<String>, HistoryError> {
        check_conv(conv)?;
        match conv {
            Conv::Dm { a, b } => Ok([a, b].into_iter().filter(|u| *u != reader).cloned().collect()),
            Conv::Group(_) => Ok(sqlx::query_scalar(
                "SELECT user_id FROM history_participants WHERE conv = $1 AND user_id <> $2 ORDER BY user_id",
            )
            .bind(conv.to_string())
            .bind(reader)
            .fetch_all(&self.inner.pool)
            .await?),
        }
    }
}

/// A message from columns `first..first+5`: seq, msg_id, sender, ts, payload.
fn message_from_row(row: &AnyRow, first: usize) -> Result<Message, HistoryError> {
    let payload: String = row.try_get(first + 4)?;
    let payload = match serde_json::from_str(&payload) {
        Ok(v) => v,
        Err(_) => serde_json::Value::String(payload),
    };
    Ok(Message {
        seq: row.try_get(first)?,
        id: row.try_get(first + 1)?,
        from: row.try_get(first + 2)?,
        ts: row.try_get(first + 3)?,
        payload,
    })
}

/// Cuts `items` (at least one kept) so their payloads add up to about `max_bytes`
/// ([`MAX_ANSWER_BYTES`] unless the asker takes less); returns whether it cut anything.
fn fit<T>(items: &mut Vec<T>, size: impl Fn(&T) -> usize, max_bytes: usize) -> bool {
    let mut total = 0usize;
    let keep = items
        .iter()
        .position(|item| {
            total += size(item) + PER_ITEM_BYTES;
            total > max_bytes
        })
        .map_or(items.len(), |i| i.max(1));
    let cut = keep < items.len();
    items.truncate(keep);
    cut
}

fn parse_cursor(cursor: &str) -> Result<i64, HistoryError> {
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| HistoryError::InvalidCursor(cursor.chars().take(80).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors() {
        assert_eq!(parse_cursor("v1:0").unwrap(), 0);
        assert_eq!(parse_cursor("v1:42").unwrap(), 42);
        for bad in [
            "",
            "42",
            "v1:",
            "v1:-1",
            "v1:x",
            "v2:1",
            "v1:99999999999999999999",
            "v1:+1",
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(HistoryError::InvalidCursor(_))),
                "{bad}"
            );
        }
    }
}
