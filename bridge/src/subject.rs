//! MQTT topics and filters as NATS subjects, and back.
//!
//! Why a module of its own: the mapping must be exactly reversible (a message that crosses
//! NATS comes out on the topic it went in with), and NATS reserves characters MQTT allows
//! in a level. Levels become tokens joined by `.`; inside a token `.`, `*`, `>`, `%`,
//! whitespace and control characters are written `%XX` (each UTF-8 byte, upper-case hex),
//! and an empty level is the token `%` alone (which no escaped level can be, since `%` is
//! always followed by two hex digits there). Other characters, `$` and non-ASCII included,
//! pass as they are: NATS takes any UTF-8 without whitespace in a token.
//!
//! Under the prefix, live messages and retained messages have separate namespaces,
//! `{prefix}.m.` and `{prefix}.r.`, so that interest in `#` never catches the retained
//! stream's subjects.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// What `%XX` escapes in a level, besides non-ASCII (which is never escaped: see
/// [`escape_level`]).
const RESERVED: &AsciiSet = &CONTROLS.add(b' ').add(b'.').add(b'*').add(b'>').add(b'%');

/// The token an empty MQTT level becomes.
const EMPTY_LEVEL: &str = "%";

/// A subject that is not one of ours, or not one we wrote.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("subject `{subject}` is not a roost topic: {why}")]
pub struct SubjectError {
    subject: String,
    why: &'static str,
}

/// Which namespace under the prefix a subject is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Space {
    /// Live messages: what the interest of subscribers pulls across.
    Message,
    /// The retained stream: one message per topic, last value wins.
    Retained,
}

impl Space {
    fn token(self) -> &'static str {
        match self {
            Space::Message => "m",
            Space::Retained => "r",
        }
    }
}

/// Maps topics and filters to subjects under one prefix (`cluster.subject_prefix`, which
/// the config has checked to be plain tokens).
#[derive(Clone, Debug)]
pub(crate) struct Subjects {
    prefix: String,
}

impl Subjects {
    pub(crate) fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.to_string(),
        }
    }

    /// The subject a message on `topic` (a topic name, no wildcards) is published to.
    pub(crate) fn topic(&self, space: Space, topic: &str) -> String {
        let mut subject = self.base(space);
        for level in topic.split('/') {
            subject.push('.');
            subject.push_str(&escape_level(level));
        }
        subject
    }

    /// The subjects to subscribe to for the MQTT `filter`: `+` -> `*`, `#` -> `>`. A
    /// trailing `#` also matches its parent level in MQTT (`a/#` matches `a`), which `>`
    /// does not, so `a/#` gives two subjects, `…a` and `…a.>`. A filter that is not valid
    /// MQTT (a `#` not last, a wildcard inside a level) has none: the broker refuses
    /// those before they get here.
    pub(crate) fn filter(&self, space: Space, filter: &str) -> Vec<String> {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut subject = self.base(space);
        for (i, level) in levels.iter().enumerate() {
            let last = i + 1 == levels.len();
            match *level {
                "#" if last => {
                    let mut subjects = Vec::with_capacity(2);
                    if i > 0 {
                        subjects.push(subject.clone());
                    }
                    subject.push_str(".>");
                    subjects.push(subject);
                    return subjects;
                }
                "+" => subject.push_str(".*"),
                level if level.contains(['+', '#']) => return Vec::new(),
                level => {
                    subject.push('.');
                    subject.push_str(&escape_level(level));
                }
            }
        }
        vec![subject]
    }

    /// The topic and namespace of a subject written by [`Subjects::topic`].
    pub(crate) fn parse(&self, subject: &str) -> Result<(Space, String), SubjectError> {
        let fail = |why| SubjectError {
            subject: subject.to_string(),
            why,
        };
        let rest = subject
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or_else(|| fail("outside the prefix"))?;
        let (space, levels) = rest.split_once('.').ok_or_else(|| fail("no topic"))?;
        let space = match space {
            "m" => Space::Message,
            "r" => Space::Retained,
            _ => return Err(fail("unknown namespace")),
        };
        let mut topic = String::with_capacity(levels.len());
        for (i, token) in levels.split('.').enumerate() {
            if i > 0 {
                topic.push('/');
            }
            topic.push_str(&unescape_level(token).ok_or_else(|| fail("bad escape"))?);
        }
        Ok((space, topic))
    }

    /// The subject of a client-id claim (`claims`): `{prefix}.claim.{client id as one
    /// escaped token}`.
    pub(crate) fn claim(&self, client_id: &str) -> String {
        format!("{}.claim.{}", self.prefix, escape_level(client_id))
    }

    /// Every claim's subject: what the claims stream holds.
    pub(crate) fn claims(&self) -> String {
        format!("{}.claim.>", self.prefix)
    }

    fn base(&self, space: Space) -> String {
        format!("{}.{}", self.prefix, space.token())
    }
}

