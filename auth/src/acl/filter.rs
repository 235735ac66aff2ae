//! MQTT topic names and filters, and rule filters with placeholders.
//!
//! Everything here works level by level, never by string substitution: a
//! `{client}` placeholder compares one level with the client id, so a client id
//! containing `/` or `+` can never widen a rule.

use crate::token::Identity;

/// Splits a topic name a client publishes to. `None` if it is not a valid
/// concrete topic: empty, containing a wildcard, or containing NUL.
pub(crate) fn topic_levels(topic: &str) -> Option<Vec<&str>> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return None;
    }
    Some(topic.split('/').collect())
}

/// Splits a subscription filter. `None` if it is not a valid MQTT filter:
/// empty, NUL, or a `+`/`#` that is not a whole level (`#` only last).
/// Empty levels (`a//b`) are legal MQTT and kept.
pub(crate) fn filter_levels(filter: &str) -> Option<Vec<&str>> {
    if filter.is_empty() || filter.contains('\0') {
        return None;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len().saturating_sub(1);
    for (i, level) in levels.iter().enumerate() {
        let ok = match *level {
            "+" => true,
            "#" => i == last,
            other => !other.contains(['+', '#']),
        };
        if !ok {
            return None;
        }
    }
    Some(levels)
}

/// One level of a configured rule's topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Literal(String),
    /// `+`
    AnyOne,
    /// `#`, always last
    AnyRest,
    /// `{user}`: the token's `sub`
    User,
    /// `{client}`: the MQTT client id
    Client,
    /// `{group}`: any group the token lists
    Group,
}

/// The topic of a configured rule, parsed once at startup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern(Vec<Level>);

/// Who is asking: what the placeholders stand for.
pub(crate) struct Subject<'a> {
    pub who: &'a Identity,
    pub client_id: &'a str,
}

impl Subject<'_> {
    /// Whether a concrete (non-wildcard) requested level fits a rule level.
    fn fits(&self, level: &Level, value: &str) -> bool {
        match level {
            Level::Literal(literal) => literal == value,
            Level::AnyOne | Level::AnyRest => true,
            Level::User => !self.who.user.is_empty() && value == self.who.user,
            Level::Client => !self.client_id.is_empty() && value == self.client_id,
            Level::Group => self.who.is_member(value),
        }
    }
}

