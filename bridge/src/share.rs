//! Shared subscriptions across the cluster (docs/cluster.md, "Shared subscriptions"):
//! `$share/{group}/{filter}` gets each message once in the whole cluster, from a member on
//! the node where the message entered if there is one.
//!
//! Why this shape: NATS queue subscriptions already give "one of these subscribers" across
//! servers, so each node holding a member of a shared subscription subscribes its filter's
//! subjects with a queue named after the group and filter ([`queue_name`]); NATS hands each
//! message to one node of that queue. The node where the message entered delivers it to
//! its own members through its router, as on one node, and lists in the message's headers
//! the shared subscriptions it served ([`Interest::served`](crate::interest)); whichever
//! node NATS picks skips a listed one. A node's plain subscriptions (no queue) never feed
//! its shared members and the other way round (the router's publish scope, ROOST-PATCHES
//! entry 28), so nothing is delivered twice.

/// One shared subscription: the group and the filter, as MQTT identifies it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Share {
    pub(crate) group: String,
    pub(crate) filter: String,
}

impl Share {
    /// `$share/{group}/{filter}` as a [`Share`]; `None` for any other filter (and for a
    /// `$share` filter without a group or a filter, which the router refuses anyway).
    pub(crate) fn parse(filter: &str) -> Option<Share> {
        let (group, filter) = filter.strip_prefix("$share/")?.split_once('/')?;
        (!group.is_empty() && !filter.is_empty()).then(|| Share {
            group: group.to_owned(),
            filter: filter.to_owned(),
        })
    }

    /// The NATS queue name of this shared subscription, the same on every node: the group
    /// and filter in hex (a queue name is one token of any bytes but whitespace; hex keeps
    /// it to what every NATS version takes).
    pub(crate) fn queue_name(&self) -> String {
        let mut name = String::with_capacity(8 + 2 * (self.group.len() + self.filter.len() + 1));
        name.push_str("share-");
        for byte in self
            .group
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(self.filter.bytes())
        {
            name.push_str(&format!("{byte:02x}"));
        }
        name
    }
}

/// Whether MQTT topic filter `filter` matches topic name `topic` (MQTT 5 section 4.7),
/// `$` topics included only when the filter names them.
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && !filter.starts_with('$') {
        return false;
    }
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        match part {
            "#" => return true,
            "+" => {
                if levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_filters_parse() {
        let share = Share::parse("$share/g1/jobs/+").unwrap();
        assert_eq!(
            (share.group.as_str(), share.filter.as_str()),
            ("g1", "jobs/+")
        );
        for not_shared in ["jobs/+", "$share/g", "$share//x", "$share/g/", "$SYS/x"] {
            assert_eq!(Share::parse(not_shared), None, "{not_shared}");
        }
    }

    #[test]
    fn queue_names_are_plain_and_distinct() {
        let a = Share::parse("$share/g/a/b").unwrap().queue_name();
        let b = Share::parse("$share/g/a/+").unwrap().queue_name();
        let c = Share::parse("$share/g a/b").unwrap().queue_name();
        assert_eq!(a, "share-672f612f62");
        assert!(a != b && a != c && b != c);
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }

    #[test]
    fn mqtt_matching() {
        for (filter, topic) in [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("a/#", "a"),
            ("a/#", "a/b/c"),
            ("#", "a"),
            ("+/+", "/x"),
            ("a//b", "a//b"),
            ("$SYS/#", "$SYS/x"),
        ] {
            assert!(matches(filter, topic), "{filter} should match {topic}");
        }
        for (filter, topic) in [
            ("a/b", "a/c"),
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("a", "a/b"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
        ] {
            assert!(!matches(filter, topic), "{filter} should not match {topic}");
        }
    }
}
