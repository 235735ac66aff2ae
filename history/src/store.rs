//! The store: one code path over sqlx's `Any` driver, portable SQL with `$n`
//! placeholders (both PostgreSQL and SQLite accept them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::Row;
use tokio::sync::{Mutex, MutexGuard};

use crate::{
    Conv, HistoryError, Message, NewMessage, Page, Retention, Stored, Summary, SyncMessage,
    SyncPage, MAX_HISTORY_LIMIT, MAX_SYNC_LIMIT,
};

/// Rows per multi-row statement (keeps bind parameters well under both
/// databases' limits: 7 columns x 500 = 3,500).
const ROWS_PER_STATEMENT: usize = 500;
/// Messages deleted per retention statement, so a big purge never holds
/// SQLite's write lock for long.
const RETENTION_CHUNK: i64 = 1000;
/// How long a SQLite connection waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
const CURSOR_PREFIX: &str = "v1:";

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The history store. Cheap to clone (a connection pool inside); several
/// `Store`s, in one process or several, may share one PostgreSQL database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer at a time: writers of this process queue here
    /// instead of spinning on SQLITE_BUSY (other processes still wait through
    /// `busy_timeout`). `None` on PostgreSQL.
    sqlite_writer: Option<Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects and applies the schema migrations.
    ///
    /// - `postgres://user@host:port/db` (or `postgresql://`);
    /// - `sqlite://path/history.db` or `sqlite:path` (file and parent folder
    ///   created if missing; WAL journal; writers wait up to 10 s for another
    ///   process's lock);
    /// - `sqlite::memory:` (one connection, gone when the store is dropped).
    pub async fn connect(database_url: &str) -> Result<Store, HistoryError> {
        sqlx::any::install_default_drivers();
        let backend = if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            Backend::Postgres
        } else if database_url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            let scheme = database_url.split(':').next().unwrap_or_default();
            return Err(HistoryError::UnsupportedUrl(format!("{scheme}:...")));
        };

        let pool = match backend {
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(database_url)
                    .await?
            }
            Backend::Sqlite => {
                let (url, in_memory) = sqlite_url(database_url)?;
                let options = AnyPoolOptions::new()
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            sqlx::query(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    });
                let options = if in_memory {
                    // Every connection to `:memory:` is its own database: keep exactly one.
                    options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    options.max_connections(4)
                };
                let pool = options.connect(&url).await?;
                if !in_memory {
                    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                        .fetch_one(&pool)
                        .await?;
                    if !mode.eq_ignore_ascii_case("wal") {
                        let _: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                            .fetch_one(&pool)
                            .await?;
                    }
                }
                pool
            }
        };

        let mut migrator = Migrator::new(EmbeddedMigrations).await?;
        // Other software may keep its own sqlx migrations in the same database.
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        tracing::debug!(?backend, "history store connected, schema up to date");

        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                sqlite_writer: (backend == Backend::Sqlite).then(|| Mutex::new(())),
            }),
        })
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Closes the connection pool (waits for connections in use to come back).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), HistoryError> {
        sqlx::query("SELECT 1").execute(&self.inner.pool).await?;
        Ok(())
    }

    async fn writer(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.inner.sqlite_writer {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    /// Stores a batch in one transaction: all or nothing. Returns one [`Stored`]
    /// per input message, in input order.
    ///
    /// A message whose `(from, id)` is already stored (earlier batch, retry,
    /// another worker, or earlier in this same batch) is not stored again and
    /// consumes no seq: its `Stored` carries the original conv, seq and ts with
    /// `duplicate: true`.
    ///
    /// Any invalid message refuses the whole batch ([`HistoryError::InvalidMessage`]);
    /// check each with [`NewMessage::validate`] first. A transient error (see
    /// [`HistoryError::is_transient`]) committed nothing: retry the same batch.
    ///
    /// # seq and gid allocation
    ///
    /// The transaction's first statement increments the single row of
    /// `history_head` by the batch size, which gives the batch its range of
    /// `gid`s (global sync positions) and its `ts`. On PostgreSQL that UPDATE
    /// takes the row's lock and keeps it until COMMIT, so write batches from every
    /// `Store`, task and process are serialised: a batch allocates gids only after
    /// the previous batch's commit is visible, hence gids are allocated in commit
    /// order. That is what makes sync cursors safe: when a reader sees gid `g`, every
    /// message with a gid below `g` is already committed (or its batch rolled
    /// back, and then the gids were never used), so "everything after my cursor"
    /// never skips a message that commits later. A sequence (`nextval`) would
    /// not give this: two transactions can commit in the opposite order of their
    /// sequence values, and a reader between the two commits would move its
    /// cursor past the one not yet visible.
    ///
    /// Because all writers are serialised, everything that follows in the
    /// transaction is race-free under READ COMMITTED (each later statement sees
    /// all earlier commits): the `(from, id)` duplicate check, and each
    /// conversation's `last_seq`, from which the batch's seqs are numbered
    /// `last_seq + 1, + 2, ...` (gapless; stored back in the same transaction).
    /// The unique constraints on `(conv, seq)` and `(sender, msg_id)` stay as a
    /// safety net; if one ever fires, the error is transient and a retry
    /// reports duplicates. SQLite has a single writer anyway.
    ///
    /// The cost is one writer at a time per database; batching amortises it
    /// (each batch is a handful of statements, whatever its size).
    pub async fn store_batch(&self, batch: &[NewMessage]) -> Result<Vec<Stored>, HistoryError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        for (index, m) in batch.iter().enumerate() {
            m.validate()
                .map_err(|reason| HistoryError::InvalidMessage { index, reason })?;
        }
        let started = Instant::now();
        let conv_ids: Vec<String> = batch.iter().map(|m| m.conv.to_string()).collect();

        let _writer = self.writer().await;
        let mut tx = self.inner.pool.begin().await?;

        // 1. Serialise with every other writer; allocate gids and the batch ts.
        let n = batch.len() as i64;
        let head = sqlx::query(
            "UPDATE history_head SET last_gid = last_gid + $1, \
             last_ts = CASE WHEN last_ts > $2 THEN last_ts ELSE $2 END \
             WHERE id = 1 RETURNING last_gid, last_ts",
        )
        .bind(n)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let mut next_gid = head.try_get::<i64, _>(0)? - n + 1;
        // Never below the previous batch's: ts is non-decreasing in gid order,
        // which age retention relies on.
        let ts: i64 = head.try_get(1)?;

        // 2. Which (from, id) are already stored.
        let mut keys: Vec<(&str, &str)> = Vec::with_capacity(batch.len());
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(batch.len());
        for m in batch {
            let key = (m.from.as_str(), m.id.as_str());
            if seen.insert(key) {
                keys.push(key);
            }
        }
        // (from, id) -> (conv, seq, ts)
        let mut known: HashMap<(String, String), (String, i64, i64)> = HashMap::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT sender, msg_id, conv, seq, ts FROM history_messages \
                 WHERE (sender, msg_id) IN (VALUES {})",
                placeholders(chunk.len(), 2, 1)
            );
            let mut q = sqlx::query(&sql);
            for (from, id) in chunk {
                q = q.bind(*from).bind(*id);
            }
            for row in q.fetch_all(&mut *tx).await? {
                known.insert(
                    (row.try_get(0)?, row.try_get(1)?),
                    (row.try_get(2)?, row.try_get(3)?, row.try_get(4)?),
                );
            }
        }

        // 3. The conversations' current last seq.
        let mut convs: BTreeMap<&str, ConvState> = BTreeMap::new();
        for (m, conv) in batch.iter().zip(&conv_ids) {
            if !known.contains_key(&(m.from.clone(), m.id.clone())) {
                convs
                    .entry(conv.as_str())
                    .or_insert_with(|| ConvState::new(&m.conv));
            }
        }
        let conv_list: Vec<&str> = convs.keys().copied().collect();
        for chunk in conv_list.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT conv, last_seq FROM history_conversations WHERE conv IN ({})",
                numbered(chunk.len(), 1)
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q.bind(*c);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let conv: String = row.try_get(0)?;
                if let Some(state) = convs.get_mut(conv.as_str()) {
                    state.last_seq = row.try_get(1)?;
                }
            }
        }

        // 4. Number the new messages.
        let mut out = Vec::with_capacity(batch.len());
        let mut rows: Vec<NewRow<'_>> = Vec::with_capacity(batch.len());
        // (conv, sender) -> the sender's newest seq: what you sent, you have read.
        let mut senders: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for (m, conv) in batch.iter().zip(&conv_ids) {
            let key = (m.from.clone(), m.id.clone());
            if let Some((orig_conv, seq, orig_ts)) = known.get(&key) {
                out.push(Stored {
                    conv: orig_conv.clone(),
                    from: m.from.clone(),
                    id: m.id.clone(),
                    seq: *seq,
                    ts: *orig_ts,
                    duplicate: true,
                });
                continue;
            }
            let state = convs
                .get_mut(conv.as_str())
                .expect("conversation of a new message");
            state.last_seq += 1;
            state.last_gid = next_gid;
            let seq = state.last_seq;
            rows.push(NewRow {
                gid: next_gid,
                conv,
                seq,
                msg: m,
            });
            next_gid += 1;
            senders.insert((conv.as_str(), m.from.as_str()), seq);
            known.insert(key, (conv.clone(), seq, ts));
            out.push(Stored {
                conv: conv.clone(),
                from: m.from.clone(),
                id: m.id.clone(),
                seq,
                ts,
                duplicate: false,
            });
        }

        if !rows.is_empty() {
            // 5. The messages.
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO history_messages (gid, conv, seq, sender, msg_id, ts, payload) VALUES {}",
                    placeholders(chunk.len(), 7, 1)
                );
                let mut q = sqlx::query(&sql);
                for r in chunk {
                    q = q
                        .bind(r.gid)
                        .bind(r.conv.as_str())
                        .bind(r.seq)
                        .bind(r.msg.from.as_str())
                        .bind(r.msg.id.as_str())
                        .bind(ts)
                        .bind(r.msg.payload.as_str());
                }
                q.execute(&mut *tx).await?;
            }

            // 6. The conversations' counters.
            let touched: Vec<(&str, &ConvState)> = convs
                .iter()
                .filter(|(_, s)| s.last_gid > 0)
                .map(|(c, s)| (*c, s))
                .collect();
            for chunk in touched.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO history_conversations (conv, dm_a, dm_b, last_seq, last_gid, last_ts) \
                     VALUES {} ON CONFLICT (conv) DO UPDATE SET last_seq = excluded.last_seq, \
                     last_gid = excluded.last_gid, last_ts = excluded.last_ts",
                    placeholders(chunk.len(), 6, 1)
                );
                let mut q = sqlx::query(&sql);
                for (conv, s) in chunk {
                    q = q
                        .bind(*conv)
                        .bind(s.dm_a.as_deref())
                        .bind(s.dm_b.as_deref())
                        .bind(s.last_seq)
                        .bind(s.last_gid)
                        .bind(ts);
                }
                q.execute(&mut *tx).await?;
            }

            // 7. Senders become participants (for group receipts), having read what they sent.
            let pairs: Vec<((&str, &str), i64)> = senders.into_iter().collect();
            for chunk in pairs.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO history_participants (conv, user_id, read_seq) VALUES {} \
                     ON CONFLICT (conv, user_id) DO UPDATE SET read_seq = \
                     CASE WHEN excluded.read_seq > history_participants.read_seq \
                     THEN excluded.read_seq ELSE history_participants.read_seq END",
                    placeholders(chunk.len(), 3, 1)
                );
                let mut q = sqlx::query(&sql);
                for ((conv, user), seq) in chunk {
                    q = q.bind(*conv).bind(*user).bind(*seq);
                }
                q.execute(&mut *tx).await?;
            }
        }

        tx.commit().await?;
        tracing::debug!(
            messages = batch.len(),
            stored = rows.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "history batch committed"
        );
        Ok(out)
    }

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
        let more = rows.len() as i64 > limit;
        let mut messages = rows
            .iter()
            .take(limit as usize)
            .map(|r| message_from_row(r, 0))
            .collect::<Result<Vec<_>, _>>()?;
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
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
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
    pub async fn conversations(
        &self,
        user: &str,
        groups: &[String],
    ) -> Result<Vec<Summary>, HistoryError> {
        let group_convs = group_convs(groups);
        let mut sql = String::from(
            "SELECT m.seq, m.msg_id, m.sender, m.ts, m.payload, c.conv, c.last_seq, \
             COALESCE(p.read_seq, 0) AS read_seq \
             FROM history_conversations c \
             LEFT JOIN history_participants p ON p.conv = c.conv AND p.user_id = $1 \
             LEFT JOIN history_messages m ON m.conv = c.conv AND m.seq = c.last_seq \
             WHERE c.dm_a = $1 OR c.dm_b = $1",
        );
        if !group_convs.is_empty() {
            sql.push_str(" OR c.conv IN (");
            sql.push_str(&numbered(group_convs.len(), 2));
            sql.push(')');
        }
        sql.push_str(" ORDER BY c.last_gid DESC");
        let mut q = sqlx::query(&sql).bind(user);
        for g in &group_convs {
            q = q.bind(g.as_str());
        }
        let rows = q.fetch_all(&self.inner.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let last_seq: i64 = row.try_get(6)?;
            let read_seq: i64 = row.try_get(7)?;
            let last = match row.try_get::<Option<i64>, _>(0)? {
                Some(_) => Some(message_from_row(row, 0)?),
                None => None,
            };
            out.push(Summary {
                conv: row.try_get(5)?,
                last_seq,
                read_seq,
                unread: (last_seq - read_seq).max(0),
                last,
            });
        }
        Ok(out)
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

/// Per-conversation state while numbering a batch.
struct ConvState {
    dm_a: Option<String>,
    dm_b: Option<String>,
    last_seq: i64,
    /// gid of the batch's last message in this conversation; 0 = none.
    last_gid: i64,
}

impl ConvState {
    fn new(conv: &Conv) -> ConvState {
        let (dm_a, dm_b) = match conv {
            Conv::Dm { a, b } => (Some(a.clone()), Some(b.clone())),
            Conv::Group(_) => (None, None),
        };
        ConvState {
            dm_a,
            dm_b,
            last_seq: 0,
            last_gid: 0,
        }
    }
}

struct NewRow<'a> {
    gid: i64,
    conv: &'a String,
    seq: i64,
    msg: &'a NewMessage,
}

