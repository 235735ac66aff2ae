//! Ids of users, groups and devices, and how client ids bind to users.
//!
//! Ids end up as MQTT topic levels (`im/dm/{to}/{from}`) and inside conversation ids
//! (`dm:{a}:{b}`), so the alphabet is deliberately small: no `/`, `+`, `#` or `$` that
//! would change a topic's meaning, and no `:` that would make `{user}:{device}`
//! ambiguous. (Chat message ids are another thing, with rules of their own: [`crate::chat`].)

use crate::limits::MAX_ID_LEN;

/// Whether `s` matches `^[A-Za-z0-9_.-]{1,64}$`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `client_id` is one `user` may connect with: `{user}` or `{user}:{device}`,
/// `device` being a valid id.
///
/// This is what stops one user from taking over another user's MQTT session.
pub fn client_id_belongs_to(user: &str, client_id: &str) -> bool {
    if !is_valid_id(user) {
        return false;
    }
    match client_id.strip_prefix(user) {
        Some("") => true,
        Some(rest) => rest.strip_prefix(':').is_some_and(is_valid_id),
        None => false,
    }
}

/// The device part of a client id `{user}:{device}`, if it has a valid one.
pub fn device_of(client_id: &str) -> Option<&str> {
    client_id
        .split_once(':')
        .map(|(_, device)| device)
        .filter(|d| is_valid_id(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        assert_eq!(device_of("alice:phone"), Some("phone"));
        assert_eq!(device_of("alice"), None);
        assert_eq!(device_of("alice:"), None);
        assert_eq!(device_of("alice:a:b"), None);
    }

    #[test]
    fn valid_ids() {
        for id in [
            "a",
            "alice",
            "Bob_2",
            "x.y-z",
            "alice.b-2_x",
            "pi1",
            "node_2.eu-west",
            "0",
            "-",
            ".",
            &"a".repeat(64),
        ] {
            assert!(is_valid_id(id), "{id:?} should be valid");
        }
    }

    #[test]
    fn invalid_ids() {
        let too_long = "a".repeat(65);
        for id in [
            "", "a b", "a/b", "+", "#", "a+", "$sys", "a:b", "é", "a\0", "a\n", &too_long,
        ] {
            assert!(!is_valid_id(id), "{id:?} should be invalid");
        }
    }

    #[test]
    fn client_ids_bound_to_their_user() {
        assert!(client_id_belongs_to("alice", "alice"));
        assert!(client_id_belongs_to("alice", "alice:phone"));
        assert!(client_id_belongs_to("alice", "alice:x.1-2_3"));
    }

    #[test]
    fn client_ids_of_someone_else_or_malformed() {
        for cid in [
            "",
            "bob",
            "alicex",
            "alice:",
            "alice:ph one",
            "alice:phone:2",
            "alice/phone",
            "bob:alice",
            ":alice",
            "ALICE",
        ] {
            assert!(!client_id_belongs_to("alice", cid), "{cid:?}");
        }
        // A user that is not a valid id owns nothing, not even itself.
        assert!(!client_id_belongs_to("", ""));
        assert!(!client_id_belongs_to("a/b", "a/b"));
    }
}
