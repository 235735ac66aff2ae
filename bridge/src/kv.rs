//! The cluster's small JetStream KV buckets (heartbeats, presence, wills) and their keys.
//!
//! Why here: async-nats' own bucket helper reads account fields that nats-server 2.9
//! (Debian's) does not send, so roost creates each bucket's stream itself, with the
//! settings a NATS KV bucket has. Keys may only hold `[-/_=.a-zA-Z0-9]`, and `.` splits
//! them into tokens, so user names, client ids and node ids are written with [`key`].
//!
//! Reads go to the stream's leader (no "direct get"): every read here comes before a
//! compare-and-set, and a direct get may be answered by a follower that has not applied
//! the last acknowledged write yet. A stale read that already shows the change wanted
//! writes nothing, and the change is lost (a user shown offline while connected).

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

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
    let stream = js
        .get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            description: Some(description.into()),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: false,
            discard: stream::DiscardPolicy::New,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error("creating a KV bucket")(e.into()))?;
    // A bucket made by an earlier release allows direct gets: changed in place.
    let config = &stream.cached_info().config;
    if config.allow_direct {
        let config = stream::Config {
            allow_direct: false,
            ..config.clone()
        };
        js.update_stream(&config)
            .await
            .map_err(|e| nats_error("updating a KV bucket")(e.into()))?;
    }
    js.get_key_value(bucket)
        .await
        .map_err(|e| nats_error("opening a KV bucket")(e.into()))
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
