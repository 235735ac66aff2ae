//! The cluster bridge inside the node (`[cluster]` set): a router link, like the history
//! service's, between the local router and NATS (roost-bridge, docs/cluster.md).
//!
//! How it sees the node: its link subscribes `#` with No Local, so it gets every publish a
//! local client or link (history, system) made, once, in order, and never the ones it
//! made itself: what came from NATS is delivered locally and never goes back (split
//! horizon). The subscriptions local sessions hold reach it through the router's interest
//! hook ([`interest_hook`]), which keeps the NATS subscriptions in line with them.
//! Internal topics (`$…`, the history ingress `im/ingress/…`, history requests `im/req/…`)
//! never cross: each node's own services answer them.
//!
//! The link also publishes to local subscribers only what the cluster's membership asks
//! for (users' presence statuses, `cluster_presence.rs`): published by the bridge, they
//! never reach its own `#` subscription, so they never go out on NATS.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use roost_bridge::{Bridge, Event, LocalInterest, Members, Message};
use roost_config::Cluster;
use rumqttd::protocol::{
    Filter, Packet, PubAck, PubAckReason, PubRel, PubRelReason, Publish, PublishProperties, QoS,
    RetainForwardRule, Subscribe,
};
use rumqttd::{InterestHook, Notification};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{error, info, info_span, warn, Instrument as _};

use crate::drain::Drain;
use crate::keys;
use crate::router::{Link, Router};

/// How often the link checks the NATS connection for `/healthz` and updates the cluster's
/// metrics.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// Whether a topic or filter is the node's own business, never crossing the cluster.
pub(crate) fn internal(topic: &str) -> bool {
    let topic = match topic.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or(rest, |(_group, filter)| filter),
        None => topic,
    };
    topic.starts_with('$') || topic.starts_with("im/ingress/") || topic.starts_with("im/req/")
}

/// The router's interest hook for `interest`: the filters client sessions hold. The
/// node's own links (history, system, this bridge) and internal filters do not count.
pub(crate) fn interest_hook(interest: LocalInterest) -> InterestHook {
    Box::new(move |client_id: &str, filter: &str, held: bool| {
        if [keys::SYSTEM, keys::HISTORY, keys::BRIDGE].contains(&client_id) || internal(filter) {
            return;
        }
        interest.changed(filter, held);
    })
}

/// Messages for local subscribers only (cluster presence), waiting for the bridge's link.
const LOCAL_QUEUE: usize = 1024;

/// The node's part in the cluster, once joined.
pub(crate) struct Joined {
    pub(crate) members: Members,
    /// What the membership asks the node to publish (`cluster_presence::run`).
    pub(crate) events: mpsc::Receiver<Event>,
    /// Publishes to local subscribers through the bridge's link: never sent to NATS.
    pub(crate) local: mpsc::Sender<Message>,
    /// The node's client-id claims (`cluster_claims`).
    pub(crate) claims: roost_bridge::Claims,
}

/// Connects to NATS and starts the bridge's link and the node's membership (heartbeats
/// carrying `connections()`). Fails if no NATS server answers now; after that the NATS
/// client reconnects by itself and `/healthz` says `degraded` while it is away.
pub(crate) async fn start(
    cluster: &Cluster,
    router: &Router,
    interest: LocalInterest,
    drain: Arc<Drain>,
    connections: impl Fn() -> u64 + Send + Sync + 'static,
) -> anyhow::Result<Joined> {
    let mut bridge = Bridge::connect(cluster, interest)
        .await
        .context("joining the cluster")?;
    let (members, events) = bridge
        .members(cluster.node_timeout, connections)
        .await
        .context("joining the cluster")?;
    let (local, local_rx) = mpsc::channel(LOCAL_QUEUE);
    let mut link = router
        .link(keys::BRIDGE.to_owned(), true, true, None, None)
        .await?;
    let everything = Filter {
        path: "#".to_owned(),
        // QoS 1, so the router keeps each publish until the bridge took it; QoS 2
        // publishes cross as QoS 1.
        qos: QoS::AtLeastOnce,
        nolocal: true,
        preserve_retain: true,
        retain_forward_rule: RetainForwardRule::Never,
    };
    let subscribe = Subscribe {
        pkid: 1,
        filters: vec![everything],
    };
    if !link.try_send(vec![Packet::Subscribe(subscribe, None)]) {
        anyhow::bail!("router dropped the bridge link");
    }
    let span = info_span!("bridge", node_id = bridge.node_id().to_owned());
    crate::cluster_retained::catch_up(&mut bridge, &mut link)
        .instrument(span.clone())
        .await;
    info!(parent: &span, nats = %cluster.nats.join(","), "joined the cluster");
    let claims = bridge.claims();
    let running = Running {
        drain,
        members: members.clone(),
        local: local_rx,
    };
    tokio::spawn(run(bridge, link, running).instrument(span));
    Ok(Joined {
        members,
        events,
        local,
        claims,
    })
}

