//! Authentication and authorization for roost: who a client is, and where it
//! may publish and subscribe.
//!
//! - [`token`]: verifies the JWT a client sends as its CONNECT password
//!   (HS256, RS256, ES256; PEM and JWKS keys, reloadable) into an [`Identity`],
//!   and mints HS256 tokens for `roost token`.
//! - [`password`]: argon2id hashes of account passwords (`roost user`, login, MQTT
//!   password sign-in).
//! - [`acl`]: decides each PUBLISH and SUBSCRIBE, with the built-in rules of the
//!   `im/` namespace (the anti-spoofing rule: a user only publishes as
//!   themselves) and the configured `[[acl.rules]]` everywhere else.
//!
//! This crate holds no sockets and parses no MQTT packets: the broker calls it
//! with strings and turns its answers into CONNACK, SUBACK and PUBACK codes. It
//! does not watch files either; the node calls [`Verifier::reload`] when one of
//! [`Verifier::key_files`] changes or on SIGHUP.

pub mod acl;
pub mod password;
pub mod token;

pub use acl::{Acl, AclError, AclRule, Action, Grant, Permission, PresenceScope};
pub use token::{
    mint_hs256, random_secret, Claims, Identity, KeyError, KeySettings, Role, TokenError,
    UnknownRole, Verifier, LEEWAY_SECS,
};
