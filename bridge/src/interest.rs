//! Which NATS subjects this node subscribes to, from the filters its local clients hold.
//!
//! Plain data, no I/O (like rumqttc's `state.rs`): the bridge feeds it every local
//! subscribe and unsubscribe and carries out the [`Action`]s it returns. Each local
//! subscription counts once; a subject is subscribed when its first filter arrives and
//! unsubscribed when its last one goes. Subjects are counted, not filters, because two
//! filters can share one (`a` and `a/#` both need `…a`).
//!
//! A shared subscription `$share/{group}/{filter}` counts as interest in `filter`:
//! choosing one member of the group across the cluster is not built yet (docs/cluster.md).

use std::collections::HashMap;

use crate::subject::{Space, Subjects};

/// What the bridge must do on NATS after a change of local interest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Subscribe(String),
    Unsubscribe(String),
}

/// The refcounted local interest of one node.
#[derive(Debug)]
pub(crate) struct Interest {
    subjects: Subjects,
    /// Local subscriptions per filter.
    filters: HashMap<String, usize>,
    /// Distinct filters per subject.
    counts: HashMap<String, usize>,
}

impl Interest {
    pub(crate) fn new(subjects: Subjects) -> Self {
        Interest {
            subjects,
            filters: HashMap::new(),
            counts: HashMap::new(),
        }
    }

    /// A local client subscribed to `filter`.
    pub(crate) fn subscribe(&mut self, filter: &str) -> Vec<Action> {
        let filter = unshare(filter);
        let held = self.filters.entry(filter.to_string()).or_insert(0);
        *held += 1;
        if *held > 1 {
            return Vec::new();
        }
        let mut actions = Vec::new();
        for subject in self.subjects.filter(Space::Message, filter) {
            let count = self.counts.entry(subject.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                actions.push(Action::Subscribe(subject));
            }
        }
        actions
    }

    /// A local client unsubscribed from `filter` (or went away holding it). A filter not
    /// held is ignored.
    pub(crate) fn unsubscribe(&mut self, filter: &str) -> Vec<Action> {
        let filter = unshare(filter);
        let Some(held) = self.filters.get_mut(filter) else {
            return Vec::new();
        };
        *held -= 1;
        if *held > 0 {
            return Vec::new();
        }
        self.filters.remove(filter);
        let mut actions = Vec::new();
        for subject in self.subjects.filter(Space::Message, filter) {
            if let Some(count) = self.counts.get_mut(&subject) {
                *count -= 1;
                if *count == 0 {
                    self.counts.remove(&subject);
                    actions.push(Action::Unsubscribe(subject));
                }
            }
        }
        actions
    }

    /// Whether `subject` is subscribed now.
    pub(crate) fn holds(&self, subject: &str) -> bool {
        self.counts.contains_key(subject)
    }

    /// Every subject subscribed now: what to subscribe again after NATS lost them.
    pub(crate) fn subjects(&self) -> impl Iterator<Item = &str> {
        self.counts.keys().map(String::as_str)
    }
}

/// `$share/{group}/{filter}` -> `filter`; anything else as it is.
fn unshare(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_group, filter)| filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn interest() -> Interest {
        Interest::new(Subjects::new("roost"))
    }

    fn sub(s: &str) -> Action {
        Subscribe(s.into())
    }

    fn unsub(s: &str) -> Action {
        Unsubscribe(s.into())
    }

    #[test]
    fn first_subscribe_and_last_unsubscribe_act() {
        let mut i = interest();
        assert_eq!(i.subscribe("im/c/x"), [sub("roost.m.im.c.x")]);
        assert_eq!(i.subscribe("im/c/x"), []);
        assert_eq!(i.unsubscribe("im/c/x"), []);
        assert_eq!(i.unsubscribe("im/c/x"), [unsub("roost.m.im.c.x")]);
        assert_eq!(i.unsubscribe("im/c/x"), [], "not held any more");
        assert_eq!(i.subjects().count(), 0);
    }

    #[test]
    fn filters_sharing_a_subject() {
        let mut i = interest();
        assert_eq!(i.subscribe("a"), [sub("roost.m.a")]);
        assert_eq!(i.subscribe("a/#"), [sub("roost.m.a.>")], "`a` already held");
        assert_eq!(i.unsubscribe("a"), [], "`a/#` still needs `a`");
        assert_eq!(
            i.unsubscribe("a/#"),
            [unsub("roost.m.a"), unsub("roost.m.a.>")]
        );
        assert_eq!(i.subjects().count(), 0);
    }

    #[test]
    fn shared_subscriptions_count_as_their_filter() {
        let mut i = interest();
        assert_eq!(i.subscribe("$share/g/jobs/+"), [sub("roost.m.jobs.*")]);
        assert_eq!(i.subscribe("jobs/+"), []);
        assert_eq!(i.unsubscribe("jobs/+"), []);
        assert_eq!(i.unsubscribe("$share/g/jobs/+"), [unsub("roost.m.jobs.*")]);
    }

    #[test]
    fn invalid_filters_subscribe_nothing() {
        let mut i = interest();
        assert_eq!(i.subscribe("a/#/b"), []);
        assert_eq!(i.unsubscribe("a/#/b"), []);
        assert_eq!(i.unsubscribe("never/held"), []);
    }

    #[test]
    fn subjects_lists_what_is_held() {
        let mut i = interest();
        i.subscribe("x/#");
        i.subscribe("y");
        let mut held: Vec<&str> = i.subjects().collect();
        held.sort();
        assert_eq!(held, ["roost.m.x", "roost.m.x.>", "roost.m.y"]);
        assert!(i.holds("roost.m.x.>"));
        assert!(!i.holds("roost.m.z"));
    }
}