/// What the link's loop needs besides the bridge and the link.
struct Running {
    drain: Arc<Drain>,
    members: Members,
    local: mpsc::Receiver<Message>,
}

async fn run(mut bridge: Bridge, mut link: Link, mut running: Running) {
    let mut pkid: u16 = 0;
    let mut connected = true;
    let mut health = tokio::time::interval(HEALTH_EVERY);
    let stats = bridge.stats();
    loop {
        tokio::select! {
            notification = link.recv() => {
                let Some(notification) = notification else {
                    error!("bridge link closed by the router; the node no longer reaches the cluster");
                    return;
                };
                if let Some(message) = outgoing(&mut link, notification) {
                    if let Err(e) = bridge.publish(&message).await {
                        warn!(topic = %message.topic, "not put on NATS: {e}");
                    }
                }
            }
            message = bridge.next() => {
                pkid = next_pkid(pkid);
                if !link.try_send(incoming(message, pkid)) {
                    error!("router is gone; the bridge stops");
                    return;
                }
            }
            Some(message) = running.local.recv() => {
                pkid = next_pkid(pkid);
                if !link.try_send(incoming(message, pkid)) {
                    error!("router is gone; the bridge stops");
                    return;
                }
            }
            _ = health.tick() => {
                let now = bridge.is_connected();
                crate::metrics::cluster(&stats, now);
                // Leaving the cluster closes the connection on purpose.
                if now != connected && !running.members.leaving() {
                    let drain = &running.drain;
                    connected = now;
                    drain.set_degraded(!now);
                    if now {
                        info!("NATS reachable again: /healthz ok");
                    } else {
                        warn!("NATS unreachable: serving local clients only, /healthz degraded");
                    }
                }
            }
        }
    }
}

fn next_pkid(pkid: u16) -> u16 {
    pkid.wrapping_add(1).max(1)
}

/// A publish the router delivered to the bridge, acknowledged, as what goes to NATS;
/// `None` for anything else and for internal topics.
fn outgoing(link: &mut Link, notification: Notification) -> Option<Message> {
    let Notification::Forward(forward) = notification else {
        return None;
    };
    let publish = forward.publish;
    let qos = publish.qos();
    if qos != QoS::AtMostOnce {
        let puback = PubAck {
            pkid: publish.pkid(),
            reason: PubAckReason::Success,
        };
        // Never waits; a link that is gone shows at the next `recv`.
        link.try_send(vec![Packet::PubAck(puback, None)]);
    }
    let Ok(topic) = String::from_utf8(publish.topic.to_vec()) else {
        return None;
    };
    if internal(&topic) {
        return None;
    }
    let properties = forward.properties.map(|p| *p).unwrap_or_default();
    Some(Message {
        topic,
        payload: publish.payload.clone(),
        qos: qos as u8,
        retain: publish.retain,
        content_type: properties.content_type,
        response_topic: properties.response_topic,
        correlation_data: properties.correlation_data,
        user_properties: properties.user_properties,
        store_only: false,
        share_group: None,
    })
}

/// A message from another node as packets for the local router: published at its QoS
/// (a QoS 2 one released at once) and with its retain flag, so this node's router keeps
/// (or, empty, deletes) the retained message as the origin's did; subscribers get it as a
/// live message, as on one node.
pub(crate) fn incoming(mut message: Message, pkid: u16) -> Vec<Packet> {
    crate::cluster_retained::mark(&mut message);
    let qos = match message.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let mut publish = Publish::new(Bytes::from(message.topic), message.payload, message.retain);
    publish.set_qos(qos, pkid);
    publish.set_scope(crate::cluster_share::scope(message.share_group));
    let has_properties = message.content_type.is_some()
        || message.response_topic.is_some()
        || message.correlation_data.is_some()
        || !message.user_properties.is_empty();
    let properties = has_properties.then(|| PublishProperties {
        content_type: message.content_type,
        response_topic: message.response_topic,
        correlation_data: message.correlation_data,
        user_properties: message.user_properties,
        ..Default::default()
    });
    let mut packets = vec![Packet::Publish(publish, properties)];
    if qos == QoS::ExactlyOnce {
        let release = PubRel {
            pkid,
            reason: PubRelReason::Success,
        };
        packets.push(Packet::PubRel(release, None));
    }
    packets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_topics_stay_on_the_node() {
        for topic in [
            "$SYS/x",
            "im/ingress/dm/bob/alice",
            "im/req/alice",
            "$share/roost-history-req/im/req/+",
            "$share/g/$x",
        ] {
            assert!(internal(topic), "{topic}");
        }
        for topic in [
            "im/dm/bob/alice",
            "im/sys/alice",
            "im/presence/alice",
            "$share/g/jobs/+",
            "#",
        ] {
            assert!(!internal(topic), "{topic}");
        }
    }
}
