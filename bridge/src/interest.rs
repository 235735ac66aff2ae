//! Which NATS subjects this node subscribes to, from the filters its local clients hold.
//!
//! Plain data, no I/O (like rumqttc's `state.rs`): the bridge feeds it every local
//! subscribe and unsubscribe and carries out the [`Action`]s it returns. Each local
//! subscription counts once; a subject is subscribed when its first filter arrives and
//! unsubscribed when its last one goes. Subjects are counted, not filters, because two
//! filters can share one (`a` and `a/#` both need `…a`).
//!
//! A shared subscription `$share/{group}/{filter}` subscribes `filter`'s subjects with a
//! NATS queue named after the group and filter (`share`), apart from the plain
//! subscriptions of the same subjects: NATS hands each message to one node of the queue.

use std::collections::{HashMap, HashSet};

use crate::share::{self, Share};
use crate::subject::{Space, Subjects};

/// One NATS subscription: a subject, plain or in the queue of a shared subscription.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Sub {
    pub(crate) subject: String,
    pub(crate) share: Option<Share>,
}

impl Sub {
    pub(crate) fn plain(subject: impl Into<String>) -> Sub {
        Sub {
            subject: subject.into(),
            share: None,
        }
    }
}

/// What the bridge must do on NATS after a change of local interest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Subscribe(Sub),
    Unsubscribe(Sub),
}

/// The refcounted local interest of one node.
#[derive(Debug)]
pub(crate) struct Interest {
    subjects: Subjects,
    /// Local subscriptions per filter (shared ones with their `$share/{group}/`).
    filters: HashMap<String, usize>,
    /// Distinct filters per NATS subscription.
    counts: HashMap<Sub, usize>,
    /// The shared subscriptions held (a subset of `filters`, kept apart so that
    /// [`Interest::served`], asked on every publish, looks at these only).
    shares: HashSet<Share>,
}

impl Interest {
    pub(crate) fn new(subjects: Subjects) -> Self {
        Interest {
            subjects,
            filters: HashMap::new(),
            counts: HashMap::new(),
            shares: HashSet::new(),
        }
    }

    /// The NATS subscriptions `filter` needs.
    fn subs(&self, filter: &str) -> Vec<Sub> {
        let share = Share::parse(filter);
        let inner = share.as_ref().map_or(filter, |s| s.filter.as_str());
        self.subjects
            .filter(Space::Message, inner)
            .into_iter()
            .map(|subject| Sub {
                subject,
                share: share.clone(),
            })
            .collect()
    }

    /// A local client subscribed to `filter`.
    pub(crate) fn subscribe(&mut self, filter: &str) -> Vec<Action> {
        let held = self.filters.entry(filter.to_string()).or_insert(0);
        *held += 1;
        if *held > 1 {
            return Vec::new();
        }
        if let Some(share) = Share::parse(filter) {
            self.shares.insert(share);
        }
        let mut actions = Vec::new();
        for sub in self.subs(filter) {
            let count = self.counts.entry(sub.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                actions.push(Action::Subscribe(sub));
            }
        }
        actions
    }

    /// A local client unsubscribed from `filter` (or went away holding it). A filter not
    /// held is ignored.
    pub(crate) fn unsubscribe(&mut self, filter: &str) -> Vec<Action> {
        let Some(held) = self.filters.get_mut(filter) else {
            return Vec::new();
        };
        *held -= 1;
        if *held > 0 {
            return Vec::new();
        }
        self.filters.remove(filter);
        if let Some(share) = Share::parse(filter) {
            self.shares.remove(&share);
        }
        let mut actions = Vec::new();
        for sub in self.subs(filter) {
            if let Some(count) = self.counts.get_mut(&sub) {
                *count -= 1;
                if *count == 0 {
                    self.counts.remove(&sub);
                    actions.push(Action::Unsubscribe(sub));
                }
            }
        }
        actions
    }

    /// Whether `sub` is subscribed now.
    pub(crate) fn holds(&self, sub: &Sub) -> bool {
        self.counts.contains_key(sub)
    }

    /// Every NATS subscription held now: what to subscribe again after NATS lost them.
    pub(crate) fn subs_held(&self) -> impl Iterator<Item = &Sub> {
        self.counts.keys()
    }

