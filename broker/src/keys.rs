//! Router session keys: the client id the router knows each link by.
//!
//! The router replaces the link of a key that connects again and resumes its stored session,
//! so a key is a capability: whoever can present it takes over that link. Token users' keys
//! are their client ids, `{sub}` or `{sub}:{device}` (`roost_proto::id`), whose characters are
//! ids' and `:`. Every other key starts with `@`, which no such client id contains: the node's
//! own links and anonymous clients live where no token can reach them.

/// The node's own link: presence, notices, wills.
pub(crate) const SYSTEM: &str = "@system";

/// The link of the history service inside the node.
pub(crate) const HISTORY: &str = "@history";

/// The cluster bridge's link (`[cluster]`): publishes what other nodes sent.
pub(crate) const BRIDGE: &str = "@bridge";

/// The key of an anonymous client (`auth.allow_anonymous`) that sent `client_id`: never a
/// token user's, so an anonymous `alice` neither resumes nor kicks the real alice.
pub(crate) fn anonymous(client_id: &str) -> String {
    format!("@anon:{client_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_proto::id::client_id_belongs_to;

    #[test]
    fn no_token_user_owns_an_internal_or_anonymous_key() {
        let anon = anonymous("alice");
        for user in [
            "alice",
            "roost-system",
            "roost-history",
            "system",
            "anon",
            "@anon",
        ] {
            for key in [SYSTEM, HISTORY, BRIDGE, anon.as_str()] {
                assert!(!client_id_belongs_to(user, key), "{user} owns {key}");
            }
        }
    }
}
