//! The bridge as the node drives it: local interest in, NATS subscriptions out; local
//! publishes out to NATS, NATS messages in, once each.
//!
//! Why a separate module: the node's router link lives in the broker (it owns the router's
//! link type); this is everything that link needs from NATS, with no router type in it.
//! The router tells [`LocalInterest`] of every subscription a local session gains or loses
//! (on the router thread, so that call only updates counts and marks subjects to change);
//! [`Bridge::next`] brings the NATS subscriptions in line whenever marked, and returns the
//! next message another node published for a subject held here, each message once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::StreamExt;
use roost_config::Cluster;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::dedup::Dedup;
use crate::headers::Meta;
use crate::interest::{Action, Interest};
use crate::nats::{BridgeError, Nats};
use crate::retained::{self, Mirror, Mirrored};
use crate::subject::Subjects;
use async_nats::jetstream::context::PublishAckFuture;

/// Messages from NATS waiting for the node's router: when full, the subscriptions' own
/// buffers fill, and NATS drops for this slow consumer (and says so in its log).
const INCOMING_QUEUE: usize = 4096;

/// How many recent `(origin, seq)` pairs recognise a second copy of a message.
const DEDUP_WINDOW: usize = 16 * 1024;

/// A publish crossing the cluster: what a local subscriber on another node gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    /// MQTT QoS, 0 to 2.
    pub qos: u8,
    pub retain: bool,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
    /// From the retained stream, entered on this node: the router is to store it (or,
    /// empty, delete it) without delivering it (`retained`).
    pub store_only: bool,
}

impl Message {
    fn meta(&self) -> Meta {
        Meta {
            origin: String::new(),
            seq: 0,
            qos: self.qos,
            retain: self.retain,
            content_type: self.content_type.clone(),
            response_topic: self.response_topic.clone(),
            correlation_data: self.correlation_data.clone(),
            user_properties: self.user_properties.clone(),
        }
    }

    fn from_parts(topic: String, meta: Meta, payload: Bytes) -> Message {
        Message {
            topic,
            payload,
            qos: meta.qos,
            retain: meta.retain,
            content_type: meta.content_type,
            response_topic: meta.response_topic,
            correlation_data: meta.correlation_data,
            user_properties: meta.user_properties,
            store_only: false,
        }
    }
}

/// Counts of what the bridge did, for logs and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Local publishes put on NATS.
    pub sent: AtomicU64,
    /// Messages from other nodes handed to the local router.
    pub delivered: AtomicU64,
    /// Extra copies dropped (one message matching several subjects held here).
    pub duplicates: AtomicU64,
    /// NATS subjects subscribed now.
    pub subjects: AtomicU64,
    /// Local retained publishes (deletes included) sent to the retained stream.
    pub retained_sent: AtomicU64,
    /// Messages read from the retained stream and handed to the local router.
    pub retained_applied: AtomicU64,
}

struct Shared {
    interest: Interest,
    /// Subjects whose subscription may have to change.
    dirty: HashSet<String>,
}

/// The filters the node's local sessions hold, refcounted; shared between the router's
/// interest hook and the bridge. Cheap to clone.
#[derive(Clone)]
pub struct LocalInterest {
    shared: Arc<Mutex<Shared>>,
    changed: Arc<Notify>,
}

