//! Presence: a retained `im/presence/{user}` that says whether any of a user's devices is on.
//!
//! Users connect from several devices; the topic changes only when the first device of a
//! user arrives and when the last one leaves, however it leaves. In a cluster the node
//! does not publish it: it tells the cluster that the user's first device here arrived or
//! the last one here left, and every node publishes the user's status across all nodes
//! (`cluster_presence.rs`).

use crate::router::{SystemMessage, SystemPublisher};
use roost_proto::presence::{Presence as Payload, Status};
use std::collections::HashMap;
use tokio::sync::Mutex;

pub struct Presence {
    /// Connected devices per user. Held across the publish so that an "offline" and the
    /// next "online" of one user reach the router in the order they happened.
    devices: Mutex<HashMap<String, usize>>,
    system: SystemPublisher,
    members: Option<roost_bridge::Members>,
}

impl Presence {
    pub fn new(system: SystemPublisher, members: Option<roost_bridge::Members>) -> Presence {
        Presence {
            devices: Mutex::new(HashMap::new()),
            system,
            members,
        }
    }

    /// The user's first device here arrived (`online`) or the last one here left.
    async fn changed(&self, user: &str, online: bool) {
        match &self.members {
            Some(members) => members.device(user, online),
            None => {
                let status = if online {
                    Status::Online
                } else {
                    Status::Offline
                };
                // In order: see `publish_in_order`; `connected` runs before the CONNACK.
                self.system.publish_in_order(message(user, status)).await
            }
        }
    }

    pub async fn connected(&self, user: &str) {
        let mut devices = self.devices.lock().await;
        let count = devices.entry(user.to_owned()).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.changed(user, true).await;
        }
    }

    pub async fn disconnected(&self, user: &str) {
        let mut devices = self.devices.lock().await;
        let Some(count) = devices.get_mut(user) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            devices.remove(user);
            self.changed(user, false).await;
        }
    }
}

impl Presence {
    /// In a cluster: waits, at most `within`, until the presence bucket names this node
    /// for `user` (see `roost_bridge::Members::written`); at once when NATS is away or on
    /// one node. Logged when it does not come: the connection goes ahead as it would have.
    pub(crate) async fn written(&self, user: &str, within: std::time::Duration) {
        if let Some(members) = &self.members {
            if !members.written(user, within).await {
                tracing::debug!(
                    user,
                    "presence not in the cluster's bucket yet; claim goes ahead"
                );
            }
        }
    }

    /// A device of `user` left because another node took its client id over: counted
    /// out, and if it was the user's last device here, reported to the cluster as gone
    /// from this node, never published: the user is online on the node that took over.
    pub(crate) async fn moved(&self, user: &str) {
        let mut devices = self.devices.lock().await;
        let Some(count) = devices.get_mut(user) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            devices.remove(user);
            if let Some(members) = &self.members {
                members.device(user, false);
            }
        }
    }
}

fn message(user: &str, status: Status) -> SystemMessage {
    let payload = Payload {
        status,
        ts: crate::notice::now_ms(),
    };
    SystemMessage {
        topic: roost_proto::topic::presence(user),
        payload: payload.to_bytes(),
        retain: true,
    }
}
