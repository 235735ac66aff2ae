//! Shared subscriptions across the cluster, on the router's side (docs/cluster.md,
//! "Shared subscriptions"): a message from another node reaches either this node's plain
//! subscriptions or the members of one shared group here, never both, so that each group
//! gets one copy in the whole cluster (the bridge decides which, `roost_bridge`).
//!
//! Why a module of its own: the router's publish scope (ROOST-PATCHES entry 28) is the
//! one place where the bridge's choice meets the router.

use std::sync::Arc;

use rumqttd::protocol::Scope;

/// The router scope of a message from another node: `share_group` is the group NATS
/// picked this node for (`roost_bridge::Message::share_group`); without one, the message
/// came through a plain subscription and is for plain subscriptions only.
pub(crate) fn scope(share_group: Option<String>) -> Scope {
    match share_group {
        Some(group) => Scope::Group(Arc::from(group)),
        None => Scope::Plain,
    }
}