/// One MQTT level as one NATS token.
fn escape_level(level: &str) -> String {
    if level.is_empty() {
        return EMPTY_LEVEL.to_string();
    }
    // percent-encoding always escapes non-ASCII; NATS takes it as is, except whitespace,
    // so only Unicode whitespace stays escaped.
    let mut token = String::with_capacity(level.len());
    for c in level.chars() {
        if c.is_ascii() || c.is_whitespace() {
            let mut buf = [0; 4];
            token.extend(utf8_percent_encode(c.encode_utf8(&mut buf), RESERVED));
        } else {
            token.push(c);
        }
    }
    token
}

/// The inverse of [`escape_level`]; `None` for a token it cannot have written.
fn unescape_level(token: &str) -> Option<String> {
    if token == EMPTY_LEVEL {
        return Some(String::new());
    }
    if token.is_empty() || token == "*" || token == ">" {
        return None;
    }
    // Every `%` must start a two-digit escape, or the token is not ours.
    let bytes = token.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !(bytes.get(i + 1..i + 3)).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
        {
            return None;
        }
    }
    let level = percent_decode_str(token).decode_utf8().ok()?.into_owned();
    (!level.is_empty()).then_some(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subjects() -> Subjects {
        Subjects::new("roost")
    }

    /// Odd topics: each must survive topic -> subject -> topic.
    const ODD: &[&str] = &[
        "a",
        "im/c/dm_alice_bob",
        "a.b/c",
        "a b/c d",
        "*",
        ">",
        "a/*/>",
        "a*b/c>d",
        "/",
        "//",
        "/a",
        "a/",
        "a//b",
        "%",
        "%2E",
        "%%",
        "100%/x",
        "$SYS/broker/load",
        "$share",
        "ünïcødé/日本語/🐦",
        "tab\there/new\nline",
        "nbsp\u{a0}/ideographic\u{3000}space",
        "nul\0byte",
        "...",
        " ",
        "a.*.>",
    ];

    #[test]
    fn odd_topics_round_trip() {
        let s = subjects();
        for topic in ODD {
            for space in [Space::Message, Space::Retained] {
                let subject = s.topic(space, topic);
                assert!(
                    !subject.chars().any(char::is_whitespace),
                    "{topic:?} -> {subject:?}"
                );
                // Every token is a plain NATS token: not empty, not a wildcard.
                for token in subject.split('.') {
                    assert!(
                        !token.is_empty() && token != "*" && token != ">",
                        "{subject}"
                    );
                }
                assert_eq!(
                    s.parse(&subject),
                    Ok((space, topic.to_string())),
                    "{subject}"
                );
            }
        }
    }

    #[test]
    fn distinct_topics_distinct_subjects() {
        let s = subjects();
        let mut seen = std::collections::HashMap::new();
        for topic in ODD {
            let subject = s.topic(Space::Message, topic);
            if let Some(other) = seen.insert(subject.clone(), topic) {
                panic!("{topic:?} and {other:?} both map to {subject}");
            }
        }
    }

    #[test]
    fn plain_topics_read_naturally() {
        let s = subjects();
        assert_eq!(s.topic(Space::Message, "im/c/x"), "roost.m.im.c.x");
        assert_eq!(s.topic(Space::Retained, "im/p/alice"), "roost.r.im.p.alice");
        assert_eq!(s.topic(Space::Message, "a.b"), "roost.m.a%2Eb");
        assert_eq!(s.topic(Space::Message, "/x/"), "roost.m.%.x.%");
        let prod = Subjects::new("prod.roost");
        assert_eq!(prod.topic(Space::Message, "a"), "prod.roost.m.a");
        assert_eq!(
            prod.parse("prod.roost.m.a"),
            Ok((Space::Message, "a".into()))
        );
    }

    #[test]
    fn filters() {
        let s = subjects();
        let m = Space::Message;
        assert_eq!(s.filter(m, "#"), ["roost.m.>"]);
        assert_eq!(s.filter(m, "a/#"), ["roost.m.a", "roost.m.a.>"]);
        assert_eq!(s.filter(m, "+"), ["roost.m.*"]);
        assert_eq!(s.filter(m, "im/+/x"), ["roost.m.im.*.x"]);
        assert_eq!(s.filter(m, "+/+/#"), ["roost.m.*.*", "roost.m.*.*.>"]);
        assert_eq!(s.filter(m, "a.b/*"), ["roost.m.a%2Eb.%2A"]);
        assert_eq!(s.filter(m, "a//"), ["roost.m.a.%.%"]);
        assert_eq!(s.filter(Space::Retained, "im/p/+"), ["roost.r.im.p.*"]);
        for bad in ["a/#/b", "a+/b", "a/b#"] {
            assert!(s.filter(m, bad).is_empty(), "{bad}");
        }
    }

    /// NATS subject matching, the server's rule, to check filters against topics.
    fn nats_matches(pattern: &str, subject: &str) -> bool {
        let p: Vec<&str> = pattern.split('.').collect();
        let t: Vec<&str> = subject.split('.').collect();
        for (i, token) in p.iter().enumerate() {
            match *token {
                ">" => return t.len() > i,
                "*" if i < t.len() => {}
                token if t.get(i) == Some(&token) => {}
                _ => return false,
            }
        }
        p.len() == t.len()
    }

    /// MQTT matching (without the `$` rule, which the local router applies).
    fn mqtt_matches(filter: &str, topic: &str) -> bool {
        let f: Vec<&str> = filter.split('/').collect();
        let t: Vec<&str> = topic.split('/').collect();
        for (i, level) in f.iter().enumerate() {
            match *level {
                "#" => return true,
                "+" if i < t.len() => {}
                level if t.get(i) == Some(&level) => {}
                _ => return false,
            }
        }
        f.len() == t.len()
    }

    #[test]
    fn filter_subjects_match_what_the_filter_matches() {
        let s = subjects();
        let filters = [
            "#", "+", "a/#", "a/+", "+/+", "/#", "+/#", "a//+", "a.b/#", "*/+", ">", "a/+/#",
        ];
        let topics = [
            "a", "a/b", "a/b/c", "a/", "/", "/a", "a//b", "a.b", "a.b/c", "*", "*/x", ">", "b",
            "x/y",
        ];
        for filter in filters {
            let subjects = s.filter(Space::Message, filter);
            for topic in topics {
                let subject = s.topic(Space::Message, topic);
                let crosses = subjects.iter().any(|p| nats_matches(p, &subject));
                assert_eq!(
                    crosses,
                    mqtt_matches(filter, topic),
                    "filter {filter:?} topic {topic:?}: {subjects:?} vs {subject}"
                );
            }
        }
    }

    #[test]
    fn foreign_subjects_are_refused() {
        let s = subjects();
        for bad in [
            "other.m.a",
            "roost",
            "roost.m",
            "roost.x.a",
            "roostm.a",
            "roost.m.a..b",
            "roost.m.a.*",
            "roost.m.%zz",
            "roost.m.%2",
            "roost.m.%FF",
        ] {
            assert!(s.parse(bad).is_err(), "{bad}");
        }
    }
}
