//! Presence and wills across the cluster, as the node plays its part (`[cluster]` set).
//!
//! Why a module of its own: the bridge crate keeps the cluster's presence and wills in
//! NATS KV buckets (roost-bridge `members`, docs/cluster.md "Presence across nodes") and
//! knows nothing of the router or the front-end; this is the glue. The node tells the
//! bridge when a user's first device here arrives and the last one here leaves
//! (`presence.rs`), and which connected client has a will (sign-in and close); the bridge
//! answers with events: a user's status to publish to this node's subscribers, or a dead
//! node's client's will to publish as if its own node had.

use std::sync::Arc;

use roost_bridge::{Event, Message};
use roost_proto::presence::{Presence as Payload, Status};
use rumqttd::protocol::PublishProperties;
use tokio::sync::mpsc;
use tracing::warn;

use crate::conn::Will;
use crate::node::Context;

/// The will of a connection that signs in, kept in the cluster while it is connected.
pub(crate) fn remember_will(ctx: &Context, client_id: &str, epoch: u64, will: Option<&Will>) {
    if let (Some(members), Some(will)) = (&ctx.members, will) {
        members.set_will(client_id, epoch, to_cluster(will));
    }
}

/// The connection `epoch` of `client_id` is over: this node published its will, or not.
pub(crate) fn forget_will(ctx: &Context, client_id: &str, epoch: u64) {
    if let Some(members) = &ctx.members {
        members.clear_will(client_id, epoch);
    }
}

fn to_cluster(will: &Will) -> roost_bridge::Will {
    let properties = will.properties.as_deref().cloned().unwrap_or_default();
    roost_bridge::Will {
        topic: will.topic.clone(),
        payload: will.payload.clone().into(),
        retain: will.retain,
        user: will.user.clone(),
        content_type: properties.content_type,
        response_topic: properties.response_topic,
        correlation_data: properties.correlation_data,
        user_properties: properties.user_properties,
    }
}

fn from_cluster(will: roost_bridge::Will) -> Will {
    let has_properties = will.content_type.is_some()
        || will.response_topic.is_some()
        || will.correlation_data.is_some()
        || !will.user_properties.is_empty();
    let properties = has_properties.then(|| {
        Box::new(PublishProperties {
            content_type: will.content_type,
            response_topic: will.response_topic,
            correlation_data: will.correlation_data,
            user_properties: will.user_properties,
            ..Default::default()
        })
    });
    Will {
        topic: will.topic,
        payload: will.payload.to_vec(),
        retain: will.retain,
        delay_secs: 0,
        user: will.user,
        properties,
    }
}

/// A user's status as the retained message this node's subscribers get. It goes to the
/// router through the bridge's link (`local`), so it never goes back to NATS: every node
/// publishes the same status from the presence bucket itself.
fn status(user: &str, online: bool, ts: u64) -> Message {
    let payload = Payload {
        status: if online {
            Status::Online
        } else {
            Status::Offline
        },
        ts,
    };
    Message {
        topic: roost_proto::topic::presence(user),
        payload: payload.to_bytes().into(),
        qos: 1,
        retain: true,
        ..Default::default()
    }
}

/// Publishes what the bridge's membership asks for until it stops.
pub(crate) async fn run(
    ctx: Arc<Context>,
    mut events: mpsc::Receiver<Event>,
    local: mpsc::Sender<Message>,
) {
    while let Some(event) = events.recv().await {
        match event {
            Event::Presence { user, online, ts } => {
                if local.send(status(&user, online, ts)).await.is_err() {
                    warn!("bridge link gone; cluster presence no longer published");
                    return;
                }
            }
            Event::Will(will) => {
                if let Some((message, props)) = crate::registry::message(&ctx, from_cluster(will)) {
                    ctx.system.publish_with(message, props).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_will_crosses_with_its_properties() {
        let will = Will {
            topic: "im/dm/bob/alice".into(),
            payload: b"bye".to_vec(),
            retain: false,
            delay_secs: 0,
            user: "alice".into(),
            properties: Some(Box::new(PublishProperties {
                content_type: Some("text/plain".into()),
                user_properties: vec![("a".into(), "1".into())],
                ..Default::default()
            })),
        };
        let back = from_cluster(to_cluster(&will));
        assert_eq!(back.topic, will.topic);
        assert_eq!(back.payload, will.payload);
        assert_eq!(back.user, "alice");
        let props = back.properties.expect("properties kept");
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
        assert_eq!(props.user_properties, [("a".to_owned(), "1".to_owned())]);
        assert!(from_cluster(to_cluster(&Will {
            properties: None,
            ..will
        }))
        .properties
        .is_none());
    }

    #[test]
    fn status_is_the_retained_presence_payload() {
        let m = status("alice", false, 42);
        assert_eq!(m.topic, "im/presence/alice");
        assert!(m.retain);
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v, serde_json::json!({"status": "offline", "ts": 42}));
    }
}
