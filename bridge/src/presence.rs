//! Presence across nodes and the wills of a dead node's clients, kept in two KV buckets.
//!
//! Why a bucket: a user with devices on two nodes must stay `online` until the last device
//! anywhere leaves, and nodes leave, join and die concurrently. Bucket `{P}_presence` holds
//! one entry per user, `{"user", "nodes": [...], "ts"}`: the nodes where the user has a
//! device now, and when the status last changed. Every change is a compare-and-set on the
//! entry's revision, so changes of one user are serialised in one place and exactly one
//! writer sees each flip between "no node" and "some node". The status messages are not
//! sent by the writer: every node watches the bucket and publishes, to its own router only,
//! `online` / `offline` when a user's entry flips ([`Mirror::seen`]). All nodes see one
//! sequence of entries, so they publish the same statuses in the same order, and one
//! device leaving while another stays elsewhere changes nothing visible.
//!
//! When a node dies, one survivor (`members`) removes it from the entries that name it; a
//! second removal finds it gone. A user who meanwhile connected elsewhere is still named
//! by another node, so never goes offline. Bucket `{P}_wills` holds the will of each
//! connected client that has one, keyed `{node}.{client id}`; the owning node deletes it
//! when the connection ends (it publishes the will itself, or not), and the survivor
//! claims a dead node's wills by deleting each at the revision it read, so a will is
//! claimed once. (nats-server before 2.10 may accept two compare-and-sets made at the same
//! instant, issue 4320: hence one claimer, and the self-repair of presence entries.)

use std::collections::{BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::kv::{key, latest, Latest};
use crate::nats::{nats_error, until_error, BridgeError, Nats};

/// How often one compare-and-set is tried against writers on other nodes before it is
/// left for the next round.
const CAS_TRIES: usize = 16;

/// One user's entry in the presence bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserNodes {
    pub(crate) user: String,
    /// The nodes where the user has a device now.
    pub(crate) nodes: BTreeSet<String>,
    /// When the user last went online or offline, unix ms.
    pub(crate) ts: u64,
}

impl UserNodes {
    fn new(user: &str) -> UserNodes {
        UserNodes {
            user: user.to_owned(),
            ..UserNodes::default()
        }
    }

    pub(crate) fn online(&self) -> bool {
        !self.nodes.is_empty()
    }

    /// This entry with a device of the user on `node` (`present`) or none; `None` when it
    /// says so already. `ts` moves to `now_ms` only when the status flips.
    pub(crate) fn with(&self, node: &str, present: bool, now_ms: u64) -> Option<UserNodes> {
        if self.nodes.contains(node) == present {
            return None;
        }
        let mut next = self.clone();
        if present {
            next.nodes.insert(node.to_owned());
        } else {
            next.nodes.remove(node);
        }
        if next.online() != self.online() {
            next.ts = now_ms;
        }
        Some(next)
    }
}

/// The presence bucket as this node last saw it.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    users: HashMap<String, UserNodes>,
}

impl Mirror {
    /// The bucket's newest entry of a user. True when the node's subscribers must hear of
    /// it: the user was not known here, or their status flipped.
    pub(crate) fn seen(&mut self, entry: UserNodes) -> bool {
        let changed = self
            .users
            .get(&entry.user)
            .is_none_or(|old| old.online() != entry.online());
        self.users.insert(entry.user.clone(), entry);
        changed
    }

    /// The users the bucket says have a device on `node`, in name order.
    pub(crate) fn users_on(&self, node: &str) -> Vec<String> {
        let mut users: Vec<String> = self
            .users
            .values()
            .filter(|e| e.nodes.contains(node))
            .map(|e| e.user.clone())
            .collect();
        users.sort();
        users
    }

    /// Whether the bucket last said `user` is online.
    pub(crate) fn online(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(UserNodes::online)
    }

    /// Whether the bucket last named a node other than `me` for `user`.
    pub(crate) fn online_elsewhere(&self, user: &str, me: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|e| e.nodes.iter().any(|n| n != me))
    }

    pub(crate) fn holds(&self, user: &str, node: &str) -> bool {
        self.users.get(user).is_some_and(|e| e.nodes.contains(node))
    }
}

/// A client's will, as a survivor publishes it when the client's node dies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// Whose will it is (a retained will counts against their retained topics).
    pub user: String,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
}

