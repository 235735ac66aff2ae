//! The topics of the contract (docs/protocol.md section 3): how each is spelled, and a
//! parser that tells them apart, so nobody formats `im/...` or splits it by hand.
//!
//! [`Topic::parse`] classifies by shape only; whether the ids in it are valid is
//! [`crate::id::is_valid_id`]'s to say, and whether the user may use it is the ACL's.

/// `im/dm/{to}/{from}`: a direct message from `from` to `to`.
pub fn dm(to: &str, from: &str) -> String {
    format!("im/dm/{to}/{from}")
}

/// `im/grp/{group}/{from}`: a message from `from` to the members of `group`.
pub fn group(group: &str, from: &str) -> String {
    format!("im/grp/{group}/{from}")
}

/// `im/presence/{user}`: the node's retained online/offline status of `user`.
pub fn presence(user: &str) -> String {
    format!("im/presence/{user}")
}

/// `im/sys/{user}`: everything the server says to `user`.
pub fn sys(user: &str) -> String {
    format!("im/sys/{user}")
}

/// `im/sys/{user}/{device}`: the answers to the requests one device of `user` made (the
/// `{device}` of its client id `{user}:{device}`).
pub fn sys_device(user: &str, device: &str) -> String {
    format!("im/sys/{user}/{device}")
}

/// Where the answers to a request `user` made from `client_id` go when it names no v5
/// Response Topic: the device's `im/sys/{user}/{device}`, or `im/sys/{user}` for a client
/// id without a device part.
pub fn answer_topic(user: &str, client_id: &str) -> String {
    match crate::id::device_of(client_id) {
        Some(device) => sys_device(user, device),
        None => sys(user),
    }
}

/// Whether `user` may name `topic` as the Response Topic of a request: `im/sys/{user}` or a
/// topic below it, without wildcards. The server publishes answers there, so it must be a
/// topic only `user` may read.
pub fn is_own_response_topic(user: &str, topic: &str) -> bool {
    let sys = sys(user);
    let below = match topic.strip_prefix(sys.as_str()) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('/').is_some_and(|r| !r.is_empty()),
        None => false,
    };
    below && crate::id::is_valid_id(user) && !topic.contains(['+', '#', '\0'])
}

/// `im/req/{user}`: requests from `user` to the server.
pub fn req(user: &str) -> String {
    format!("im/req/{user}")
}

