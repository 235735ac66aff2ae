//! Client ids are cluster-wide: every node announces each CONNECT it accepts as a *claim*
//! of the client id, and every node reads every claim, so a node holding a session of that
//! client id learns that another node took it over (docs/cluster.md, "Takeover").
//!
//! Why a JetStream stream and not plain NATS messages: two CONNECTs with one client id on
//! two nodes at the same moment must end with exactly one survivor, on every node alike.
//! Plain NATS gives no order between publishers on different servers, so each node could
//! see the other's claim last and both connections would be closed. The stream orders all
//! claims once, for everyone: **the claim that comes later in the stream wins**, and every
//! node reads the stream in that order. The node decides with [`Claim::own`] whether a
//! claim is its own (its connection is confirmed) or another node's (a local session of
//! that client id whose own claim came earlier, or that never made it into the stream, is
//! taken over). Claims only matter while in flight, so the stream keeps each for a minute,
//! in memory.

use std::time::Duration;

use async_nats::jetstream::consumer::push::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use std::sync::Arc;

use crate::headers::{text, untext, HeaderError};
use crate::nats::{BridgeError, Nats};

const ORIGIN: &str = "Roost-Origin";
const EPOCH: &str = "Roost-Epoch";

/// How long a claim waits for the stream's acknowledgement (the CONNACK waits for it); a
/// node whose NATS is this slow serves its client without a cluster-wide claim.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

