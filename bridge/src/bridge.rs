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
use crate::interest::{Action, Interest, Sub};
use crate::nats::{BridgeError, Nats};
use crate::retained::{self, Mirror, Mirrored};
use crate::share::Share;
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
    /// From [`Bridge::next`] only: `Some(group)` when NATS picked this node's member of
    /// the shared subscription of `group` (deliver to that group's members here, and to
    /// no one else); `None` for a plain subscription's copy (deliver to subscriptions that
    /// are not shared). Ignored by [`Bridge::publish`].
    pub share_group: Option<String>,
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
            served: Vec::new(),
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
            share_group: None,
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
    /// Shared-subscription copies dropped because the origin node served the group.
    pub served_at_origin: AtomicU64,
    /// NATS subjects subscribed now.
    pub subjects: AtomicU64,
    /// Local retained publishes (deletes included) sent to the retained stream.
    pub retained_sent: AtomicU64,
    /// Messages read from the retained stream and handed to the local router.
    pub retained_applied: AtomicU64,
}

struct Shared {
    interest: Interest,
    /// NATS subscriptions that may have to change.
    dirty: HashSet<Sub>,
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
            let (Action::Subscribe(sub) | Action::Unsubscribe(sub)) = action;
            shared.dirty.insert(sub);
        }
        drop(shared);
        self.changed.notify_one();
    }

    /// The marked subscriptions, each with whether it is held now.
    fn take_changes(&self) -> Vec<(Sub, bool)> {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let dirty = std::mem::take(&mut shared.dirty);
        dirty
            .into_iter()
            .map(|sub| {
                let held = shared.interest.holds(&sub);
                (sub, held)
            })
            .collect()
    }

    /// The shared subscriptions held here whose filter matches `topic`.
    fn served(&self, topic: &str) -> Vec<Share> {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.interest.served(topic)
    }
}

/// The node's end of the cluster: its NATS connection, subscriptions and duplicate filter.
pub struct Bridge {
    nats: Arc<Nats>,
    node_id: String,
    interest: LocalInterest,
    /// One task per NATS subscription, feeding `incoming`; aborting it unsubscribes.
    subscriptions: HashMap<Sub, JoinHandle<()>>,
    /// Changes taken from `interest` and not carried out yet (kept across a cancelled
    /// `next`: a change leaves only once it is done).
    pending: VecDeque<(Sub, bool)>,
    /// Each message with the shared subscription whose queue it came through, if any.
    incoming_tx: mpsc::Sender<(Option<Arc<Share>>, async_nats::Message)>,
    incoming: mpsc::Receiver<(Option<Arc<Share>>, async_nats::Message)>,
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
            let held: Vec<Sub> = shared.interest.subs_held().cloned().collect();
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

    /// This node's client-id claims (announce and read), for the node's front-end.
    pub fn claims(&self) -> crate::claims::Claims {
        crate::claims::Claims::new(self.nats.clone())
    }

    /// The NATS connection, for the node's membership (`members`).
    pub(crate) fn nats(&self) -> Arc<Nats> {
        self.nats.clone()
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Whether the NATS connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.nats.is_connected()
    }

    /// Puts a publish accepted on this node on NATS, once, naming the shared
    /// subscriptions whose members here got it (their groups are served). A retained one
    /// (a delete too) goes into the retained stream, which every node mirrors into its
    /// router for its plain subscriptions (`retained`); it also goes out live, but only
    /// for the shared subscriptions of other nodes (a group is one NATS queue
    /// subscription across the cluster, which the mirror cannot serve): a plain copy of a
    /// retained message is dropped on arrival ([`Bridge::next`]). Retained messages are
    /// sent in order without waiting for each acknowledgement; at most `ACKS_IN_FLIGHT`
    /// are awaited at once.
    pub async fn publish(&self, message: &Message) -> Result<(), BridgeError> {
        let mut meta = message.meta();
        meta.served = self
            .interest
            .served(&message.topic)
            .into_iter()
            .map(|s| (s.group, s.filter))
            .collect();
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
        }
        self.nats
            .publish(&message.topic, meta, message.payload.clone())
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
            let Some((share, raw)) = raw else { continue };
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
            let share_group = match share {
                // A plain copy: once per node, however many subjects here match it.
                None => {
                    // A retained message reaches plain subscriptions through the mirror.
                    if incoming.meta.retain {
                        continue;
                    }
                    if !self.dedup.first(&incoming.meta.origin, incoming.meta.seq) {
                        self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    None
                }
                // NATS picked this node for the shared subscription: unless the origin
                // served it with a member of its own.
                Some(share) => {
                    let served = incoming
                        .meta
                        .served
                        .iter()
                        .any(|(g, f)| *g == share.group && *f == share.filter);
                    if served {
                        self.stats.served_at_origin.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Some(share.group.clone())
                }
            };
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            let mut message = Message::from_parts(incoming.topic, incoming.meta, incoming.payload);
            if share_group.is_some() {
                // The plain copy keeps the retained message here; the group's is live only.
                message.retain = false;
            }
            message.share_group = share_group;
            return message;
        }
    }

    async fn sync_subscriptions(&mut self) {
        self.pending.extend(self.interest.take_changes());
        while let Some((sub, held)) = self.pending.front().cloned() {
            let subject = &sub.subject;
            match (held, self.subscriptions.contains_key(&sub)) {
                (true, false) => match self.nats.subscribe(&sub).await {
                    Ok(mut subscriber) => {
                        debug!(%subject, share = ?sub.share, "NATS subscribe");
                        let tx = self.incoming_tx.clone();
                        let share = sub.share.clone().map(Arc::new);
                        let task = tokio::spawn(async move {
                            while let Some(message) = subscriber.next().await {
                                if tx.send((share.clone(), message)).await.is_err() {
                                    return;
                                }
                            }
                        });
                        self.subscriptions.insert(sub, task);
                    }
                    Err(error) => {
                        // Not retried here: the client re-subscribes what it holds on
                        // reconnect, and a refused subject stays refused.
                        warn!(%subject, "NATS subscribe failed: {error}");
                    }
                },
                (false, true) => {
                    debug!(%subject, share = ?sub.share, "NATS unsubscribe");
                    if let Some(task) = self.subscriptions.remove(&sub) {
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

    fn sorted(changes: Vec<(Sub, bool)>) -> Vec<(String, bool)> {
        let mut changes: Vec<(String, bool)> = changes
            .into_iter()
            .map(|(s, held)| (s.subject, held))
            .collect();
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
        assert_eq!(sorted(i.take_changes()), []);
        // Gone again before the bridge looked: one change, not held.
        i.changed("c", true);
        i.changed("c", false);
        assert_eq!(sorted(i.take_changes()), [("roost.m.c".to_owned(), false)]);
        // A second holder changes nothing on NATS.
        i.changed("b", true);
        i.changed("b", false);
        assert_eq!(sorted(i.take_changes()), []);
    }
}
