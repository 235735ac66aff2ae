//! One copy per message on a node, however many of its NATS subscriptions match.
//!
//! Why: NATS delivers a message once per matching subscription, and a node holding both
//! `…a.*` and `…a.>` gets two copies of `…a.b`. The copies arrive close together, so a
//! bounded window of recently seen `(origin, seq)` pairs recognises them.

use std::collections::{HashSet, VecDeque};

/// Recently seen messages, at most `capacity`, oldest forgotten first.
#[derive(Debug)]
pub(crate) struct Dedup {
    capacity: usize,
    seen: HashSet<(String, u64)>,
    order: VecDeque<(String, u64)>,
}

impl Dedup {
    pub(crate) fn new(capacity: usize) -> Self {
        Dedup {
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether this is the first copy of `origin`'s message `seq` within the window.
    pub(crate) fn first(&mut self, origin: &str, seq: u64) -> bool {
        let key = (origin.to_string(), seq);
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_copy_is_dropped() {
        let mut d = Dedup::new(8);
        assert!(d.first("a", 1));
        assert!(!d.first("a", 1));
        assert!(d.first("b", 1), "another origin's 1 is another message");
        assert!(d.first("a", 2));
    }

    #[test]
    fn window_is_bounded() {
        let mut d = Dedup::new(2);
        assert!(d.first("a", 1));
        assert!(d.first("a", 2));
        assert!(d.first("a", 3));
        assert_eq!(d.seen.len(), 2);
        assert!(d.first("a", 1), "forgotten, outside the window");
        assert!(!d.first("a", 3));
    }
}
