//! Which nodes are alive, and whose users go offline when one dies, as plain data.
//!
//! Why: presence must survive a node killed with -9. Every node heartbeats into a NATS KV
//! bucket; each node judges the others by when *it* last heard them (its own monotonic
//! clock, so no clock agreement between Pis is needed). A node silent for
//! `cluster.node_timeout` is dead, once; a heartbeat brings it back.
//!
//! [`Presence`] holds, per user, the nodes where that user has devices. When a node dies,
//! only users left with no device on any node go offline: a user who has meanwhile
//! connected to another node is never marked offline. The offline publish itself is made
//! conditional on the retained presence message still being the one last seen (NATS'
//! expected-last-subject-sequence), which closes the race with a reconnect that lands
//! between this decision and the publish; see `nats::Nats::publish_retained`.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The other nodes, as heard through their heartbeats.
#[derive(Debug)]
pub(crate) struct Liveness {
    me: String,
    timeout: Duration,
    last_heard: HashMap<String, Instant>,
    dead: BTreeSet<String>,
}

impl Liveness {
    pub(crate) fn new(me: &str, timeout: Duration) -> Self {
        Liveness {
            me: me.to_string(),
            timeout,
            last_heard: HashMap::new(),
            dead: BTreeSet::new(),
        }
    }

    /// `node` heartbeated at `now`. True when it had been declared dead: it is back.
    pub(crate) fn heard(&mut self, node: &str, now: Instant) -> bool {
        if node == self.me {
            return false;
        }
        let last = self.last_heard.entry(node.to_string()).or_insert(now);
        *last = (*last).max(now);
        self.dead.remove(node)
    }

    /// Nodes that became dead by `now` (silent longer than the timeout), each reported
    /// once, in name order.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut newly = Vec::new();
        for (node, last) in &self.last_heard {
            if now.saturating_duration_since(*last) > self.timeout && !self.dead.contains(node) {
                newly.push(node.clone());
            }
        }
        newly.sort();
        self.dead.extend(newly.iter().cloned());
        newly
    }

    /// The nodes alive at `now`, this one included, in name order.
    pub(crate) fn alive(&self, now: Instant) -> Vec<String> {
        let mut alive: Vec<String> = self
            .last_heard
            .iter()
            .filter(|(_, last)| now.saturating_duration_since(**last) <= self.timeout)
            .map(|(node, _)| node.clone())
            .chain([self.me.clone()])
            .collect();
        alive.sort();
        alive.dedup();
        alive
    }
}

/// Where each user has devices, by node.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    nodes: HashMap<String, BTreeSet<String>>,
}

impl Presence {
    /// `user` has a device on `node`. True if that makes them online (first node).
    pub(crate) fn online(&mut self, user: &str, node: &str) -> bool {
        let nodes = self.nodes.entry(user.to_string()).or_default();
        nodes.insert(node.to_string()) && nodes.len() == 1
    }

    /// `user` has no device left on `node`. True if they are now offline everywhere.
    pub(crate) fn offline(&mut self, user: &str, node: &str) -> bool {
        let Some(nodes) = self.nodes.get_mut(user) else {
            return false;
        };
        if !nodes.remove(node) || !nodes.is_empty() {
            return false;
        }
        self.nodes.remove(user);
        true
    }

    /// `node` died: the users who are now offline everywhere, in name order. Users who
    /// also have a device on another node stay online.
    pub(crate) fn node_dead(&mut self, node: &str) -> Vec<String> {
        let mut gone: Vec<String> = Vec::new();
        self.nodes.retain(|user, nodes| {
            if nodes.remove(node) && nodes.is_empty() {
                gone.push(user.clone());
                return false;
            }
            true
        });
        gone.sort();
        gone
    }

    pub(crate) fn is_online(&self, user: &str) -> bool {
        self.nodes.contains_key(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[test]
    fn silent_node_dies_once_and_comes_back() {
        let t0 = Instant::now();
        let mut l = Liveness::new("a", TIMEOUT);
        l.heard("b", t0);
        l.heard("c", t0);
        assert!(
            l.expire(t0 + TIMEOUT).is_empty(),
            "exactly the timeout is alive"
        );
        l.heard("c", t0 + Duration::from_secs(5));
        assert_eq!(l.expire(t0 + TIMEOUT + Duration::from_millis(1)), ["b"]);
        assert!(l.expire(t0 + TIMEOUT * 2).contains(&"c".to_string()));
        assert!(l.expire(t0 + TIMEOUT * 3).is_empty(), "reported once");
        assert_eq!(l.alive(t0 + TIMEOUT * 3), ["a"]);

        assert!(l.heard("b", t0 + TIMEOUT * 3), "back from the dead");
        assert!(!l.heard("b", t0 + TIMEOUT * 3));
        assert_eq!(l.alive(t0 + TIMEOUT * 3), ["a", "b"]);
    }

    #[test]
    fn late_heartbeat_does_not_turn_back_the_clock() {
        let t0 = Instant::now();
        let mut l = Liveness::new("a", TIMEOUT);
        l.heard("b", t0 + Duration::from_secs(8));
        l.heard("b", t0);
        assert!(l.expire(t0 + Duration::from_secs(15)).is_empty());
    }

    #[test]
    fn this_node_is_never_judged() {
        let t0 = Instant::now();
        let mut l = Liveness::new("a", TIMEOUT);
        assert!(!l.heard("a", t0));
        assert!(l.expire(t0 + TIMEOUT * 5).is_empty());
        assert_eq!(l.alive(t0 + TIMEOUT * 5), ["a"]);
    }

    #[test]
    fn user_who_moved_to_another_node_stays_online() {
        let mut p = Presence::default();
        assert!(p.online("alice", "b"));
        assert!(p.online("bob", "b"));
        // b dies with alice's phone; alice has meanwhile connected to c.
        assert!(!p.online("alice", "c"), "already online");
        assert_eq!(p.node_dead("b"), ["bob"]);
        assert!(p.is_online("alice"));
        assert!(!p.is_online("bob"));
        assert!(p.node_dead("b").is_empty(), "nothing left on b");
    }

    #[test]
    fn last_device_anywhere_takes_the_user_offline() {
        let mut p = Presence::default();
        p.online("alice", "a");
        p.online("alice", "b");
        assert!(!p.offline("alice", "a"), "still on b");
        assert!(p.offline("alice", "b"));
        assert!(!p.offline("alice", "b"), "not online any more");
        assert!(!p.offline("carol", "a"), "never seen");
    }

    #[test]
    fn reconnect_after_node_death_is_online_again() {
        let mut p = Presence::default();
        p.online("alice", "b");
        assert_eq!(p.node_dead("b"), ["alice"]);
        assert!(p.online("alice", "c"), "a fresh online");
    }
}
