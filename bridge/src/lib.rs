//! The cluster bridge: a node's router linked to NATS (docs/cluster.md, the contract in
//! the design notes). Not wired into the node yet: this crate holds the parts that do not
//! depend on the router link, each tested on its own.
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
//!   message per subject (`{prefix}.r.{levels}`); an empty payload deletes.
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

// The pieces are built and tested here; the router-link loop that uses them comes next.
#![cfg_attr(not(test), allow(dead_code))]

mod dedup;
mod headers;
mod interest;
mod liveness;
mod nats;
mod subject;

#[cfg(test)]
mod nats_tests;
#[cfg(test)]
mod test_cluster;

pub use crate::headers::HeaderError;
pub use crate::nats::BridgeError;
pub use crate::subject::SubjectError;