    /// The shared subscriptions held here whose filter matches `topic`: a message on it
    /// entering here is delivered to their members here, and no other node's.
    pub(crate) fn served(&self, topic: &str) -> Vec<Share> {
        let mut served: Vec<Share> = self
            .shares
            .iter()
            .filter(|s| share::matches(&s.filter, topic))
            .cloned()
            .collect();
        served.sort();
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn interest() -> Interest {
        Interest::new(Subjects::new("roost"))
    }

    fn sub(s: &str) -> Action {
        Subscribe(Sub::plain(s))
    }

    fn unsub(s: &str) -> Action {
        Unsubscribe(Sub::plain(s))
    }

    fn queue(s: &str, group: &str, filter: &str) -> Sub {
        Sub {
            subject: s.into(),
            share: Some(Share {
                group: group.into(),
                filter: filter.into(),
            }),
        }
    }

    #[test]
    fn first_subscribe_and_last_unsubscribe_act() {
        let mut i = interest();
        assert_eq!(i.subscribe("im/c/x"), [sub("roost.m.im.c.x")]);
        assert_eq!(i.subscribe("im/c/x"), []);
        assert_eq!(i.unsubscribe("im/c/x"), []);
        assert_eq!(i.unsubscribe("im/c/x"), [unsub("roost.m.im.c.x")]);
        assert_eq!(i.unsubscribe("im/c/x"), [], "not held any more");
        assert_eq!(i.subs_held().count(), 0);
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
        assert_eq!(i.subs_held().count(), 0);
    }

    #[test]
    fn shared_subscriptions_subscribe_in_their_own_queue() {
        let mut i = interest();
        let g = queue("roost.m.jobs.*", "g", "jobs/+");
        assert_eq!(i.subscribe("$share/g/jobs/+"), [Subscribe(g.clone())]);
        assert_eq!(i.subscribe("$share/g/jobs/+"), [], "a second member");
        assert_eq!(
            i.subscribe("jobs/+"),
            [sub("roost.m.jobs.*")],
            "plain interest is apart from the queue"
        );
        let h = queue("roost.m.jobs.*", "h", "jobs/+");
        assert_eq!(i.subscribe("$share/h/jobs/+"), [Subscribe(h.clone())]);
        assert!(i.holds(&g) && i.holds(&h) && i.holds(&Sub::plain("roost.m.jobs.*")));
        assert_eq!(i.unsubscribe("jobs/+"), [unsub("roost.m.jobs.*")]);
        assert_eq!(i.unsubscribe("$share/g/jobs/+"), []);
        assert_eq!(i.unsubscribe("$share/g/jobs/+"), [Unsubscribe(g)]);
        assert_eq!(i.unsubscribe("$share/h/jobs/+"), [Unsubscribe(h)]);
    }

    #[test]
    fn served_lists_the_matching_shared_subscriptions() {
        let mut i = interest();
        i.subscribe("$share/g/jobs/+");
        i.subscribe("$share/h/jobs/#");
        i.subscribe("$share/k/other");
        i.subscribe("jobs/x");
        let groups =
            |topic| -> Vec<String> { i.served(topic).into_iter().map(|s| s.group).collect() };
        assert_eq!(groups("jobs/x"), ["g", "h"]);
        assert_eq!(groups("jobs/x/y"), ["h"]);
        assert_eq!(groups("nothing"), Vec::<String>::new());
    }

    #[test]
    fn invalid_filters_subscribe_nothing() {
        let mut i = interest();
        assert_eq!(i.subscribe("a/#/b"), []);
        assert_eq!(i.unsubscribe("a/#/b"), []);
        assert_eq!(i.unsubscribe("never/held"), []);
    }

    #[test]
    fn subs_held_lists_what_is_held() {
        let mut i = interest();
        i.subscribe("x/#");
        i.subscribe("y");
        let mut held: Vec<&str> = i.subs_held().map(|s| s.subject.as_str()).collect();
        held.sort();
        assert_eq!(held, ["roost.m.x", "roost.m.x.>", "roost.m.y"]);
        assert!(i.holds(&Sub::plain("roost.m.x.>")));
        assert!(!i.holds(&Sub::plain("roost.m.z")));
    }
}
