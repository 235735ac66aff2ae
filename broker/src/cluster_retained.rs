//! Retained messages in a cluster, on the node's side: catching up with the cluster's
//! retained messages before the listeners open, and marking the ones the router is to store
//! without delivering (docs/cluster.md, "Retained messages").
//!
//! Why a module of its own: the bridge link (`bridge_link`) moves messages between the
//! router and NATS; what is special about retained ones (roost-bridge's `retained` mirror,
//! and the router's store-only publish, ROOST-PATCHES entry 29) stays here.

use std::time::{Duration, Instant};

use roost_bridge::{Bridge, Message};
use rumqttd::RETAIN_ONLY;
use tracing::{info, warn};

use crate::router::Link;

/// The longest a starting node waits for the cluster's retained messages before it opens
/// its listeners; whatever is not read by then arrives right after, delivered live to the
/// subscribers that came meanwhile.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Marks a message for the router: a store-only one gets the `RETAIN_ONLY` property; a
/// property of that name from anywhere else (a client on another node) is dropped, so
/// no client can make a publish silent.
pub(crate) fn mark(message: &mut Message) {
    message
        .user_properties
        .retain(|(key, _)| key != RETAIN_ONLY);
    if message.store_only && message.retain {
        message
            .user_properties
            .push((RETAIN_ONLY.to_owned(), String::new()));
    }
}

/// Puts the cluster's retained messages into the local router before clients come, so
/// the first SUBSCRIBE on this node finds them as on one node. Bounded by [`CATCH_UP`].
pub(crate) async fn catch_up(bridge: &mut Bridge, link: &mut Link) {
    match bridge.retained_is_empty().await {
        Ok(true) => return,
        Ok(false) => {}
        Err(error) => {
            warn!("retained messages not read at start: {error}");
            return;
        }
    }
    let started = Instant::now();
    let mut applied: u64 = 0;
    let mut pkid: u16 = 0;
    let read = async {
        loop {
            let (message, caught_up) = bridge.next_retained().await;
            pkid = pkid.wrapping_add(1).max(1);
            if !link.try_send(crate::bridge_link::incoming(message, pkid)) {
                warn!("router dropped the bridge link while reading retained messages");
                return;
            }
            applied += 1;
            if caught_up {
                return;
            }
        }
    };
    if tokio::time::timeout(CATCH_UP, read).await.is_err() {
        warn!(
            applied,
            "retained messages: not caught up after {CATCH_UP:?}; the rest follows live"
        );
        return;
    }
    info!(
        applied,
        ms = started.elapsed().as_millis() as u64,
        "retained messages read from the cluster"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(store_only: bool, retain: bool) -> Message {
        Message {
            topic: "t".into(),
            retain,
            store_only,
            user_properties: vec![
                ("a".into(), "1".into()),
                (RETAIN_ONLY.into(), String::new()),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn only_the_node_marks_a_publish_store_only() {
        let mut m = message(false, true);
        mark(&mut m);
        assert_eq!(m.user_properties, [("a".to_owned(), "1".to_owned())]);
        let mut m = message(true, true);
        mark(&mut m);
        assert_eq!(
            m.user_properties,
            [
                ("a".to_owned(), "1".to_owned()),
                (RETAIN_ONLY.to_owned(), String::new())
            ]
        );
        let mut m = message(true, false);
        mark(&mut m);
        assert_eq!(m.user_properties.len(), 1);
    }
}
