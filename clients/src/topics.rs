//! Topic names of the roost wire contract (PROTOCOL.md section 3) and a parser for the
//! topics this client receives.

/// `im/dm/{to}/{from}`: a direct message from `from` to `to`.
pub fn dm_topic(to: &str, from: &str) -> String {
    format!("im/dm/{to}/{from}")
}

/// `im/grp/{group}/{from}`: a message from `from` to the members of `group`.
pub fn group_topic(group: &str, from: &str) -> String {
    format!("im/grp/{group}/{from}")
}

/// `im/presence/{user}`.
pub fn presence_topic(user: &str) -> String {
    format!("im/presence/{user}")
}

/// `im/sys/{me}`: everything the server says to `me`.
pub fn sys_topic(me: &str) -> String {
    format!("im/sys/{me}")
}

/// `im/req/{me}`: requests from `me` to the server.
pub fn req_topic(me: &str) -> String {
    format!("im/req/{me}")
}

/// The filters a chat client of `me` subscribes to: DMs to me, my own DMs sent from other
/// devices, my groups, everyone's presence and my server notices.
pub fn chat_filters(me: &str, groups: &[String]) -> Vec<String> {
    let mut filters = vec![format!("im/dm/{me}/+"), format!("im/dm/+/{me}")];
    filters.extend(groups.iter().map(|g| format!("im/grp/{g}/+")));
    filters.push("im/presence/+".to_string());
    filters.push(sys_topic(me));
    filters
}

/// `^[A-Za-z0-9_.-]{1,64}$`: the shape of user, group and device ids.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A received topic, classified. Borrowed from the topic string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic<'a> {
    /// `im/dm/{to}/{from}`
    Dm { to: &'a str, from: &'a str },
    /// `im/grp/{group}/{from}`
    Group { group: &'a str, from: &'a str },
    /// `im/presence/{user}`
    Presence { user: &'a str },
    /// `im/sys/{user}`
    Sys { user: &'a str },
    /// Anything else (signals, deployment topics, malformed names).
    Other(&'a str),
}

impl<'a> Topic<'a> {
    pub fn parse(topic: &'a str) -> Topic<'a> {
        let parts: Vec<&str> = topic.split('/').collect();
        match parts.as_slice() {
            ["im", "dm", to, from] => Topic::Dm { to, from },
            ["im", "grp", group, from] => Topic::Group { group, from },
            ["im", "presence", user] => Topic::Presence { user },
            ["im", "sys", user] => Topic::Sys { user },
            _ => Topic::Other(topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses() {
        assert_eq!(dm_topic("bob", "alice"), "im/dm/bob/alice");
        assert_eq!(group_topic("family", "alice"), "im/grp/family/alice");
        assert_eq!(
            Topic::parse("im/dm/bob/alice"),
            Topic::Dm {
                to: "bob",
                from: "alice"
            }
        );
        assert_eq!(
            Topic::parse("im/grp/family/carol"),
            Topic::Group {
                group: "family",
                from: "carol"
            }
        );
        assert_eq!(
            Topic::parse("im/presence/bob"),
            Topic::Presence { user: "bob" }
        );
        assert_eq!(Topic::parse("im/sys/me"), Topic::Sys { user: "me" });
        assert_eq!(Topic::parse("im/dm/bob"), Topic::Other("im/dm/bob"));
        assert_eq!(
            chat_filters("al", &["g".into()]),
            [
                "im/dm/al/+",
                "im/dm/+/al",
                "im/grp/g/+",
                "im/presence/+",
                "im/sys/al"
            ]
        );
    }

    #[test]
    fn ids() {
        assert!(is_valid_id("alice.b-2_x"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("a+"));
        assert!(!is_valid_id(&"a".repeat(65)));
    }
}
