//! The node as a member of the cluster: its heartbeat, its view of the other nodes, its
//! users' presence and its clients' wills in the cluster's buckets, the clean-up after a
//! dead node, and leaving (drain).
//!
//! Why one module: these share the node's view of who is alive, and each runs as a task
//! beside the bridge's message path, so a slow KV write never holds up chat. The node
//! tells [`Members`] what changes locally ([`Members::device`], [`Members::set_will`]):
//! those calls only note the change and wake the writer task, which brings the buckets in
//! line (coalesced: a device that comes and goes before the writer looks costs nothing).
//! What the node must publish locally comes out as [`Event`]s.
//!
//! Heartbeat value (KV `{P}_nodes`, key = node id), JSON:
//! `{"ms": <unix ms>, "connections": <clients connected>, "standby": <bool>}`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::bridge::Bridge;
use crate::liveness::Liveness;
use crate::nats::{BridgeError, Nats};
use crate::presence::{now_ms, Mirror, Store, Will};

mod tasks;
use tasks::{clean_up, judge, watch_presence, write};

/// Events waiting for the node; when full, the watchers wait (bounded).
const EVENT_QUEUE: usize = 1024;

/// How long a failed bucket write waits before it is tried again.
const RETRY: Duration = Duration::from_millis(500);

/// A node of the cluster as its last heartbeat described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLoad {
    pub node_id: String,
    /// Its clients connected then.
    pub connections: u64,
    /// Whether it is a standby (takes no users while the others serve).
    pub standby: bool,
}

/// What the node has to publish to its own router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `user`'s status changed (or is first known here): publish it retained on
    /// `im/presence/{user}` to local subscribers only (every node does the same).
    Presence { user: String, online: bool, ts: u64 },
    /// The will of a client of a dead node, claimed by this node: publish it as the
    /// owning node would have (it then crosses the cluster like any publish).
    Will(Will),
}

#[derive(Serialize, Deserialize)]
struct Heartbeat {
    ms: u64,
    connections: u64,
    #[serde(default)]
    standby: bool,
}

/// An ordered set: each name once, where it was first put.
#[derive(Default)]
struct Dirty {
    order: VecDeque<String>,
    names: HashSet<String>,
}

impl Dirty {
    fn insert(&mut self, name: &str) {
        if self.names.insert(name.to_owned()) {
            self.order.push_back(name.to_owned());
        }
    }

