//! Conversation ids: `dm:{a}:{b}` (a < b, byte order) and `grp:{group}`.

use std::fmt;
use std::str::FromStr;

use roost_proto::id::is_valid_id;
use roost_proto::topic::Topic;

use crate::HistoryError;

/// A conversation: a direct-message pair or a group.
///
/// Ids (users, groups) match `^[A-Za-z0-9_.-]{1,64}$` (docs/protocol.md section 2), so
/// they never contain `:` and `dm:{a}:{b}` is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Conv {
    /// A direct conversation between two users, `a < b` in byte order.
    Dm { a: String, b: String },
    /// A group conversation.
    Group(String),
}

impl Conv {
    /// Parses `dm:{a}:{b}` (valid ids, `a < b`) or `grp:{group}` (valid id).
    pub fn parse(s: &str) -> Option<Conv> {
        if let Some(rest) = s.strip_prefix("dm:") {
            let (a, b) = rest.split_once(':')?;
            if is_valid_id(a) && is_valid_id(b) && a < b {
                return Some(Conv::Dm {
                    a: a.to_owned(),
                    b: b.to_owned(),
                });
            }
            None
        } else if let Some(g) = s.strip_prefix("grp:") {
            is_valid_id(g).then(|| Conv::Group(g.to_owned()))
        } else {
            None
        }
    }

    /// The DM between `x` and `y`, in either order.
    ///
    /// Does not validate: `Conv::dm("u", "u")` or invalid ids give a conversation
    /// that [`Conv::is_valid`] rejects and the store refuses. Use [`Conv::parse`]
    /// or [`Conv::from_topic`] for untrusted input.
    pub fn dm(x: &str, y: &str) -> Conv {
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        Conv::Dm {
            a: a.to_owned(),
            b: b.to_owned(),
        }
    }

    /// The conversation and sender of a stored topic:
    /// `im/dm/{to}/{from}` gives (DM of `to` and `from`, `from`);
    /// `im/grp/{group}/{from}` gives (group, `from`). Any other topic, an invalid
    /// id, or a DM to oneself (not representable as `dm:a:b` with `a < b`) gives
    /// `None`.
    pub fn from_topic(topic: &str) -> Option<(Conv, String)> {
        let (conv, from) = match Topic::parse(topic) {
            Topic::Dm { to, from } if to != from => (Conv::dm(to, from), from),
            Topic::Group { group, from } => (Conv::Group(group.to_owned()), from),
            _ => return None,
        };
        (conv.is_valid() && is_valid_id(from)).then(|| (conv, from.to_owned()))
    }

    /// Whether `user` may read this conversation: a participant of the DM, or a
    /// member of the group according to `groups` (the verified token's `groups`).
    pub fn can_read(&self, user: &str, groups: &[String]) -> bool {
        match self {
            Conv::Dm { a, b } => user == a || user == b,
            Conv::Group(g) => groups.iter().any(|m| m == g),
        }
    }

    /// Whether the ids are valid and, for a DM, `a < b`.
    pub fn is_valid(&self) -> bool {
        match self {
            Conv::Dm { a, b } => is_valid_id(a) && is_valid_id(b) && a < b,
            Conv::Group(g) => is_valid_id(g),
        }
    }

    /// Whether `user` is one of the two users of a DM (always false for a group).
    pub fn is_dm_participant(&self, user: &str) -> bool {
        matches!(self, Conv::Dm { a, b } if a == user || b == user)
    }
}

impl fmt::Display for Conv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conv::Dm { a, b } => write!(f, "dm:{a}:{b}"),
            Conv::Group(g) => write!(f, "grp:{g}"),
        }
    }
}

impl FromStr for Conv {
    type Err = HistoryError;

    fn from_str(s: &str) -> Result<Conv, HistoryError> {
        Conv::parse(s).ok_or_else(|| HistoryError::InvalidConversation(s.to_owned()))
    }
}