fn check_conv(conv: &Conv) -> Result<(), HistoryError> {
    if conv.is_valid() {
        Ok(())
    } else {
        Err(HistoryError::InvalidConversation(conv.to_string()))
    }
}

/// `grp:{g}` for each distinct valid group id.
fn group_convs(groups: &[String]) -> Vec<String> {
    let mut out: Vec<String> = groups
        .iter()
        .filter(|g| roost_auth::id::is_valid_id(g))
        .map(|g| format!("grp:{g}"))
        .collect();
    out.sort();
    out.dedup();
    out
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

fn parse_cursor(cursor: &str) -> Result<i64, HistoryError> {
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| HistoryError::InvalidCursor(cursor.chars().take(80).collect()))
}

/// `($s, $s+1), ($s+2, $s+3), ...`: `rows` tuples of `cols` numbered placeholders.
fn placeholders(rows: usize, cols: usize, start: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    let mut n = start;
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&n.to_string());
            n += 1;
        }
        s.push(')');
    }
    s
}

/// `$s, $s+1, ...`: `count` numbered placeholders.
fn numbered(count: usize, start: usize) -> String {
    (start..start + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Splits a `sqlite:` URL into the URL to connect with (`mode=rwc` added so the
/// file is created) and whether it is in memory; creates the parent folder.
fn sqlite_url(url: &str) -> Result<(String, bool), HistoryError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let params: Vec<&str> = query.map(|q| q.split('&').collect()).unwrap_or_default();
    let in_memory = path.is_empty() || path == ":memory:" || params.contains(&"mode=memory");
    if in_memory {
        return Ok((url.to_owned(), true));
    }
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .map_err(|e| HistoryError::Database(sqlx::Error::Io(e)))?;
        }
    }
    let url = if params.iter().any(|p| p.starts_with("mode=")) {
        url.to_owned()
    } else if query.is_some() {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    Ok((url, false))
}

/// The schema, compiled in (no migrations folder needed at run time). Applied
/// migrations are checksummed: never edit one, add the next.
#[derive(Debug)]
struct EmbeddedMigrations;

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(vec![
                Migration::new(
                    20261125000001,
                    "history".into(),
                    MigrationType::Simple,
                    include_str!("../migrations/20261125000001_history.sql").into(),
                    false,
                ),
                Migration::new(
                    20261125000002,
                    "sync index".into(),
                    MigrationType::Simple,
                    include_str!("../migrations/20261125000002_sync_index.sql").into(),
                    false,
                ),
            ])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists() {
        assert_eq!(placeholders(2, 2, 1), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(1, 3, 4), "($4, $5, $6)");
        assert_eq!(numbered(3, 2), "$2, $3, $4");
    }

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

    #[test]
    fn sqlite_urls() {
        let (u, mem) = sqlite_url("sqlite::memory:").unwrap();
        assert!(mem);
        assert_eq!(u, "sqlite::memory:");
        let dir = std::env::temp_dir().join(format!("roost-hist-url-{}", std::process::id()));
        let file = dir.join("sub/history.db");
        let (u, mem) = sqlite_url(&format!("sqlite://{}", file.display())).unwrap();
        assert!(!mem);
        assert!(u.ends_with("?mode=rwc"));
        assert!(file.parent().unwrap().is_dir());
        let (u, _) = sqlite_url(&format!("sqlite://{}?mode=ro", file.display())).unwrap();
        assert!(u.ends_with("?mode=ro"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