impl Pattern {
    /// Parses a rule topic; the error says what is wrong, for
    /// [`AclError`](super::AclError).
    pub fn parse(topic: &str) -> Result<Pattern, String> {
        if topic.is_empty() {
            return Err("the topic is empty".to_owned());
        }
        if topic.contains('\0') {
            return Err("the topic contains a NUL character".to_owned());
        }
        if roost_proto::topic::is_reserved(topic) {
            return Err(
                "`$SYS` and `$share` topics are never allowed, so no rule can govern them \
                 (a `$share/{name}/{filter}` subscription is judged by the rules for its filter)"
                    .to_owned(),
            );
        }
        let parts: Vec<&str> = topic.split('/').collect();
        let last = parts.len().saturating_sub(1);
        let mut levels = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let level = match *part {
                "+" => Level::AnyOne,
                "#" if i == last => Level::AnyRest,
                "#" => return Err("`#` must be the last level".to_owned()),
                "{user}" => Level::User,
                "{client}" => Level::Client,
                "{group}" => Level::Group,
                p if p.contains(['+', '#']) => {
                    return Err(format!("`{p}`: `+` and `#` must be a whole level"))
                }
                p if p.contains(['{', '}']) => {
                    return Err(format!(
                        "`{p}`: placeholders are `{{user}}`, `{{client}}` and `{{group}}`, \
                         each a whole level"
                    ))
                }
                p => Level::Literal(p.to_owned()),
            };
            levels.push(level);
        }
        Ok(Pattern(levels))
    }

    /// Whether the rule names a `$` topic (`$app/...`): only such rules reach `$` topics.
    pub fn is_dollar(&self) -> bool {
        matches!(self.0.first(), Some(Level::Literal(first)) if first.starts_with('$'))
    }

    /// Whether the rule can only ever match topics under `im/`, which config
    /// rules never govern.
    pub fn is_im_only(&self) -> bool {
        matches!(self.0.first(), Some(Level::Literal(first)) if first == "im")
    }

    /// Whether every topic `request` can match, this pattern matches too.
    /// For a concrete topic this is plain matching.
    ///
    /// A `+` or `#` in the request never satisfies a placeholder: `+` stands
    /// for every user, not just this one.
    pub fn covers(&self, request: &[&str], subject: &Subject<'_>) -> bool {
        let mut i = 0;
        loop {
            match (self.0.get(i), request.get(i).copied()) {
                // `a/#` also matches `a` itself, so it covers whatever is left.
                (Some(Level::AnyRest), _) => return true,
                (None, None) => return true,
                (None, Some(_)) | (Some(_), None) => return false,
                (Some(_), Some("#")) => return false,
                (Some(Level::AnyOne), Some(_)) => {}
                (Some(_), Some("+")) => return false,
                (Some(level), Some(value)) => {
                    if !subject.fits(level, value) {
                        return false;
                    }
                }
            }
            i += 1;
        }
    }

    /// Whether some topic could match both this pattern and `request`.
    ///
    /// Used for deny rules, so it errs towards yes: a `+` in the request is
    /// taken to overlap any placeholder.
    pub fn overlaps(&self, request: &[&str], subject: &Subject<'_>) -> bool {
        let mut i = 0;
        loop {
            match (self.0.get(i), request.get(i).copied()) {
                (Some(Level::AnyRest), _) | (_, Some("#")) => return true,
                (None, None) => return true,
                (None, Some(_)) | (Some(_), None) => return false,
                (Some(Level::AnyOne), Some(_)) | (Some(_), Some("+")) => {}
                (Some(level), Some(value)) => {
                    if !subject.fits(level, value) {
                        return false;
                    }
                }
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Role;

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            groups: vec!["team".into()],
            role: Role::User,
            expires_at: 0,
        }
    }

    #[test]
    fn topics_have_no_wildcards() {
        assert_eq!(topic_levels("a/b"), Some(vec!["a", "b"]));
        assert_eq!(topic_levels("a//b/"), Some(vec!["a", "", "b", ""]));
        assert_eq!(topic_levels("/"), Some(vec!["", ""]));
        for bad in ["", "a/+", "a/#", "a+b", "#", "a\0"] {
            assert_eq!(topic_levels(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn filters_have_whole_level_wildcards() {
        for good in ["#", "+", "a/#", "a/+/b", "+/+", "a//#", "/"] {
            assert!(filter_levels(good).is_some(), "{good:?}");
        }
        for bad in ["", "a/#/b", "#/a", "a+", "a/b#", "a/+b/c", "##", "a\0"] {
            assert_eq!(filter_levels(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rule_patterns_validate() {
        assert!(Pattern::parse("devices/{user}/#").is_ok());
        assert!(Pattern::parse("{group}/+/{client}").is_ok());
        for bad in [
            "",
            "a/#/b",
            "a+",
            "dev/{user}x",
            "dev/{users}",
            "dev/{}",
            "$SYS/#",
            "$share/g/a",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cover_and_overlap() {
        let who = alice();
        let s = Subject {
            who: &who,
            client_id: "alice:phone",
        };
        let p = Pattern::parse("devices/{user}/#").unwrap();
        fn req(f: &str) -> Vec<&str> {
            filter_levels(f).unwrap()
        }
        assert!(p.covers(&req("devices/alice"), &s));
        assert!(p.covers(&req("devices/alice/#"), &s));
        assert!(p.covers(&req("devices/alice/temp/+"), &s));
        assert!(!p.covers(&req("devices/+/temp"), &s));
        assert!(!p.covers(&req("devices/#"), &s));
        assert!(!p.covers(&req("devices/bob/temp"), &s));
        assert!(!p.covers(&req("devices"), &s));
        assert!(p.overlaps(&req("devices/+/temp"), &s));
        assert!(p.overlaps(&req("#"), &s));
        assert!(p.overlaps(&req("devices/alice"), &s)); // `#` matches the parent level
        assert!(!p.overlaps(&req("devices"), &s)); // but not the grandparent
        assert!(!p.overlaps(&req("devices/bob/temp"), &s));
        assert!(!p.overlaps(&req("other/#"), &s));

        let exact = Pattern::parse("a/+/c").unwrap();
        assert!(exact.covers(&req("a/b/c"), &s));
        assert!(exact.covers(&req("a/+/c"), &s));
        assert!(!exact.covers(&req("a/+/#"), &s));
        assert!(!exact.covers(&req("a/b"), &s));
        assert!(!exact.covers(&req("a/b/c/d"), &s));
        assert!(exact.overlaps(&req("a/#"), &s));
        assert!(exact.overlaps(&req("+/x/+"), &s));
        assert!(!exact.overlaps(&req("a/b"), &s));
        assert!(!exact.overlaps(&req("a/b/c/d"), &s));
    }

    #[test]
    fn client_placeholder_compares_whole_levels() {
        let who = alice();
        let p = Pattern::parse("c/{client}").unwrap();
        // A client id with a `/` cannot make `{client}` span two levels.
        let s = Subject {
            who: &who,
            client_id: "x/y",
        };
        assert!(!p.covers(&["c", "x", "y"], &s));
        // An empty client id matches no level, not even an empty one.
        let s = Subject {
            who: &who,
            client_id: "",
        };
        assert!(!p.covers(&["c", ""], &s));
    }
}
