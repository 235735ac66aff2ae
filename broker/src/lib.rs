//! The roost node: an MQTT front-end that owns every client connection, in front of
//! rumqttd's router.
//!
//! The front-end signs clients in with a JWT, binds their client id to the token's user,
//! checks every PUBLISH and SUBSCRIBE against the ACL (`roost-auth`), keeps wills and
//! presence, and hands what is allowed to the router over one local link per client.
//! rumqttd's own listeners are never opened: rumqttd has no ACL, so no client may reach it
//! directly. The router does the routing: subscriptions, QoS 1/2 flows, retained messages
//! and persistent sessions.
//!
//! It starts the history service (`roost-history`) on a router link of its own, and
//! serves the history HTTP API. With `[cluster]` it joins the other nodes through NATS
//! (`bridge_link.rs`, `cluster_presence.rs`, docs/cluster.md).

mod accounts;
mod ack_order;
mod agent;
mod bridge_link;
pub mod cli;
mod cluster_claims;
mod cluster_presence;
mod cluster_retained;
mod cluster_share;
mod codec;
mod conn;
mod doctor;
mod drain;
mod drain_cmd;
mod elastic;
#[doc(hidden)]
pub mod fuzzing;
mod history;
mod history_link;
mod http;
mod keys;
mod listener;
mod metrics;
pub mod node;
mod notice;
mod presence;
mod registry;
mod retained;
mod revoked;
mod router;
mod standby;
mod transport;
mod visibility;
