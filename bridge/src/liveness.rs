//! Which nodes are alive, as plain data.
//!
//! Why: presence must survive a node killed with -9. Every node heartbeats into a NATS KV
//! bucket; each node judges the others by when *it* last heard them (its own monotonic
//! clock, so no clock agreement between Pis is needed). A node silent longer than the
//! judge's timeout is dead, once; a heartbeat brings it back. `members` judges with two
//! heartbeat periods (two thirds of `cluster.node_timeout`), so that a dead node's users
//! are offline within `node_timeout` of its last heartbeat.
//!
//! A node that drains takes its heartbeat away first ([`Liveness::left`]): it is
//! forgotten, not judged. Whose users go offline when a node dies is `presence`'s part.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// The other nodes, as heard through their heartbeats.
#[derive(Debug)]
pub(crate) struct Liveness {
    me: String,
    timeout: Duration,
    last_heard: HashMap<String, Instant>,
    /// The revision of each node's heartbeat entry last seen (this node's too).
    revisions: HashMap<String, u64>,
    dead: BTreeSet<String>,
}

impl Liveness {
    pub(crate) fn new(me: &str, timeout: Duration) -> Self {
        Liveness {
            me: me.to_string(),
            timeout,
            last_heard: HashMap::new(),
            revisions: HashMap::new(),
            dead: BTreeSet::new(),
        }
    }

    /// Whether `node`'s heartbeat entry at `revision` was seen already, as a watch made
    /// again delivers each node's last entry again: that is no sign of life (a node dead
    /// since would come back, a node that cannot hear itself would seem to). Notes the
    /// revision.
    pub(crate) fn replayed(&mut self, node: &str, revision: u64) -> bool {
        self.revisions.insert(node.to_string(), revision) == Some(revision)
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

    /// `node` took its heartbeat away (drained): forgotten, never judged dead.
    pub(crate) fn left(&mut self, node: &str) {
        self.last_heard.remove(node);
        self.revisions.remove(node);
        self.dead.remove(node);
    }

    /// This node could not hear anyone until `now` (its own NATS connection was down): the
    /// silence is not the others' fault, so their clocks start again from `now`.
    pub(crate) fn excuse(&mut self, now: Instant) {
        for last in self.last_heard.values_mut() {
            *last = (*last).max(now);
        }
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

    /// The nodes judged dead and not back, in name order.
    pub(crate) fn dead(&self) -> Vec<String> {
        self.dead.iter().cloned().collect()
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
    fn a_heartbeat_seen_again_is_no_sign_of_life() {
        let t0 = Instant::now();
        let mut l = Liveness::new("a", TIMEOUT);
        assert!(!l.replayed("b", 7));
        l.heard("b", t0);
        assert_eq!(l.expire(t0 + TIMEOUT * 2), ["b"]);
        // The watch was made again: b's last entry comes again, not a new heartbeat.
        assert!(l.replayed("b", 7));
        assert!(!l.replayed("b", 8), "a new heartbeat");
        assert!(l.heard("b", t0 + TIMEOUT * 2), "back from the dead");
        assert!(!l.replayed("a", 3) && l.replayed("a", 3), "this node's too");
        l.left("b");
        assert!(!l.replayed("b", 8), "forgotten with the node");
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
    fn silence_while_this_node_was_cut_off_is_excused() {
        let t0 = Instant::now();
        let mut l = Liveness::new("a", TIMEOUT);
        l.heard("b", t0);
        l.excuse(t0 + TIMEOUT * 2);
        assert!(l.expire(t0 + TIMEOUT * 2).is_empty());
        assert_eq!(l.expire(t0 + TIMEOUT * 3 + Duration::from_millis(1)), ["b"]);
    }

    #[test]
    fn a_node_that_left_is_never_judged_dead() {
        let t0 = Instant::now();
        let mut l = Liveness::new("a", TIMEOUT);
        l.heard("b", t0);
        l.left("b");
        assert!(l.expire(t0 + TIMEOUT * 2).is_empty());
        assert_eq!(l.alive(t0), ["a"]);
        l.heard("b", t0 + TIMEOUT * 3);
        assert_eq!(l.alive(t0 + TIMEOUT * 3), ["a", "b"], "joined again");
    }
}