/// A topic or filter under a `$` first level the server keeps for itself: `$SYS` (server
/// information) and `$share` (shared subscriptions, a filter form, never a topic). Other `$`
/// topics (`$app/...`) are ordinary application topics, which `#` and `+` at the first level
/// do not match (MQTT 5 section 4.7.2).
pub fn is_reserved(topic: &str) -> bool {
    // By prefix: on every publish, and `split` costs more than the answer.
    let first_level_is = |word: &str| {
        topic
            .strip_prefix(word)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    first_level_is("$SYS") || first_level_is("$share")
}

/// Whether messages on `topic` are stored, and so must carry a chat payload: anything
/// under `im/dm/` or `im/grp/` (a malformed one is refused by the ACL or not stored).
pub fn is_stored(topic: &str) -> bool {
    topic.starts_with("im/dm/") || topic.starts_with("im/grp/")
}

/// Where the node routes chat messages under stamped delivery, for the history service
/// alone: `im/ingress/dm/...`, `im/ingress/grp/...`. No client may publish there, and only
/// `service` tokens may subscribe (the ACL), so what arrives there was accepted by a node's
/// front-end, and only the history service sees it before it is stored.
pub const INGRESS_PREFIX: &str = "im/ingress/";

/// The ingress topic of a stored topic (`im/dm/b/a` -> `im/ingress/dm/b/a`); `None` for
/// any other topic.
pub fn ingress(topic: &str) -> Option<String> {
    is_stored(topic).then(|| format!("{INGRESS_PREFIX}{}", &topic["im/".len()..]))
}

/// The stored topic an ingress topic stands for (`im/ingress/dm/b/a` -> `im/dm/b/a`);
/// `None` for any other topic.
pub fn from_ingress(topic: &str) -> Option<String> {
    let original = format!("im/{}", topic.strip_prefix(INGRESS_PREFIX)?);
    is_stored(&original).then_some(original)
}

/// Whether `topic` is under the ingress prefix (what no client may publish to).
pub fn is_ingress(topic: &str) -> bool {
    topic.starts_with(INGRESS_PREFIX)
}

/// The filters a chat client of `me` subscribes to: DMs to me, my own DMs sent from other
/// devices, my groups, everyone's presence and my server notices.
pub fn chat_filters(me: &str, groups: &[String]) -> Vec<String> {
    let mut filters = vec![dm(me, "+"), dm("+", me)];
    filters.extend(groups.iter().map(|g| group(g, "+")));
    filters.push(presence("+"));
    filters.push(sys(me));
    filters
}

/// A topic, classified. Borrowed from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    /// `im/dm/{to}/{from}`
    Dm { to: &'a str, from: &'a str },
    /// `im/grp/{group}/{from}`
    Group { group: &'a str, from: &'a str },
    /// `im/sig/dm/{to}/{from}`: a typing indicator or other ephemeral signal.
    SigDm { to: &'a str, from: &'a str },
    /// `im/sig/grp/{group}/{from}`
    SigGroup { group: &'a str, from: &'a str },
    /// `im/presence/{user}`
    Presence { user: &'a str },
    /// `im/sys/{user}`
    Sys { user: &'a str },
    /// `im/req/{user}`
    Req { user: &'a str },
    /// Anything else (deployment topics, malformed names).
    Other(&'a str),
}

impl<'a> Topic<'a> {
    pub fn parse(topic: &'a str) -> Topic<'a> {
        let mut levels = [""; MAX_LEVELS];
        match split_levels(topic, &mut levels) {
            Some(n) => Topic::from_levels(&levels[..n], topic),
            None => Topic::Other(topic),
        }
    }

    fn from_levels(levels: &[&'a str], topic: &'a str) -> Topic<'a> {
        match *levels {
            ["im", "dm", to, from] => Topic::Dm { to, from },
            ["im", "grp", group, from] => Topic::Group { group, from },
            ["im", "sig", "dm", to, from] => Topic::SigDm { to, from },
            ["im", "sig", "grp", group, from] => Topic::SigGroup { group, from },
            ["im", "presence", user] => Topic::Presence { user },
            ["im", "sys", user] => Topic::Sys { user },
            ["im", "req", user] => Topic::Req { user },
            _ => Topic::Other(topic),
        }
    }

    /// The sender a chat or signal topic names (`{from}`).
    pub fn from(&self) -> Option<&'a str> {
        match *self {
            Topic::Dm { from, .. }
            | Topic::Group { from, .. }
            | Topic::SigDm { from, .. }
            | Topic::SigGroup { from, .. } => Some(from),
            _ => None,
        }
    }
}

/// The most levels a topic of the contract has (`im/sig/dm/{to}/{from}`).
const MAX_LEVELS: usize = 5;

/// Puts `topic`'s levels (what `split('/')` yields) into `levels` and returns how many;
/// `None` if it has more than fit. [`Topic::parse`] runs on every publish a client sends,
/// and one pass over the bytes costs less than `split`'s searcher on topics this short.
fn split_levels<'a>(topic: &'a str, levels: &mut [&'a str; MAX_LEVELS]) -> Option<usize> {
    let mut n = 0;
    let mut start = 0;
    for (i, byte) in topic.bytes().enumerate() {
        if byte == b'/' {
            // `/` is ASCII, so both ends are character boundaries.
            *levels.get_mut(n)? = &topic[start..i];
            n += 1;
            start = i + 1;
        }
    }
    *levels.get_mut(n)? = &topic[start..];
    Some(n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(dm("bob", "alice"), "im/dm/bob/alice");
        assert_eq!(group("family", "alice"), "im/grp/family/alice");
        assert_eq!(presence("bob"), "im/presence/bob");
        assert_eq!(sys("bob"), "im/sys/bob");
        assert_eq!(req("bob"), "im/req/bob");
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
    fn parses_every_shape() {
        let cases = [
            (
                "im/dm/bob/alice",
                Topic::Dm {
                    to: "bob",
                    from: "alice",
                },
            ),
            (
                "im/grp/family/carol",
                Topic::Group {
                    group: "family",
                    from: "carol",
                },
            ),
            (
                "im/sig/dm/bob/alice",
                Topic::SigDm {
                    to: "bob",
                    from: "alice",
                },
            ),
            (
                "im/sig/grp/g/alice",
                Topic::SigGroup {
                    group: "g",
                    from: "alice",
                },
            ),
            ("im/presence/bob", Topic::Presence { user: "bob" }),
            ("im/sys/me", Topic::Sys { user: "me" }),
            ("im/req/me", Topic::Req { user: "me" }),
        ];
        for (topic, parsed) in cases {
            assert_eq!(Topic::parse(topic), parsed, "{topic}");
        }
        assert_eq!(Topic::parse("im/dm/bob/alice").from(), Some("alice"));
        assert_eq!(Topic::parse("im/sys/bob").from(), None);
    }

    #[test]
    fn anything_else_is_other() {
        for topic in [
            "",
            "im",
            "im/dm/bob",
            "im/dm/bob/alice/x",
            "im/req/a/b",
            "im/sig/x/a/b",
            "im/sig/dm/bob/alice/x/y",
            "sensors/kitchen",
            "/im/dm/bob/alice",
        ] {
            assert_eq!(Topic::parse(topic), Topic::Other(topic), "{topic}");
        }
    }

    /// Every topic of up to six levels drawn from the contract's words, empty levels and
    /// others: the one-pass split yields exactly `str::split`'s levels, or `None` past five.
    #[test]
    fn split_levels_agrees_with_split_everywhere() {
        const WORDS: [&str; 10] = [
            "im", "dm", "grp", "sig", "presence", "sys", "req", "", "a", "+",
        ];
        let mut topics: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
        let mut checked = 0;
        for depth in 1..=6 {
            for topic in &topics {
                let want: Vec<&str> = topic.split('/').collect();
                let mut levels = [""; MAX_LEVELS];
                let got = split_levels(topic, &mut levels).map(|n| levels[..n].to_vec());
                assert_eq!(got, (want.len() <= MAX_LEVELS).then_some(want), "{topic:?}");
            }
            checked += topics.len();
            if depth < 6 {
                topics = topics
                    .iter()
                    .flat_map(|t| WORDS.iter().map(move |w| format!("{t}/{w}")))
                    .collect();
            }
        }
        assert_eq!(checked, 1_111_110);
    }

    #[test]
    fn reserved_means_the_first_level() {
        for topic in [
            "$SYS",
            "$SYS/",
            "$SYS/x",
            "$share",
            "$share/g/f",
            "$SYSx",
            "$sharex/y",
            "x/$SYS",
            "",
            "/",
            "$SY",
            "$app/x",
            "/$SYS",
        ] {
            let first = topic.split('/').next().unwrap_or_default();
            let want = first == "$SYS" || first == "$share";
            assert_eq!(is_reserved(topic), want, "{topic:?}");
        }
    }

    #[test]
    fn answers_go_to_the_device() {
        assert_eq!(sys_device("bob", "phone"), "im/sys/bob/phone");
        assert_eq!(answer_topic("bob", "bob:phone"), "im/sys/bob/phone");
        assert_eq!(answer_topic("bob", "bob"), "im/sys/bob");
        // A client id whose device part is not an id (a service's) keeps the user topic.
        assert_eq!(answer_topic("svc", "svc-1"), "im/sys/svc");
        assert_eq!(answer_topic("svc", "svc:a/b"), "im/sys/svc");
    }

    #[test]
    fn response_topics_stay_under_my_sys() {
        for ok in ["im/sys/bob", "im/sys/bob/phone", "im/sys/bob/app/answers"] {
            assert!(is_own_response_topic("bob", ok), "{ok}");
        }
        for bad in [
            "im/sys/alice",
            "im/sys/bobby",
            "im/sys/bob/",
            "im/sys/bob/+",
            "im/sys/bob/#",
            "im/sys/+",
            "im/dm/alice/bob",
            "replies/bob",
            "im/sys/bob/x\0",
        ] {
            assert!(!is_own_response_topic("bob", bad), "{bad}");
        }
        assert!(!is_own_response_topic("+", "im/sys/+"));
    }

    #[test]
    fn stored_topics() {
        assert!(is_stored("im/dm/bob/alice"));
        assert!(is_stored("im/grp/family/alice"));
        assert!(!is_stored("im/sig/dm/bob/alice"));
        assert!(!is_stored("im/presence/alice"));
        assert!(!is_stored("im/req/alice"));
        assert!(!is_stored("im/ingress/dm/bob/alice"));
    }

    #[test]
    fn ingress_round_trip() {
        for stored in ["im/dm/bob/alice", "im/grp/family/alice"] {
            let inner = ingress(stored).unwrap();
            assert!(is_ingress(&inner));
            assert_eq!(from_ingress(&inner).as_deref(), Some(stored));
            assert_eq!(Topic::parse(&inner), Topic::Other(&inner));
        }
        assert_eq!(
            ingress("im/dm/bob/alice").unwrap(),
            "im/ingress/dm/bob/alice"
        );
        for other in ["im/sig/dm/bob/alice", "im/req/a", "im/sys/a", "x/im/dm/a/b"] {
            assert_eq!(ingress(other), None, "{other}");
        }
        for other in [
            "im/dm/bob/alice",
            "im/ingress/req/a",
            "im/ingress/",
            "im/ingress",
        ] {
            assert_eq!(from_ingress(other), None, "{other}");
        }
    }
}
