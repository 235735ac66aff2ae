//! How the node tells the history service who sent a request.
//!
//! The ACL already proves the requester is the `{me}` of `im/req/{me}`; what the topic cannot
//! carry is the token's groups, which decide which group conversations the user may read.
//! So the node adds these MQTT 5 user properties to every request it routes, after removing
//! any property with the `roost-` prefix that a client sent itself: whatever the service
//! finds under these names was put there by the node.

/// The verified user id.
pub const USER: &str = "roost-user";
/// The token's groups, comma separated (ids never contain commas).
pub const GROUPS: &str = "roost-groups";
/// The token's role.
pub const ROLE: &str = "roost-role";

/// Properties no client may set: the node strips them from every publish.
pub fn is_reserved(key: &str) -> bool {
    key.starts_with("roost-")
}

/// The groups stamped on a request, or none.
pub fn groups(user_properties: &[(String, String)]) -> Vec<String> {
    user_properties
        .iter()
        .find(|(k, _)| k == GROUPS)
        .map(|(_, v)| {
            v.split(',')
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
