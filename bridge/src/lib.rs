//! The cluster bridge: a node's router linked to NATS (docs/cluster.md, the contract in
//! the design notes). The node (`roost serve` with `[cluster]`) drives [`Bridge`] from a
//! router link of its own and feeds [`LocalInterest`] from the router's interest hook;
//! this crate holds everything that does not depend on the router's types.
//!
//! # What crosses the network
//!
//! - **Live publishes** accepted from local clients (after the ACL and identity stamping),
//!   once each, on subject `{prefix}.m.{levels}` ([`subject`]), with headers for the
//!   origin node, its sequence, QoS, retain and the MQTT 5 properties content type, user
//!   properties, response topic and correlation data ([`headers`]). NATS forwards a
//!   message only to nodes that subscribed a matching subject, and a node subscribes
//!   exactly the filters its local clients hold ([`interest`]).
//! - **Retained messages**, presence included, into a JetStream stream holding one
//!   message per subject (`{prefix}.r.{levels}`); an empty payload deletes. Every node
//!   mirrors the whole stream into its router (module `retained`); a retained publish crosses
//!   only this way, never also as a live message.
//! - **Heartbeats**: each node's id and the time, into a JetStream KV bucket
//!   ([`liveness`] judges them).
//!
//! # What does not
//!
//! - Nothing that came from NATS goes back to NATS (split horizon): the bridge delivers it
//!   to local subscribers only.
//! - Client connections, sessions, QoS state and packet ids stay on their node; so do
//!   tokens and secrets (NATS credentials are only used to sign in to NATS).
//! - Messages nobody on another node subscribed to.
//! - History: every node writes the one PostgreSQL itself; NATS carries no history.

// Liveness, heartbeats and the conditional retained store are built and tested here; the
// node does not use them yet (docs/cluster.md). The retained stream's mirror it does.
#![cfg_attr(not(test), allow(dead_code))]

mod bridge;
mod dedup;
mod headers;
mod interest;
mod liveness;
mod nats;
mod retained;
mod subject;

#[cfg(test)]
mod nats_tests;
#[cfg(test)]
#[path = "../../tests/common/nats.rs"]
#[allow(dead_code)] // shared with tests/cluster.rs, which uses more of it
mod test_cluster;

pub use crate::bridge::{Bridge, LocalInterest, Message, Stats};
pub use crate::headers::HeaderError;
pub use crate::nats::BridgeError;
pub use crate::subject::SubjectError;
