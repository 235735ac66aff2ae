//! Writing: storing a batch of messages in one transaction, with the gapless
//! per-conversation `seq`s and the global `gid`s that sync cursors rely on.
//!
//! [`Store::store_batch`] is a sequence of steps, each a function below, all in
//! one transaction that first takes the `history_head` row lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use sqlx::any::Any;
use sqlx::{Row, Transaction};

use super::sql::{placeholders, ROWS_PER_STATEMENT};
use super::Store;
use crate::{Conv, HistoryError, NewMessage, Stored};
use roost_proto::clock::now_ms;

type Tx = Transaction<'static, Any>;
/// `(from, id)` -> `(conv, seq, ts)` of a stored message.
type Known = HashMap<(String, String), (String, i64, i64)>;

impl Store {
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

        let (first_gid, ts) = allocate(&mut tx, batch.len()).await?;
        let mut known = lookup_known(&mut tx, batch).await?;
        let mut convs = load_last_seqs(&mut tx, batch, &conv_ids, &known).await?;
        let (out, rows, senders) = number(batch, &conv_ids, first_gid, ts, &mut known, &mut convs);
        if !rows.is_empty() {
            insert_messages(&mut tx, &rows, ts).await?;
            upsert_conversations(&mut tx, &convs, ts).await?;
            upsert_senders(&mut tx, senders).await?;
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
}

/// Step 1: serialises with every other writer; allocates the batch's gids
/// (returns the first) and its ts.
async fn allocate(tx: &mut Tx, len: usize) -> Result<(i64, i64), HistoryError> {
    let n = len as i64;
    let head = sqlx::query(
        "UPDATE history_head SET last_gid = last_gid + $1, \
         last_ts = CASE WHEN last_ts > $2 THEN last_ts ELSE $2 END \
         WHERE id = 1 RETURNING last_gid, last_ts",
    )
    .bind(n)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?;
    let first_gid = head.try_get::<i64, _>(0)? - n + 1;
    // Never below the previous batch's: ts is non-decreasing in gid order,
    // which age retention relies on.
    let ts: i64 = head.try_get(1)?;
    Ok((first_gid, ts))
}

/// Step 2: which `(from, id)` of the batch are already stored.
async fn lookup_known(tx: &mut Tx, batch: &[NewMessage]) -> Result<Known, HistoryError> {
    let mut keys: Vec<(&str, &str)> = Vec::with_capacity(batch.len());
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(batch.len());
    for m in batch {
        let key = (m.from.as_str(), m.id.as_str());
        if seen.insert(key) {
            keys.push(key);
        }
    }
    let mut known = Known::new();
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
        for row in q.fetch_all(&mut **tx).await? {
            known.insert(
                (row.try_get(0)?, row.try_get(1)?),
                (row.try_get(2)?, row.try_get(3)?, row.try_get(4)?),
            );
        }
    }
    Ok(known)
}

/// Step 3: the current last seq of each conversation the batch adds to.
async fn load_last_seqs<'b>(
    tx: &mut Tx,
    batch: &'b [NewMessage],
    conv_ids: &'b [String],
    known: &Known,
) -> Result<BTreeMap<&'b str, ConvState>, HistoryError> {
    let mut convs: BTreeMap<&str, ConvState> = BTreeMap::new();
    for (m, conv) in batch.iter().zip(conv_ids) {
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
            super::sql::numbered(chunk.len(), 1)
        );
        let mut q = sqlx::query(&sql);
        for c in chunk {
            q = q.bind(*c);
        }
        for row in q.fetch_all(&mut **tx).await? {
            let conv: String = row.try_get(0)?;
            if let Some(state) = convs.get_mut(conv.as_str()) {
                state.last_seq = row.try_get(1)?;
            }
        }
    }
    Ok(convs)
}

/// What [`number`] decides: one `Stored` per input message, the rows to insert,
/// and `(conv, sender)` -> the sender's newest seq.
type Numbered<'b> = (
    Vec<Stored>,
    Vec<NewRow<'b>>,
    BTreeMap<(&'b str, &'b str), i64>,
);

/// Step 4: numbers the new messages (no I/O); duplicates get their original place.
fn number<'b>(
    batch: &'b [NewMessage],
    conv_ids: &'b [String],
    mut next_gid: i64,
    ts: i64,
    known: &mut Known,
    convs: &mut BTreeMap<&'b str, ConvState>,
) -> Numbered<'b> {
    let mut out = Vec::with_capacity(batch.len());
    let mut rows: Vec<NewRow<'_>> = Vec::with_capacity(batch.len());
    // (conv, sender) -> the sender's newest seq: what you sent, you have read.
    let mut senders: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for (m, conv) in batch.iter().zip(conv_ids) {
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
    (out, rows, senders)
}

/// Step 5: the messages.
async fn insert_messages(tx: &mut Tx, rows: &[NewRow<'_>], ts: i64) -> Result<(), HistoryError> {
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
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Step 6: the conversations' counters.
async fn upsert_conversations(
    tx: &mut Tx,
    convs: &BTreeMap<&str, ConvState>,
    ts: i64,
) -> Result<(), HistoryError> {
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
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Step 7: senders become participants (for group receipts), having read what they sent.
async fn upsert_senders(
    tx: &mut Tx,
    senders: BTreeMap<(&str, &str), i64>,
) -> Result<(), HistoryError> {
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
        q.execute(&mut **tx).await?;
    }
    Ok(())
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
