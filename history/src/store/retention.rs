//! Retention: deleting messages past the configured age or per-conversation
//! count, in chunks so a big purge never holds SQLite's write lock for long.

use sqlx::Row;

use super::Store;
use crate::{HistoryError, Retention};
use roost_proto::clock::now_ms;

/// Messages deleted per retention statement, so a big purge never holds
/// SQLite's write lock for long.
const RETENTION_CHUNK: i64 = 1000;

impl Store {
    /// Deletes messages older than `max_age`, and all but the newest
    /// `max_messages` of each conversation. Returns how many were deleted.
    ///
    /// Seqs are never reused (each conversation keeps its `last_seq`). Note that
    /// `(from, id)` deduplication covers stored messages only: a retry of a
    /// message that retention already deleted would be stored again.
    pub async fn apply_retention(&self, retention: &Retention) -> Result<u64, HistoryError> {
        let mut deleted = 0u64;
        if let Some(max_age) = retention.max_age {
            let cutoff =
                now_ms().saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
            // ts is non-decreasing in gid order (see store_batch), so the old
            // messages are a prefix of the log: walk it from the start, one
            // chunk at a time, without scanning the rest of the table.
            loop {
                let rows =
                    sqlx::query("SELECT gid, ts FROM history_messages ORDER BY gid LIMIT $1")
                        .bind(RETENTION_CHUNK)
                        .fetch_all(&self.inner.pool)
                        .await?;
                let mut boundary = None;
                for row in &rows {
                    if row.try_get::<i64, _>(1)? < cutoff {
                        boundary = Some(row.try_get::<i64, _>(0)?);
                    } else {
                        break;
                    }
                }
                let Some(boundary) = boundary else { break };
                let _writer = self.writer().await;
                let n = sqlx::query("DELETE FROM history_messages WHERE gid <= $1 AND ts < $2")
                    .bind(boundary)
                    .bind(cutoff)
                    .execute(&self.inner.pool)
                    .await?
                    .rows_affected();
                deleted += n;
                if n == 0 || (rows.len() as i64) < RETENTION_CHUNK {
                    break;
                }
            }
        }
        if let Some(max_messages) = retention.max_messages {
            let keep = i64::try_from(max_messages).unwrap_or(i64::MAX);
            let convs = sqlx::query(
                "SELECT conv, last_seq FROM history_conversations WHERE last_seq - min_seq + 1 > $1",
            )
            .bind(keep)
            .fetch_all(&self.inner.pool)
            .await?;
            for row in &convs {
                let conv: String = row.try_get(0)?;
                let last_seq: i64 = row.try_get(1)?;
                let keep_from = last_seq - keep + 1;
                let _writer = self.writer().await;
                let mut tx = self.inner.pool.begin().await?;
                deleted += sqlx::query("DELETE FROM history_messages WHERE conv = $1 AND seq < $2")
                    .bind(&conv)
                    .bind(keep_from)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("UPDATE history_conversations SET min_seq = $2 WHERE conv = $1 AND min_seq < $2")
                    .bind(&conv)
                    .bind(keep_from)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "history retention deleted messages");
        }
        Ok(deleted)
    }
}
