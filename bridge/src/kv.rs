//! The cluster's small JetStream KV buckets (heartbeats, presence, wills) and their keys.
//!
//! Why here: async-nats' own bucket helper reads account fields that nats-server 2.9
//! (Debian's) does not send, so roost creates each bucket's stream itself, with the
//! settings a NATS KV bucket has. Keys may only hold `[-/_=.a-zA-Z0-9]`, and `.` splits
//! them into tokens, so user names, client ids and node ids are written with [`key`].
//! Every read before a compare-and-set goes through [`latest`].

use std::time::Duration;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;

use crate::nats::{nats_error, BridgeError};

/// Opens bucket `{names}_{suffix}`, creating its stream when missing. `max_age` zero:
/// entries never expire.
pub(crate) async fn bucket(
    js: &jetstream::Context,
    names: &str,
    suffix: &str,
    description: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, BridgeError> {
    let bucket = format!("{names}_{suffix}");
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| nats_error("creating a KV bucket")(e.into()))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| nats_error("opening a KV bucket")(e.into()))
}

/// The latest entry of a key, as the bucket stream's leader holds it.
pub(crate) struct Latest {
    /// The entry's revision: what a compare-and-set expects.
    pub(crate) revision: u64,
    /// Its value; `None` when the key was deleted or purged.
    pub(crate) value: Option<Bytes>,
}

/// Reads the latest entry of `key` (a [`key`] token or tokens) from the stream's leader;
/// `None` when the key never had one. `what` names the read in an error.
///
/// Why not `kv::Store::entry`: on a bucket that allows direct gets (every NATS KV bucket
/// does) it takes the answer of whichever replica answers first, and a follower may not
/// have applied the last acknowledged write yet. Each read here precedes a
/// compare-and-set, and a stale read that already shows the change wanted writes nothing:
/// the change is lost (seen: a takeover back to a node showed its user offline,
/// docs/cluster.md "JetStream objects"). The leader answers only with what it applied.
pub(crate) async fn latest(
    bucket: &kv::Store,
    key: &str,
    what: &'static str,
) -> Result<Option<Latest>, BridgeError> {
    let subject = format!("{}{key}", bucket.prefix);
    match bucket
        .stream
        .get_last_raw_message_by_subject(&subject)
        .await
    {
        Ok(message) => {
            // A put has no operation header; a delete or purge says so (NATS 2.11 may
            // leave a marker instead).
            let removed = message.headers.get("KV-Operation").is_some()
                || message.headers.get("Nats-Marker-Reason").is_some();
            Ok(Some(Latest {
                revision: message.sequence,
                value: (!removed).then_some(message.payload),
            }))
        }
        Err(error) if matches!(error.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
        Err(error) => Err(nats_error(what)(error.into())),
    }
}

/// `text` as one KV key token: ASCII letters, digits, `-` and `_` as they are, every other
/// byte `=XX` (upper-case hex); the empty string is `=`. Reversible, never empty.
pub(crate) fn key(text: &str) -> String {
    if text.is_empty() {
        return "=".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_only_allowed_characters_and_stay_distinct() {
        let odd = [
            "alice", "a.b", "a/b", "a b", "a=b", "Zoë", "", "=", "a*>", "a-b_c",
        ];
        let keys: Vec<String> = odd.iter().map(|s| key(s)).collect();
        for k in &keys {
            assert!(!k.is_empty());
            assert!(
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{k}"
            );
        }
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
        assert_eq!(key("alice"), "alice");
        assert_eq!(key("a.b"), "a=2Eb");
    }
}
