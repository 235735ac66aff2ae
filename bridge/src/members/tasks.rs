//! The membership's background tasks: the judge of the other nodes, the clean-up after a
//! dead one, the presence watcher and the writer of this node's presence and wills.
//!
//! Why apart from `members.rs`: that file is the node's side (what it calls and reads);
//! this is what runs beside the bridge, sharing [`Shared`] with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{lock, parse_heartbeat, Event, Shared, RETRY};
use crate::nats::Nats;
use crate::presence::{Store, Will};

/// Hears heartbeats and judges the silent: a node silent for two heartbeat periods is
/// dead, and its users and wills are dealt with.
pub(super) async fn judge(
    shared: Arc<Shared>,
    nats: Arc<Nats>,
    store: Arc<Store>,
    events: mpsc::Sender<Event>,
    node_timeout: Duration,
) {
    let mut tick = tokio::time::interval((node_timeout / 20).max(Duration::from_millis(50)));
    let judge_after = node_timeout * 2 / 3;
    // This node stored its first heartbeat just before this task started.
    let mut self_heard = Instant::now();
    loop {
        let mut beats = match nats.heartbeats().await {
            Ok(beats) => Box::pin(beats),
            Err(error) => {
                warn!("{error}; trying again");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                beat = beats.next() => {
                    let Some(beat) = beat else { break };
                    let node = beat.node;
                    if lock(&shared.liveness).replayed(&node, beat.revision) {
                        continue;
                    }
                    match beat.value {
                        Some(value) => {
                            if node == shared.me {
                                self_heard = Instant::now();
                            }
                            if lock(&shared.liveness).heard(&node, Instant::now()) {
                                info!(node, "node is back");
                            }
                            lock(&shared.view).loads.insert(node, parse_heartbeat(&value));
                        }
                        None => {
                            lock(&shared.liveness).left(&node);
                            lock(&shared.view).loads.remove(&node);
                            if node != shared.me {
                                info!(node, "node left the cluster");
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    // A node that does not hear its own heartbeats (NATS or JetStream
                    // away, the watch stalled) hears nobody: that silence judges no one.
                    let deaf = self_heard.elapsed() > judge_after;
                    if !nats.is_connected() || deaf {
                        lock(&shared.liveness).excuse(Instant::now());
                        continue;
                    }
                    let (dead, alive, all_dead) = {
                        let mut liveness = lock(&shared.liveness);
                        let dead = liveness.expire(Instant::now());
                        (dead, liveness.alive(Instant::now()), liveness.dead())
                    };
                    if dead.is_empty() {
                        continue;
                    }
                    // One survivor cleans up: the first live node by name. NATS before 2.10
                    // may accept two compare-and-sets made at once (nats-server issue
                    // 4320), so two survivors claiming together could both publish a will.
                    // It cleans up every node it holds dead: one that was to clean up and
                    // died meanwhile left its work to it.
                    let cleaner = alive.first().cloned().unwrap_or_default();
                    for node in &dead {
                        warn!(node, cleaner, "node is dead (no heartbeat): its users go offline, its clients' wills are published");
                        lock(&shared.view).loads.remove(node);
                    }
                    if cleaner == shared.me {
                        for node in all_dead {
                            tokio::spawn(clean_up(shared.clone(), store.clone(), events.clone(), node));
                        }
                    }
                }
            }
        }
        // Not at once: a watch that fails as soon as it is made must not spin.
        debug!("heartbeat watch ended; watching again");
        tokio::time::sleep(RETRY).await;
    }
}

/// A dead node's users no longer have devices there, and its clients' wills are published
/// (by the one survivor that cleans up).
pub(super) async fn clean_up(
    shared: Arc<Shared>,
    store: Arc<Store>,
    events: mpsc::Sender<Event>,
    node: String,
) {
    let mut users = 0;
    if node != shared.me {
        let on_node = lock(&shared.mirror).users_on(&node);
        for user in on_node {
            match store.set(&user, &node, false).await {
                Ok(()) => users += 1,
                Err(error) => warn!(node, "presence of a dead node's user: {error}"),
            }
        }
    }
    let mut wills = 0;
    match store.claim_wills(&node).await {
        Ok(claimed) => {
            for will in claimed {
                info!(
                    node,
                    topic = will.topic,
                    "publishing the will of a dead node's client"
                );
                wills += 1;
                if events.send(Event::Will(will)).await.is_err() {
                    return;
                }
            }
        }
        Err(error) => warn!(node, "wills of a dead node: {error}"),
    }
    if node != shared.me || wills > 0 {
        info!(node, users, wills, "dead node cleaned up");
    }
}

/// Follows the presence bucket: each user whose status flips becomes an event, and an
/// entry that disagrees with this node's own devices (this node was judged dead while
/// cut off, or restarted) is put right.
pub(super) async fn watch_presence(
    shared: Arc<Shared>,
    store: Arc<Store>,
    events: mpsc::Sender<Event>,
) {
    loop {
        let mut entries = match store.watch().await {
            Ok(entries) => Box::pin(entries),
            Err(error) => {
                warn!("{error}; trying again");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        while let Some(entry) = entries.next().await {
            let user = entry.user.clone();
            let (online, ts) = (entry.online(), entry.ts);
            let holds = entry.nodes.contains(&shared.me);
            let changed = lock(&shared.mirror).seen(entry);
            {
                let mut local = lock(&shared.local);
                if local.users.contains(&user) != holds {
                    local.dirty_users.insert(&user);
                    drop(local);
                    shared.wake.notify_one();
                }
            }
            if changed
                && events
                    .send(Event::Presence { user, online, ts })
                    .await
                    .is_err()
            {
                return;
            }
        }
        debug!("presence watch ended; watching again");
        tokio::time::sleep(RETRY).await;
    }
}

/// Brings the buckets in line with this node's devices and wills. While NATS is
/// unreachable it does not try: it shows this node's clients the statuses of its own users
/// at once (`shown`), and writes the buckets when NATS is back.
pub(super) async fn write(
    shared: Arc<Shared>,
    store: Arc<Store>,
    nats: Arc<Nats>,
    events: mpsc::Sender<Event>,
) {
    let me = shared.me.clone();
    let mut failing = false;
    // Statuses published here while cut off, until the bucket has the change.
    let mut shown: HashMap<String, bool> = HashMap::new();
    loop {
        shared.wake.notified().await;
        loop {
            if !nats.is_connected() {
                let waiting = cut_off(&shared, &events, &mut shown).await;
                if !waiting {
                    break;
                }
                if !failing {
                    failing = true;
                    warn!("NATS unreachable: presence and wills are written to the cluster when it is back");
                }
                tokio::time::sleep(RETRY).await;
                continue;
            }
            let (users, wills) = {
                let mut local = lock(&shared.local);
                let users: Vec<(String, bool)> = local
                    .dirty_users
                    .take()
                    .into_iter()
                    .map(|u| {
                        let here = local.users.contains(&u);
                        (u, here)
                    })
                    .collect();
                let wills: Vec<(String, Option<Will>)> = std::mem::take(&mut local.dirty_wills)
                    .into_iter()
                    .map(|c| {
                        let will = local.wills.get(&c).map(|(_, w)| w.clone());
                        (c, will)
                    })
                    .collect();
                local.busy = !(users.is_empty() && wills.is_empty());
                local.writing = users.iter().map(|(u, _)| u.clone()).collect();
                (users, wills)
            };
            if users.is_empty() && wills.is_empty() {
                break;
            }
            let mut failed_users = Vec::new();
            let mut failed_wills = Vec::new();
            let mut first_error = None;
            // Wills first: a user never shows online before their will is stored.
            for (client_id, will) in wills {
                let done = match &will {
                    Some(will) => store.put_will(&me, &client_id, will).await,
                    None => store.remove_will(&me, &client_id).await,
                };
                if let Err(error) = done {
                    first_error.get_or_insert(error);
                    failed_wills.push(client_id);
                }
            }
            for (user, here) in users {
                match store.set(&user, &me, here).await {
                    Ok(()) => {
                        shown.remove(&user);
                    }
                    Err(error) => {
                        first_error.get_or_insert(error);
                        failed_users.push(user);
                    }
                }
            }
            {
                // In one step, so that a user is always either being written or waiting.
                let mut local = lock(&shared.local);
                local.writing.clear();
                for user in &failed_users {
                    local.dirty_users.insert(user);
                }
                local.dirty_wills.extend(failed_wills);
            }
            shared.written.notify_waiters();
            match first_error {
                None if failing => {
                    failing = false;
                    info!("presence and wills written to the cluster again");
                }
                None => {}
                Some(error) => {
                    if !failing {
                        failing = true;
                        warn!(
                            "presence or wills not written to the cluster (trying again): {error}"
                        );
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        lock(&shared.local).busy = false;
    }
}

/// Cut off from NATS: publishes here the status of each of this node's users whose
/// devices here changed, as far as this node knows (online if a device is here or the
/// bucket last named another node), once per change. False when nothing waits.
async fn cut_off(
    shared: &Shared,
    events: &mpsc::Sender<Event>,
    shown: &mut HashMap<String, bool>,
) -> bool {
    let changes: Vec<(String, bool)> = {
        let local = lock(&shared.local);
        let mirror = lock(&shared.mirror);
        if local.dirty_users.is_empty() && local.dirty_wills.is_empty() {
            return false;
        }
        local
            .dirty_users
            .iter()
            .filter_map(|user| {
                let online =
                    local.users.contains(user) || mirror.online_elsewhere(user, &shared.me);
                let before = shown.get(user).copied().unwrap_or(mirror.online(user));
                (online != before).then(|| (user.clone(), online))
            })
            .collect()
    };
    for (user, online) in changes {
        shown.insert(user.clone(), online);
        let ts = crate::presence::now_ms();
        if events
            .send(Event::Presence { user, online, ts })
            .await
            .is_err()
        {
            break;
        }
    }
    true
}