impl LocalInterest {
    pub fn new(cluster: &Cluster) -> LocalInterest {
        LocalInterest {
            shared: Arc::new(Mutex::new(Shared {
                interest: Interest::new(Subjects::new(&cluster.subject_prefix)),
                dirty: HashSet::new(),
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    /// A local session started (`held`) or stopped holding `filter`. Never waits for
    /// NATS: it marks the subjects to change and wakes the bridge.
    pub fn changed(&self, filter: &str, held: bool) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let actions = if held {
            shared.interest.subscribe(filter)
        } else {
            shared.interest.unsubscribe(filter)
        };
        if actions.is_empty() {
            return;
        }
        for action in actions {
            let (Action::Subscribe(subject) | Action::Unsubscribe(subject)) = action;
            shared.dirty.insert(subject);
        }
        drop(shared);
        self.changed.notify_one();
    }

    /// The marked subjects, each with whether it is held now.
    fn take_changes(&self) -> Vec<(String, bool)> {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let dirty = std::mem::take(&mut shared.dirty);
        dirty
            .into_iter()
            .map(|subject| {
                let held = shared.interest.holds(&subject);
                (subject, held)
            })
            .collect()
    }
}

/// The node's end of the cluster: its NATS connection, subscriptions and duplicate filter.
pub struct Bridge {
    nats: Arc<Nats>,
    node_id: String,
    interest: LocalInterest,
    /// One task per subscribed subject, feeding `incoming`; aborting it unsubscribes.
    subscriptions: HashMap<String, JoinHandle<()>>,
    /// Changes taken from `interest` and not carried out yet (kept across a cancelled
    /// `next`: a change leaves only once it is done).
    pending: VecDeque<(String, bool)>,
    incoming_tx: mpsc::Sender<async_nats::Message>,
    incoming: mpsc::Receiver<async_nats::Message>,
    dedup: Dedup,
    stats: Arc<Stats>,
    /// The retained stream's messages, read by their own task (`mirror_task`).
    mirror: mpsc::Receiver<Mirrored>,
    mirror_task: JoinHandle<()>,
    /// Acknowledgements of retained messages sent, awaited off the loop.
    acks: mpsc::Sender<(String, PublishAckFuture)>,
}

impl Bridge {
    /// Connects to NATS (see [`Nats::connect`]); subscriptions follow `interest` from the
    /// first [`Bridge::next`] on.
    pub async fn connect(
        cluster: &Cluster,
        interest: LocalInterest,
    ) -> Result<Bridge, BridgeError> {
        let nats = Nats::connect(cluster).await?;
        let node_id = cluster.node_id.clone().ok_or(BridgeError::NoNodeId)?;
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        // Whatever was held before the connection existed is to be subscribed.
        {
            let mut shared = interest
                .shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let held: Vec<String> = shared.interest.subjects().map(str::to_owned).collect();
            shared.dirty.extend(held);
        }
        let nats = Arc::new(nats);
        let (mirror, mirror_task) = retained::spawn_mirror(nats.clone());
        Ok(Bridge {
            mirror,
            mirror_task,
            acks: retained::ack_waiter(),
            nats,
            node_id,
            interest,
            subscriptions: HashMap::new(),
            pending: VecDeque::new(),
            incoming_tx,
            incoming,
            dedup: Dedup::new(DEDUP_WINDOW),
            stats: Arc::new(Stats::default()),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Whether the NATS connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.nats.is_connected()
    }

    /// Puts a publish accepted on this node on NATS, once: a retained one (a delete too)
    /// into the retained stream only, which every node mirrors (`retained`), anything
    /// else as a live message. Retained messages are sent in order without waiting for
    /// each acknowledgement; at most `ACKS_IN_FLIGHT` are awaited at once.
    pub async fn publish(&self, message: &Message) -> Result<(), BridgeError> {
        if message.retain {
            let ack = self
                .nats
                .store_retained(
                    &message.topic,
                    message.meta(),
                    message.payload.clone(),
                    None,
                )
                .await?;
            self.stats.retained_sent.fetch_add(1, Ordering::Relaxed);
            // The waiter lives as long as the runtime; if it is gone the ack is dropped.
            let _ = self.acks.send((message.topic.clone(), ack)).await;
            return Ok(());
        }
        self.nats
            .publish(&message.topic, message.meta(), message.payload.clone())
            .await?;
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the retained stream is empty now: nothing to catch up with at start.
    pub async fn retained_is_empty(&self) -> Result<bool, BridgeError> {
        Mirror::is_empty(&self.nats).await
    }

    /// The next message of the retained stream, and whether it was the last one there
    /// when it was read (the node has caught up with the cluster's retained messages).
    /// [`Bridge::next`] returns them too; this is for the start, before clients come.
    pub async fn next_retained(&mut self) -> (Message, bool) {
        let mirrored = match self.mirror.recv().await {
            Some(mirrored) => mirrored,
            // The task ends only when the bridge drops the receiver.
            None => std::future::pending().await,
        };
        self.stats.retained_applied.fetch_add(1, Ordering::Relaxed);
        let caught_up = mirrored.pending == 0;
        (Self::from_mirror(mirrored), caught_up)
    }

    fn from_mirror(mirrored: Mirrored) -> Message {
        let mut message = Message::from_parts(mirrored.topic, mirrored.meta, mirrored.payload);
        message.retain = true;
        message.store_only = mirrored.store_only;
        message
    }

    /// The next message another node published on a subject held here, each once, or the
    /// next message of the retained stream (every node reads all of it); in between, NATS
    /// subscriptions follow the local interest. Cancel safe.
    pub async fn next(&mut self) -> Message {
        loop {
            self.sync_subscriptions().await;
            let raw = tokio::select! {
                biased;
                () = self.interest.changed.notified() => continue,
                Some(mirrored) = self.mirror.recv() => {
                    self.stats.retained_applied.fetch_add(1, Ordering::Relaxed);
                    return Self::from_mirror(mirrored);
                }
                raw = self.incoming.recv() => raw,
            };
            // `incoming_tx` lives in `self`, so the channel never closes.
            let Some(raw) = raw else { continue };
            let incoming = match self.nats.incoming(&raw) {
                Ok(incoming) => incoming,
                Err(error) => {
                    warn!(subject = %raw.subject, "NATS message refused: {error}");
                    continue;
                }
            };
            // Split horizon: this node's own publishes come back when it holds their
            // subject; its local subscribers had them from the router already.
            if incoming.meta.origin == self.node_id {
                continue;
            }
            if !self.dedup.first(&incoming.meta.origin, incoming.meta.seq) {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            return Message::from_parts(incoming.topic, incoming.meta, incoming.payload);
        }
    }

    async fn sync_subscriptions(&mut self) {
        self.pending.extend(self.interest.take_changes());
        while let Some((subject, held)) = self.pending.front().cloned() {
            match (held, self.subscriptions.contains_key(&subject)) {
                (true, false) => match self.nats.subscribe(subject.clone()).await {
                    Ok(mut subscriber) => {
                        debug!(%subject, "NATS subscribe");
                        let tx = self.incoming_tx.clone();
                        let task = tokio::spawn(async move {
                            while let Some(message) = subscriber.next().await {
                                if tx.send(message).await.is_err() {
                                    return;
                                }
                            }
                        });
                        self.subscriptions.insert(subject, task);
                    }
                    Err(error) => {
                        // Not retried here: the client re-subscribes what it holds on
                        // reconnect, and a refused subject stays refused.
                        warn!(%subject, "NATS subscribe failed: {error}");
                    }
                },
                (false, true) => {
                    debug!(%subject, "NATS unsubscribe");
                    if let Some(task) = self.subscriptions.remove(&subject) {
                        task.abort();
                    }
                }
                _ => {}
            }
            self.pending.pop_front();
        }
        self.stats
            .subjects
            .store(self.subscriptions.len() as u64, Ordering::Relaxed);
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.mirror_task.abort();
        for task in self.subscriptions.values() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interest() -> LocalInterest {
        let cluster = Cluster {
            nats: vec!["nats://127.0.0.1:4222".into()],
            ..Default::default()
        };
        LocalInterest::new(&cluster)
    }

    fn sorted(mut changes: Vec<(String, bool)>) -> Vec<(String, bool)> {
        changes.sort();
        changes
    }

    #[test]
    fn changes_say_what_is_held_when_taken() {
        let i = interest();
        i.changed("a/#", true);
        i.changed("b", true);
        assert_eq!(
            sorted(i.take_changes()),
            [
                ("roost.m.a".to_owned(), true),
                ("roost.m.a.>".to_owned(), true),
                ("roost.m.b".to_owned(), true)
            ]
        );
        assert_eq!(i.take_changes(), []);
        // Gone again before the bridge looked: one change, not held.
        i.changed("c", true);
        i.changed("c", false);
        assert_eq!(i.take_changes(), [("roost.m.c".to_owned(), false)]);
        // A second holder changes nothing on NATS.
        i.changed("b", true);
        i.changed("b", false);
        assert_eq!(i.take_changes(), []);
    }
}
