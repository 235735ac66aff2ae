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
//!   exactly the filters its local clients hold ([`interest`]). A shared subscription
//!   `$share/{group}/{filter}` is a NATS queue subscription, so one node gets each message
//!   ([`share`]); the headers name the shared subscriptions the origin served itself.
//! - **Retained messages**, presence included, into a JetStream stream holding one
//!   message per subject (`{prefix}.r.{levels}`); an empty payload deletes. Every node
//!   mirrors the whole stream into its router for its plain subscriptions (module
//!   `retained`); a retained publish also goes out live, for other nodes' shared
//!   subscriptions only. Presence statuses never enter it: each node publishes them
//!   locally from the presence bucket.
//! - **Client-id claims**: the client id, node id and connection epoch of each accepted
//!   CONNECT, into a JetStream stream that orders them for every node ([`claims`]).
//! - **Heartbeats**: each node's id, the time, its connection count and whether it is a
//!   standby, into a JetStream KV bucket (`liveness` judges them, `members` sends them).
//! - **Presence and wills**: per user, the nodes where they have a device, and the will of
//!   each connected client that has one, in two KV buckets (`presence`), so that every
//!   node publishes the same statuses and a survivor publishes a dead node's wills.
//!
//! # What does not
//!
//! - Nothing that came from NATS goes back to NATS (split horizon): the bridge delivers it
//!   to local subscribers only.
//! - Client connections, sessions, QoS state and packet ids stay on their node; so do
//!   tokens and secrets (NATS credentials are only used to sign in to NATS).
//! - Messages nobody on another node subscribed to.
//! - History: every node writes the one PostgreSQL itself; NATS carries no history.

// The conditional retained store is built and tested here; the node does not use it
// (docs/cluster.md). The retained stream's mirror it does.
#![cfg_attr(not(test), allow(dead_code))]

mod bridge;
mod claims;
mod dedup;
mod headers;
mod interest;
mod kv;
mod liveness;
mod members;
mod nats;
mod presence;
mod retained;
mod share;
mod subject;

#[cfg(test)]
mod claims_tests;
#[cfg(test)]
mod members_tests;
#[cfg(test)]
mod nats_tests;
#[cfg(test)]
#[path = "../../tests/common/nats.rs"]
#[allow(dead_code)] // shared with tests/cluster.rs, which uses more of it
mod test_cluster;

pub use crate::bridge::{Bridge, LocalInterest, Message, Stats};
pub use crate::claims::{Claim, ClaimWatch, Claims};
pub use crate::headers::HeaderError;
pub use crate::members::{Event, Members, NodeLoad};
pub use crate::nats::BridgeError;
pub use crate::presence::Will;
pub use crate::subject::SubjectError;