    fn take(&mut self) -> Vec<String> {
        self.names.clear();
        self.order.drain(..).collect()
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &String> {
        self.order.iter()
    }
}

/// What the node has locally and the buckets do not show yet.
#[derive(Default)]
struct Local {
    /// Users with a device on this node.
    users: HashSet<String>,
    /// Users whose entry may have to change, in the order they first changed: the
    /// buckets see this node's changes in the order they happened.
    dirty_users: Dirty,
    /// Wills of this node's clients, with the epoch of the connection that left each.
    wills: HashMap<String, (u64, Will)>,
    dirty_wills: HashSet<String>,
    busy: bool,
}

#[derive(Default)]
struct View {
    loads: HashMap<String, Heartbeat>,
}

struct Shared {
    me: String,
    local: Mutex<Local>,
    wake: Notify,
    liveness: Mutex<Liveness>,
    view: Mutex<View>,
    mirror: Mutex<Mirror>,
    leaving: AtomicBool,
    /// What this node's heartbeats say of it as a standby (`Members::set_standby`).
    standby: AtomicBool,
    connections: Box<dyn Fn() -> u64 + Send + Sync>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The node's membership; cheap to clone.
#[derive(Clone)]
pub struct Members {
    shared: Arc<Shared>,
    nats: Arc<Nats>,
    heartbeat: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Bridge {
    /// Starts this node's membership: heartbeats every `node_timeout / 3` carrying
    /// `connections()`, the judge of the other nodes, presence and wills. The events are
    /// for the node to publish.
    pub async fn members(
        &self,
        node_timeout: Duration,
        connections: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Result<(Members, mpsc::Receiver<Event>), BridgeError> {
        let nats = self.nats();
        let store = Arc::new(Store::open(&nats).await?);
        let me = nats.node_id().to_owned();
        let shared = Arc::new(Shared {
            liveness: Mutex::new(Liveness::new(&me, node_timeout * 2 / 3)),
            me,
            local: Mutex::default(),
            wake: Notify::new(),
            view: Mutex::default(),
            mirror: Mutex::default(),
            leaving: AtomicBool::new(false),
            standby: AtomicBool::new(false),
            connections: Box::new(connections),
        });
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        // The first heartbeat before anything else: the node is known at once.
        heartbeat_once(&shared, &nats).await?;
        let heartbeat = tokio::spawn(heartbeats(shared.clone(), nats.clone(), node_timeout / 3));
        tokio::spawn(judge(
            shared.clone(),
            nats.clone(),
            store.clone(),
            events.clone(),
            node_timeout,
        ));
        tokio::spawn(watch_presence(
            shared.clone(),
            store.clone(),
            events.clone(),
        ));
        tokio::spawn(write(
            shared.clone(),
            store.clone(),
            nats.clone(),
            events.clone(),
        ));
        // Wills left by an earlier run of this node (killed, restarted before the others
        // judged it dead) are published now: their clients are gone.
        tokio::spawn(clean_up(shared.clone(), store, events, shared.me.clone()));
        Ok((
            Members {
                shared,
                nats,
                heartbeat: Arc::new(Mutex::new(Some(heartbeat))),
            },
            rx,
        ))
    }
}

impl Members {
    /// This node has (`present`) or no longer has a device of `user`: called when the
    /// user's first device connects here and when the last one here leaves.
    pub fn device(&self, user: &str, present: bool) {
        let mut local = lock(&self.shared.local);
        if present {
            local.users.insert(user.to_owned());
        } else {
            local.users.remove(user);
        }
        local.dirty_users.insert(user);
        drop(local);
        self.shared.wake.notify_one();
    }

    /// The connection `epoch` of `client_id` has `will`: stored in the cluster while it is
    /// connected, so that a survivor can publish it if this node dies.
    pub fn set_will(&self, client_id: &str, epoch: u64, will: Will) {
        let mut local = lock(&self.shared.local);
        local.wills.insert(client_id.to_owned(), (epoch, will));
        local.dirty_wills.insert(client_id.to_owned());
        drop(local);
        self.shared.wake.notify_one();
    }

    /// The connection `epoch` of `client_id` ended (this node dealt with its will).
    pub fn clear_will(&self, client_id: &str, epoch: u64) {
        let mut local = lock(&self.shared.local);
        if local.wills.get(client_id).is_some_and(|(e, _)| *e == epoch) {
            local.wills.remove(client_id);
            local.dirty_wills.insert(client_id.to_owned());
            drop(local);
            self.shared.wake.notify_one();
        }
    }

    /// The nodes alive now (this one included), in name order, with what their last
    /// heartbeat said.
    pub fn cluster(&self) -> Vec<NodeLoad> {
        let alive = lock(&self.shared.liveness).alive(Instant::now());
        let view = lock(&self.shared.view);
        alive
            .into_iter()
            .map(|node_id| {
                let (connections, standby) = if node_id == self.shared.me {
                    (
                        (self.shared.connections)(),
                        self.shared.standby.load(Ordering::Relaxed),
                    )
                } else {
                    view.loads
                        .get(&node_id)
                        .map_or((0, false), |h| (h.connections, h.standby))
                };
                NodeLoad {
                    node_id,
                    connections,
                    standby,
                }
            })
            .collect()
    }

    /// Whether this node is a standby, as its next heartbeats say (false until
    /// `[cluster] standby` exists).
    pub fn set_standby(&self, standby: bool) {
        self.shared.standby.store(standby, Ordering::Relaxed);
    }

    /// Whether the node is leaving the cluster (its NATS connection closes on purpose).
    pub fn leaving(&self) -> bool {
        self.shared.leaving.load(Ordering::Relaxed)
    }

    /// Leaves the cluster (drain, after the clients are gone): writes what is left to the
    /// buckets (waiting at most `within`), takes the heartbeat away so that the others
    /// forget this node rather than judge it dead, and closes the NATS connection, which
    /// removes the node's interest.
    pub async fn leave(&self, within: Duration) {
        self.shared.leaving.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + within;
        loop {
            let idle = {
                let local = lock(&self.shared.local);
                !local.busy && local.dirty_users.is_empty() && local.dirty_wills.is_empty()
            };
            if idle {
                break;
            }
            if Instant::now() >= deadline {
                warn!("leaving the cluster with presence or wills not written");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let heartbeat = lock(&self.heartbeat).take();
        if let Some(task) = heartbeat {
            task.abort();
            let _ = task.await;
        }
        if let Err(error) = self.nats.remove_heartbeat().await {
            warn!("leaving the cluster: {error}");
        }
        self.nats.close().await;
        info!("left the cluster");
    }
}

async fn heartbeat_once(shared: &Shared, nats: &Nats) -> Result<(), BridgeError> {
    let beat = Heartbeat {
        ms: now_ms(),
        connections: (shared.connections)(),
        standby: shared.standby.load(Ordering::Relaxed),
    };
    let value = serde_json::to_vec(&beat).unwrap_or_default();
    nats.heartbeat(value.into()).await
}

async fn heartbeats(shared: Arc<Shared>, nats: Arc<Nats>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match heartbeat_once(&shared, &nats).await {
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
}

/// Parses a heartbeat value; an older node's bare unix ms counts as a heartbeat with no
/// load known.
fn parse_heartbeat(value: &[u8]) -> Heartbeat {
    serde_json::from_slice::<Heartbeat>(value).unwrap_or_else(|_| Heartbeat {
        ms: std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
        connections: 0,
        standby: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_values_old_and_new() {
        let h = parse_heartbeat(br#"{"ms":5,"connections":7,"standby":true}"#);
        assert_eq!((h.ms, h.connections, h.standby), (5, 7, true));
        let h = parse_heartbeat(br#"{"ms":5,"connections":7}"#);
        assert!(!h.standby);
        let h = parse_heartbeat(b"1700000000000");
        assert_eq!((h.ms, h.connections), (1_700_000_000_000, 0));
        let h = parse_heartbeat(b"garbage");
        assert_eq!((h.ms, h.connections), (0, 0));
    }
}
