//! Presence visibility in the ACL (`[presence] visibility = "groups"`): who may read whose
//! `im/presence/{user}`.
//!
//! The filters stay as they were (`im/presence/+` is granted to every user), but under a
//! [`PresenceScope`] they are granted [`Grant::Partial`](super::Grant::Partial): the broker
//! then checks each delivery with [`Acl::can_read`](super::Acl::can_read), retained ones
//! included, which asks the scope whether the reader sees that user. The scope itself
//! (what "shares a group or a conversation" means, and where it is looked up) is the
//! node's: this crate holds no store.

use crate::token::Identity;

/// Whose presence a user sees. Cheap and synchronous: it runs once per presence delivery.
pub trait PresenceScope: Send + Sync + std::fmt::Debug {
    /// Whether `viewer` may read the presence of `user` (never asked for `viewer` itself,
    /// nor for services).
    fn sees(&self, viewer: &Identity, user: &str) -> bool;
}

/// The user whose presence `levels` (a topic or filter already split) is about, when it
/// is a presence topic: `Some("bob")`, `Some("+")` for `im/presence/+`.
pub(crate) fn presence_user<'a>(levels: &[&'a str]) -> Option<&'a str> {
    match levels {
        ["im", "presence", user] => Some(user),
        _ => None,
    }
}

/// Whether a filter that `who` may subscribe needs its deliveries checked: one that can
/// match someone else's presence.
pub(crate) fn needs_screening(who: &Identity, levels: &[&str]) -> bool {
    !who.role.is_trusted_backend() && presence_user(levels).is_some_and(|u| u != who.user)
}
