//! Who is related to whom, for the node rather than for a client: the users a user shares
//! a conversation or a group with (presence visibility, `[presence] visibility =
//! "groups"`), and which accounts are disabled or gone (ending their connections). Reads
//! only, each one statement (or one per chunk of ids), bounded by a `LIMIT`.

use std::collections::HashSet;

use sqlx::Row;

use super::accounts::AccountError;
use super::sql::{group_convs, numbered, ROWS_PER_STATEMENT};
use super::Store;
use crate::HistoryError;

/// Longest list [`Store::contacts`] returns.
pub const MAX_CONTACTS: usize = 10_000;
/// Longest list [`Store::disabled_users`] returns.
pub const MAX_DISABLED: usize = 100_000;
/// Groups of one user looked at by [`Store::contacts`]; a token listing more is cut.
const MAX_GROUPS: usize = 250;

impl Store {
    /// The users who share a conversation or a group with `user` (whose token lists
    /// `groups`), at most [`MAX_CONTACTS`]: the other party of each DM `user` is in, the
    /// users the store knows in each of `groups` (who sent to or read the group), and the
    /// account store's members of `groups`. `user` is not listed.
    pub async fn contacts(
        &self,
        user: &str,
        groups: &[String],
    ) -> Result<HashSet<String>, HistoryError> {
        let groups: Vec<&String> = groups
            .iter()
            .filter(|g| roost_proto::id::is_valid_id(g))
            .take(MAX_GROUPS)
            .collect();
        let owned: Vec<String> = groups.iter().map(|g| (*g).clone()).collect();
        let convs = group_convs(&owned);
        let mut sql = String::from(
            "SELECT dm_b AS u FROM history_conversations WHERE dm_a = $1 \
             UNION SELECT dm_a AS u FROM history_conversations WHERE dm_b = $1",
        );
        if !convs.is_empty() {
            sql.push_str(" UNION SELECT user_id AS u FROM history_participants WHERE conv IN (");
            sql.push_str(&numbered(convs.len(), 3));
            sql.push_str(") UNION SELECT user_id AS u FROM accounts_members WHERE group_id IN (");
            sql.push_str(&numbered(groups.len(), 3 + convs.len()));
            sql.push(')');
        }
        sql.push_str(" LIMIT $2");
        let mut q = sqlx::query(&sql)
            .persistent(false)
            .bind(user)
            .bind(MAX_CONTACTS as i64 + 1);
        for c in &convs {
            q = q.bind(c.as_str());
        }
        for g in &groups {
            q = q.bind(g.as_str());
        }
        let mut out = HashSet::new();
        for row in q.fetch_all(&self.inner.pool).await? {
            let other: Option<String> = row.try_get(0)?;
            if let Some(other) = other.filter(|o| o != user) {
                out.insert(other);
            }
        }
        Ok(out)
    }

    /// The ids of the disabled accounts, at most [`MAX_DISABLED`].
    pub async fn disabled_users(&self) -> Result<HashSet<String>, AccountError> {
        let rows = sqlx::query("SELECT id FROM accounts_users WHERE disabled <> 0 LIMIT $1")
            .bind(MAX_DISABLED as i64)
            .fetch_all(&self.inner.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?)
    }

    /// Which of `ids` are accounts.
    pub async fn existing_users(&self, ids: &[String]) -> Result<HashSet<String>, AccountError> {
        let mut out = HashSet::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id FROM accounts_users WHERE id IN ({})",
                numbered(chunk.len(), 1)
            );
            let mut q = sqlx::query(&sql).persistent(false);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for row in q.fetch_all(&self.inner.pool).await? {
                out.insert(row.try_get::<String, _>(0)?);
            }
        }
        Ok(out)
    }
}
