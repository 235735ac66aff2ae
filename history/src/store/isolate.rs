//! Storing a batch so that one bad message never stalls the others.
//!
//! [`Store::store_batch`] is all or nothing, which is right for an outage (retry the whole
//! batch later) and wrong for a message the database refuses as data: a chat `id` with a
//! NUL passes every check before the database, PostgreSQL refuses it (22021), and a batch
//! retried as a whole would be refused forever, with nothing acked for anyone. So on such
//! a refusal the batch is split in halves, each stored on its own, down to the single
//! message that is refused; everything else is stored, in input order.

use std::borrow::Cow;

use super::Store;
use crate::{HistoryError, NewMessage, Stored};

impl Store {
    /// Stores `batch`, setting apart each message that cannot be stored: one that fails
    /// [`NewMessage::validate`] (refused with [`HistoryError::InvalidMessage`]) or whose
    /// values the database refuses ([`HistoryError::is_refused_data`]). Returns one outcome
    /// per input message, in input order; the others are stored exactly as
    /// [`Store::store_batch`] stores them.
    ///
    /// `Err` is any other error (an outage, see [`HistoryError::is_transient`]): part of the
    /// batch may be committed by then, and retrying the same batch is safe (what is stored
    /// comes back as a duplicate, with its original seq).
    pub async fn store_each(
        &self,
        batch: &[NewMessage],
    ) -> Result<Vec<Result<Stored, HistoryError>>, HistoryError> {
        let mut out: Vec<Option<Result<Stored, HistoryError>>> =
            (0..batch.len()).map(|_| None).collect();
        let mut valid = Vec::with_capacity(batch.len());
        for (index, m) in batch.iter().enumerate() {
            match m.validate() {
                Ok(()) => valid.push(index),
                Err(reason) => {
                    out[index] = Some(Err(HistoryError::InvalidMessage { index, reason }))
                }
            }
        }
        // Ranges of `valid` still to store, the next one last (stored in input order).
        let mut pending = vec![(0, valid.len())];
        while let Some((start, end)) = pending.pop() {
            if start == end {
                continue;
            }
            let indexes = &valid[start..end];
            let part: Cow<'_, [NewMessage]> = if indexes.len() == batch.len() {
                Cow::Borrowed(batch)
            } else {
                Cow::Owned(indexes.iter().map(|&i| batch[i].clone()).collect())
            };
            match self.store_batch(&part).await {
                Ok(stored) => {
                    for (&i, s) in indexes.iter().zip(stored) {
                        out[i] = Some(Ok(s));
                    }
                }
                Err(e) if e.is_refused_data() && indexes.len() == 1 => {
                    out[indexes[0]] = Some(Err(e));
                }
                Err(e) if e.is_refused_data() => {
                    let mid = start + (end - start) / 2;
                    pending.push((mid, end));
                    pending.push((start, mid));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every message has an outcome"))
            .collect())
    }
}
