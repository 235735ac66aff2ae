//! roost-proto: the roost wire contract as Rust types and rules.
//!
//! Everything a roost node, the history service and the roost clients must agree on
//! byte for byte lives here, once: the topic shapes ([`topic`]), the id rules ([`id`]),
//! the chat payload and its validation ([`chat`]), the clock of every `ts` ([`clock`]),
//! the stamped copy recipients get ([`delivered`]), the notices on `im/sys/{user}`
//! ([`notice`]), the presence payload ([`presence`]), the signals on `im/sig/...`
//! ([`signal`]), the requests on `im/req/{user}` ([`request`]), the identity the node
//! stamps on requests ([`stamp`]), the history service's shared subscriptions
//! ([`subscriptions`]) and the limits ([`limits`]).
//! docs/protocol.md is the prose of the same contract.
//!
//! What it is not: no I/O, no async runtime, no database, no MQTT library. It depends on
//! serde, serde_json and thiserror only, so every crate of the workspace (and any other
//! client) can use it, and everything in it is unit-tested without a network.

pub mod chat;
pub mod clock;
pub mod delivered;
pub mod id;
pub mod limits;
pub mod notice;
pub mod presence;
pub mod request;
pub mod signal;
pub mod stamp;
pub mod subscriptions;
pub mod topic;
