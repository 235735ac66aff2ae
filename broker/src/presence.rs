//! Presence: a retained `im/presence/{user}` that says whether any of a user's devices is on.
//!
//! Users connect from several devices; the topic changes only when the first device of a
//! user arrives and when the last one leaves, however it leaves.

use crate::router::{SystemMessage, SystemPublisher};
use roost_proto::presence::{Presence as Payload, Status};
use std::collections::HashMap;
use tokio::sync::Mutex;

pub struct Presence {
    /// Connected devices per user. Held across the publish so that an "offline" and the
    /// next "online" of one user reach the router in the order they happened.
    devices: Mutex<HashMap<String, usize>>,
    system: SystemPublisher,
}

impl Presence {
    pub fn new(system: SystemPublisher) -> Presence {
        Presence {
            devices: Mutex::new(HashMap::new()),
            system,
        }
    }

    pub async fn connected(&self, user: &str) {
        let mut devices = self.devices.lock().await;
        let count = devices.entry(user.to_owned()).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.system.publish(status(user, Status::Online)).await;
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
            self.system.publish(status(user, Status::Offline)).await;
        }
    }
}

impl Presence {
    /// A device of `user` left because another node took its client id over: counted
    /// out, but no `offline`, since the user is online on that node.
    pub(crate) async fn moved(&self, user: &str) {
        let mut devices = self.devices.lock().await;
        if let Some(count) = devices.get_mut(user) {
            *count -= 1;
            if *count == 0 {
                devices.remove(user);
            }
        }
    }
}

fn status(user: &str, status: Status) -> SystemMessage {
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
