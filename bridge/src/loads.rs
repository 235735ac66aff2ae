//! Each node's load, carried in its heartbeat, and the other nodes' loads as last heard:
//! what an elastic standby decides on (broker/src/standby.rs).
//!
//! Why its own small module: the heartbeats' liveness and presence rules (`liveness.rs`)
//! are being wired separately; this only needs each live node's last connection count and
//! whether it is a resting standby. Heartbeat value (KV `{P}_nodes`, key = node id), JSON:
//! `{"ms": <unix ms>, "connections": <clients connected>, "standby": <bool>}`; a bare number
//! (an older node's unix ms) counts as a node with no load known.
//!
//! A node is alive while its last heartbeat was heard less than `node_timeout` ago, by
//! this node's own monotonic clock (no clock agreement between machines).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::bridge::Bridge;
use crate::nats::{now_ms, BridgeError};

/// Another node as its last heartbeat described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLoad {
    pub node_id: String,
    /// Its clients connected then.
    pub connections: u64,
    /// A standby at rest: it takes no users.
    pub standby: bool,
}

struct Shared {
    me: String,
    timeout: Duration,
    standby: AtomicBool,
    /// Node id -> when its last heartbeat was heard, and what it said.
    heard: Mutex<HashMap<String, (Instant, u64, bool)>>,
}

/// This node's heartbeats with its load, and the others' loads. Cheap to clone.
#[derive(Clone)]
pub struct Loads {
    shared: Arc<Shared>,
}

impl Loads {
    /// The other nodes alive now, with what their last heartbeat said, in name order.
    pub fn others(&self) -> Vec<NodeLoad> {
        let now = Instant::now();
        let heard = self
            .shared
            .heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut others: Vec<NodeLoad> = heard
            .iter()
            .filter(|(id, (at, _, _))| {
                **id != self.shared.me && now.duration_since(*at) < self.shared.timeout
            })
            .map(|(id, (_, connections, standby))| NodeLoad {
                node_id: id.clone(),
                connections: *connections,
                standby: *standby,
            })
            .collect();
        others.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        others
    }

    /// Whether this node is a standby at rest, from its next heartbeat on.
    pub fn set_standby(&self, standby: bool) {
        self.shared.standby.store(standby, Ordering::Relaxed);
    }
}

/// What a heartbeat value says: (connections, standby).
fn parse(value: &[u8]) -> (u64, bool) {
    match serde_json::from_slice::<Value>(value) {
        Ok(beat) => (
            beat["connections"].as_u64().unwrap_or(0),
            beat["standby"].as_bool().unwrap_or(false),
        ),
        Err(_) => (0, false),
    }
}

impl Bridge {
    /// Starts heartbeating every `node_timeout / 3` with `connections()` and the standby
    /// flag, and hearing the others' heartbeats.
    pub async fn loads(
        &self,
        node_timeout: Duration,
        standby: bool,
        connections: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Result<Loads, BridgeError> {
        let shared = Arc::new(Shared {
            me: self.node_id().to_owned(),
            timeout: node_timeout,
            standby: AtomicBool::new(standby),
            heard: Mutex::new(HashMap::new()),
        });
        let nats = self.nats();
        let mut beats = Box::pin(nats.heartbeat_values().await?);
        let hearing = shared.clone();
        tokio::spawn(async move {
            while let Some((node, value)) = beats.next().await {
                let (connections, standby) = parse(&value);
                hearing
                    .heard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(node, (Instant::now(), connections, standby));
            }
        });
        let beating = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(node_timeout / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                let value = json!({
                    "ms": now_ms(),
                    "connections": connections(),
                    "standby": beating.standby.load(Ordering::Relaxed),
                });
                match nats.heartbeat_with(value.to_string().into()).await {
                    Ok(()) if failing => {
                        failing = false;
                        info!("heartbeats stored again");
                    }
                    Ok(()) => {}
                    Err(error) if !failing => {
                        failing = true;
                        warn!("heartbeat not stored: {error}");
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(Loads { shared })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_values() {
        assert_eq!(
            parse(br#"{"ms":5,"connections":7,"standby":true}"#),
            (7, true)
        );
        assert_eq!(parse(br#"{"ms":5,"connections":7}"#), (7, false));
        // An older node's bare unix ms, or garbage: alive, load unknown.
        assert_eq!(parse(b"1764633600000"), (0, false));
        assert_eq!(parse(b"\xff"), (0, false));
    }
}