/// The claims stream's settings: `{P}_claims` on `{prefix}.claim.>`, every claim of the
/// last minute, at most 64 MiB (oldest dropped first). Not one per client id: a claim
/// replaced before a node read it would never reach that node, and the order every node
/// agrees on would have a hole.
pub(crate) fn stream_config(names: &str, subject: String, replicas: usize) -> stream::Config {
    stream::Config {
        name: format!("{names}_claims"),
        description: Some("roost client-id claims".into()),
        subjects: vec![subject],
        max_age: Duration::from_secs(60),
        max_bytes: 64 * 1024 * 1024,
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::Memory,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// One accepted CONNECT, as every node reads it from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub client_id: String,
    /// The node that accepted the CONNECT.
    pub node: String,
    /// That node's name for the connection (its registry epoch), so it can tell its own
    /// connections apart when a client id reconnects there.
    pub epoch: u64,
    /// Whether `node` is this node.
    pub own: bool,
}

/// This node's side of the claims: announcing and reading them. Cheap to clone.
#[derive(Clone)]
pub struct Claims {
    nats: Arc<Nats>,
}

impl Claims {
    pub(crate) fn new(nats: Arc<Nats>) -> Claims {
        Claims { nats }
    }

    /// Announces that this node accepted a CONNECT of `client_id` (connection `epoch`),
    /// once the stream has it. Fails at once when NATS is unreachable.
    pub async fn announce(&self, client_id: &str, epoch: u64) -> Result<(), BridgeError> {
        if !self.nats.is_connected() {
            return Err(BridgeError::Nats {
                what: "claiming a client id",
                source: "not connected".into(),
            });
        }
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, text(self.nats.node_id()));
        headers.insert(EPOCH, epoch.to_string());
        let subject = self.nats.subjects().claim(client_id);
        let payload = client_id.to_owned().into_bytes().into();
        let js = jetstream::new(self.nats.client().clone());
        let publish = async {
            js.publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| claim_error(e.into()))?
                .await
                .map_err(|e| claim_error(e.into()))
        };
        match tokio::time::timeout(CLAIM_TIMEOUT, publish).await {
            Ok(acked) => acked.map(drop),
            Err(_) => Err(claim_error("no acknowledgement in time".into())),
        }
    }

    /// Every claim from now on, in the stream's order, this node's own included. The
    /// reader resumes by itself after a NATS reconnect.
    pub async fn watch(&self) -> Result<ClaimWatch, BridgeError> {
        self.watch_after(0).await
    }

    /// Like [`Claims::watch`], but from the claim after stream sequence `last_seq` (a
    /// reader's [`ClaimWatch::last_seq`]; all that the stream still holds after it), or
    /// from now on when it is 0: a reader that ended is replaced without missing a claim.
    pub async fn watch_after(&self, last_seq: u64) -> Result<ClaimWatch, BridgeError> {
        // "From now on" is after the stream's last claim, so that a reader that ends
        // before it reads any claim still has a place to resume from.
        let last_seq = match last_seq {
            0 => {
                let info = self.nats.claims_stream().get_info().await;
                info.map_err(|e| watch_error(e.into()))?.state.last_sequence
            }
            seq => seq,
        };
        let inbox = self.nats.client().new_inbox();
        let deliver_policy = DeliverPolicy::ByStartSequence {
            start_sequence: last_seq + 1,
        };
        let consumer = self
            .nats
            .claims_stream()
            .create_consumer(OrderedConfig {
                deliver_subject: inbox,
                filter_subject: self.nats.subjects().claims(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| watch_error(e.into()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| watch_error(e.into()))?;
        Ok(ClaimWatch {
            messages,
            node_id: self.nats.node_id().to_owned(),
            last_seq,
        })
    }
}

fn claim_error(source: Box<dyn std::error::Error + Send + Sync>) -> BridgeError {
    BridgeError::Nats {
        what: "claiming a client id",
        source,
    }
}

fn watch_error(source: Box<dyn std::error::Error + Send + Sync>) -> BridgeError {
    BridgeError::Nats {
        what: "reading client-id claims",
        source,
    }
}

/// The claims stream as this node reads it.
pub struct ClaimWatch {
    messages: Ordered,
    node_id: String,
    /// The stream sequence of the last claim read, or of the stream's last claim when
    /// the reader started (none read yet).
    last_seq: u64,
}

impl ClaimWatch {
    /// The next claim; `None` when the reader ended (the connection closed, or the ordered
    /// consumer failed: it then fails at every read, so reading on would spin): replace it
    /// with [`Claims::watch_after`]. A damaged claim is an error and is skipped by the
    /// caller.
    pub async fn next(&mut self) -> Option<Result<Claim, BridgeError>> {
        let message = match self.messages.next().await? {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!("client-id claims reader failed: {error}; it is replaced");
                return None;
            }
        };
        if let Ok(info) = message.info() {
            self.last_seq = info.stream_sequence;
        }
        let headers = message.headers.clone().unwrap_or_default();
        Some(parse(&headers, &message.payload, &self.node_id))
    }

    /// The stream sequence to resume after (the last claim read, or the stream's last
    /// when this reader started), for [`Claims::watch_after`].
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

fn parse(headers: &HeaderMap, payload: &[u8], node_id: &str) -> Result<Claim, BridgeError> {
    let get = |name| headers.get(name).map(|v| v.as_str());
    let node = get(ORIGIN)
        .and_then(untext)
        .filter(|n| !n.is_empty())
        .ok_or(HeaderError::Bad(ORIGIN))?;
    let epoch = get(EPOCH)
        .and_then(|e| e.parse().ok())
        .ok_or(HeaderError::Bad(EPOCH))?;
    let client_id = String::from_utf8(payload.to_vec()).map_err(|_| HeaderError::Bad("payload"))?;
    Ok(Claim {
        own: node == node_id,
        client_id,
        node,
        epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_parse_back() {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, text("pi 1"));
        headers.insert(EPOCH, "42");
        let claim = parse(&headers, "dev/ä b".as_bytes(), "pi 1").unwrap();
        assert_eq!(
            claim,
            Claim {
                client_id: "dev/ä b".into(),
                node: "pi 1".into(),
                epoch: 42,
                own: true
            }
        );
        assert!(!parse(&headers, b"x", "pi2").unwrap().own);
        headers.insert(EPOCH, "x");
        assert!(parse(&headers, b"x", "pi 1").is_err());
        assert!(parse(&HeaderMap::new(), b"x", "pi 1").is_err());
    }
}