/// A will as stored in the bucket (binary parts in base64).
#[derive(Serialize, Deserialize)]
struct StoredWill {
    topic: String,
    payload: String,
    retain: bool,
    user: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    response_topic: Option<String>,
    #[serde(default)]
    correlation_data: Option<String>,
    #[serde(default)]
    user_properties: Vec<(String, String)>,
}

impl StoredWill {
    fn of(will: &Will) -> StoredWill {
        StoredWill {
            topic: will.topic.clone(),
            payload: BASE64.encode(&will.payload),
            retain: will.retain,
            user: will.user.clone(),
            content_type: will.content_type.clone(),
            response_topic: will.response_topic.clone(),
            correlation_data: will.correlation_data.as_ref().map(|d| BASE64.encode(d)),
            user_properties: will.user_properties.clone(),
        }
    }

    fn will(self) -> Option<Will> {
        let correlation_data = match self.correlation_data {
            Some(data) => Some(BASE64.decode(data).ok()?.into()),
            None => None,
        };
        Some(Will {
            topic: self.topic,
            payload: BASE64.decode(self.payload).ok()?.into(),
            retain: self.retain,
            user: self.user,
            content_type: self.content_type,
            response_topic: self.response_topic,
            correlation_data,
            user_properties: self.user_properties,
        })
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The two buckets.
pub(crate) struct Store {
    users: kv::Store,
    wills: kv::Store,
}

impl Store {
    pub(crate) async fn open(nats: &Nats) -> Result<Store, BridgeError> {
        Ok(Store {
            users: nats.bucket("presence", "roost presence per user").await?,
            wills: nats
                .bucket("wills", "roost wills of connected clients")
                .await?,
        })
    }

    /// Makes `user`'s entry say that they have a device on `node` (`present`) or not.
    /// Ok also when it said so already.
    pub(crate) async fn set(
        &self,
        user: &str,
        node: &str,
        present: bool,
    ) -> Result<(), BridgeError> {
        let k = key(user);
        for _ in 0..CAS_TRIES {
            let read = latest(&self.users, &k, "reading presence").await?;
            let revision = read.as_ref().map(|l| l.revision);
            let current = match read.and_then(|l| l.value) {
                Some(value) => serde_json::from_slice::<UserNodes>(&value)
                    .ok()
                    .filter(|c| c.user == user)
                    .unwrap_or_else(|| {
                        warn!(user, "presence entry damaged; written anew");
                        UserNodes::new(user)
                    }),
                None => UserNodes::new(user),
            };
            let Some(next) = current.with(node, present, now_ms()) else {
                return Ok(());
            };
            let value: Bytes = serde_json::to_vec(&next).unwrap_or_default().into();
            let written = match revision {
                Some(revision) => self.users.update(&k, value, revision).await.is_ok(),
                None => self.users.create(&k, value).await.is_ok(),
            };
            if written {
                return Ok(());
            }
            // Another node changed the entry in between (or the write failed): read again.
        }
        Err(BridgeError::Nats {
            what: "updating presence",
            source: format!("{user}: entry kept changing or could not be written").into(),
        })
    }

    /// Every user's entry, the newest of each first, then each change as it happens.
    pub(crate) async fn watch(
        &self,
    ) -> Result<impl futures_util::Stream<Item = UserNodes>, BridgeError> {
        let watch = self
            .users
            .watch_with_history(">")
            .await
            .map_err(|e| nats_error("watching presence")(e.into()))?;
        Ok(
            until_error(watch, "presence watch").filter_map(|entry| async move {
                if entry.operation != kv::Operation::Put {
                    return None;
                }
                match serde_json::from_slice::<UserNodes>(&entry.value) {
                    Ok(user) => Some(user),
                    Err(error) => {
                        warn!(key = entry.key, "presence entry refused: {error}");
                        None
                    }
                }
            }),
        )
    }

    fn will_key(node: &str, client_id: &str) -> String {
        format!("{}.{}", key(node), key(client_id))
    }

    /// Stores the will of `client_id`, connected to `node`.
    pub(crate) async fn put_will(
        &self,
        node: &str,
        client_id: &str,
        will: &Will,
    ) -> Result<(), BridgeError> {
        let value = serde_json::to_vec(&StoredWill::of(will)).unwrap_or_default();
        self.wills
            .put(Self::will_key(node, client_id), value.into())
            .await
            .map(|_| ())
            .map_err(|e| nats_error("storing a will")(e.into()))
    }

    /// Forgets the will of `client_id` on `node`.
    pub(crate) async fn remove_will(&self, node: &str, client_id: &str) -> Result<(), BridgeError> {
        self.wills
            .delete(Self::will_key(node, client_id))
            .await
            .map_err(|e| nats_error("removing a will")(e.into()))
    }

    /// Takes the wills of `node`'s clients out of the bucket. Each will is returned to
    /// exactly one caller in the cluster: the one whose delete, at the revision it read,
    /// succeeds.
    pub(crate) async fn claim_wills(&self, node: &str) -> Result<Vec<Will>, BridgeError> {
        let prefix = format!("{}.", key(node));
        let mut keys = self
            .wills
            .keys()
            .await
            .map_err(|e| nats_error("listing wills")(e.into()))?;
        let mut mine = Vec::new();
        while let Some(k) = keys.next().await {
            match k {
                Ok(k) if k.starts_with(&prefix) => mine.push(k),
                Ok(_) => {}
                Err(error) => return Err(nats_error("listing wills")(error.into())),
            }
        }
        let mut claimed = Vec::new();
        for k in mine {
            let Some(Latest {
                revision,
                value: Some(value),
            }) = latest(&self.wills, &k, "reading a will").await?
            else {
                continue;
            };
            if self
                .wills
                .delete_expect_revision(&k, Some(revision))
                .await
                .is_err()
            {
                continue; // claimed already, or the owner is back
            }
            match serde_json::from_slice::<StoredWill>(&value)
                .ok()
                .and_then(StoredWill::will)
            {
                Some(will) => claimed.push(will),
                None => warn!(key = k, "stored will damaged; not published"),
            }
        }
        Ok(claimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str, nodes: &[&str], ts: u64) -> UserNodes {
        UserNodes {
            user: user.to_owned(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            ts,
        }
    }

    #[test]
    fn status_flips_only_at_the_first_and_last_node() {
        let e = UserNodes::new("alice");
        let on_a = e.with("a", true, 10).unwrap();
        assert_eq!(on_a, entry("alice", &["a"], 10));
        let on_both = on_a.with("b", true, 20).unwrap();
        assert_eq!(on_both.ts, 10, "already online: same ts");
        assert!(on_both.with("b", true, 30).is_none(), "no change");
        let on_b = on_both.with("a", false, 40).unwrap();
        assert_eq!(on_b, entry("alice", &["b"], 10));
        let off = on_b.with("b", false, 50).unwrap();
        assert_eq!(off, entry("alice", &[], 50));
        assert!(off.with("c", false, 60).is_none());
    }

    #[test]
    fn the_mirror_reports_first_sight_and_flips_only() {
        let mut m = Mirror::default();
        assert!(m.seen(entry("alice", &["a"], 1)), "first sight");
        assert!(!m.seen(entry("alice", &["a", "b"], 1)), "second device");
        assert!(
            !m.seen(entry("alice", &["b"], 1)),
            "one device left, one stays"
        );
        assert!(m.seen(entry("alice", &[], 5)), "last device gone");
        assert!(m.seen(entry("bob", &[], 2)), "first sight, offline");
        assert!(m.seen(entry("alice", &["c"], 6)));
        m.seen(entry("carol", &["c", "a"], 7));
        assert_eq!(m.users_on("c"), ["alice", "carol"]);
        assert!(m.holds("carol", "a"));
        assert!(m.online("carol") && !m.online("bob") && !m.online("nobody"));
        assert!(m.online_elsewhere("carol", "a"));
        assert!(!m.online_elsewhere("alice", "c"));
        assert!(!m.holds("bob", "a"));
    }

    #[test]
    fn a_will_survives_the_bucket() {
        let will = Will {
            topic: "im/dm/bob/alice".into(),
            payload: Bytes::from_static(b"\x00bye\xff"),
            retain: true,
            user: "alice".into(),
            content_type: Some("application/json".into()),
            response_topic: None,
            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
        };
        let json = serde_json::to_vec(&StoredWill::of(&will)).unwrap();
        let back = serde_json::from_slice::<StoredWill>(&json).unwrap().will();
        assert_eq!(back, Some(will));
    }
}
