//! Retained messages: where a client may leave one, and how many each user may keep.
//!
//! Under `im/` only presence has a use for retain: a retained DM would be delivered again on
//! every subscribe and its recipient could not clear it, so retain is refused on every other
//! `im/` topic. Elsewhere the router keeps retained messages in memory, for ever, so each user
//! keeps at most `limits.max_retained_per_user` topics; deleting one (an empty retained
//! payload) is always allowed and frees its place.
//!
//! The router knows no owners, so the front-end remembers them: per retained topic (as a
//! keyed 64-bit hash, not the topic itself, which may be 64 KiB long) the user who set it, and
//! per user a count. That is 16 bytes per retained message, bounded by the per-user limit.

use crate::metrics;
use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};
use tracing::info;

/// Whether a publish to `topic` may be retained at all (docs/protocol.md section 3).
pub(crate) fn may_retain(topic: &str) -> bool {
    const NEVER: [&str; 5] = ["im/dm/", "im/grp/", "im/sig/", "im/req/", "im/sys/"];
    !NEVER.iter().any(|prefix| topic.starts_with(prefix))
}

/// Why a retained publish is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetainRefusal {
    /// A topic where the protocol has no use for retain.
    NotAllowed,
    /// The user holds `limits.max_retained_per_user` retained topics already.
    QuotaExceeded,
}

impl RetainRefusal {
    /// The `code` of the `error` notice.
    pub(crate) fn code(self) -> &'static str {
        match self {
            RetainRefusal::NotAllowed => "retain_not_allowed",
            RetainRefusal::QuotaExceeded => "quota_exceeded",
        }
    }

    /// The `message` of the `error` notice.
    pub(crate) fn message(self, topic: &str) -> String {
        match self {
            RetainRefusal::NotAllowed => format!("retain is not allowed on {topic}"),
            RetainRefusal::QuotaExceeded => {
                format!("too many retained messages; not retained: {topic}")
            }
        }
    }
}

/// Who holds which retained topics outside `im/`.
pub(crate) struct Retained {
    max_per_user: usize,
    inner: Mutex<Owners>,
}

struct Owners {
    hasher: RandomState,
    /// Topic hash -> user hash.
    owner: HashMap<u64, u64>,
    /// User hash -> retained topics held.
    held: HashMap<u64, usize>,
}

impl Retained {
    pub(crate) fn new(max_per_user: usize) -> Retained {
        Retained {
            max_per_user,
            inner: Mutex::new(Owners {
                hasher: RandomState::new(),
                owner: HashMap::new(),
                held: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Owners> {
        // Plain maps: still consistent enough after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides a retained publish of `payload` to `topic` by `user`, and books it when it is
    /// let through. Logs and counts refusals.
    pub(crate) fn admit(
        &self,
        user: &str,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), RetainRefusal> {
        let verdict = self.decide(user, topic, payload);
        if let Err(refusal) = verdict {
            match refusal {
                RetainRefusal::NotAllowed => metrics::acl_denied("retain"),
                RetainRefusal::QuotaExceeded => metrics::limit_refused("retained"),
            }
            info!(topic, code = refusal.code(), "retained publish refused");
        }
        verdict
    }

    fn decide(&self, user: &str, topic: &str, payload: &[u8]) -> Result<(), RetainRefusal> {
        if !may_retain(topic) {
            return Err(RetainRefusal::NotAllowed);
        }
        if topic.starts_with("im/") {
            // Presence: one topic per user, not counted.
            return Ok(());
        }
        let mut owners = self.lock();
        let topic_key = owners.hasher.hash_one(topic);
        let user_key = owners.hasher.hash_one(user);
        let Owners { owner, held, .. } = &mut *owners;
        if payload.is_empty() {
            // A delete: always allowed; it frees the place of whoever set the topic.
            if let Some(previous) = owner.remove(&topic_key) {
                release(held, previous);
            }
            return Ok(());
        }
        match owner.entry(topic_key) {
            Entry::Occupied(e) if *e.get() == user_key => Ok(()),
            entry => {
                let mine = held.get(&user_key).copied().unwrap_or(0);
                if mine >= self.max_per_user {
                    return Err(RetainRefusal::QuotaExceeded);
                }
                *held.entry(user_key).or_insert(0) += 1;
                match entry {
                    Entry::Occupied(mut e) => {
                        // Taken over from another user: the place is theirs no more.
                        let previous = e.insert(user_key);
                        release(held, previous);
                    }
                    Entry::Vacant(e) => {
                        e.insert(user_key);
                    }
                }
                Ok(())
            }
        }
    }
}

fn release(held: &mut HashMap<u64, usize>, user_key: u64) {
    if let Entry::Occupied(mut e) = held.entry(user_key) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_only_where_the_protocol_uses_it() {
        for topic in [
            "im/dm/bob/alice",
            "im/grp/g/alice",
            "im/sig/dm/bob/alice",
            "im/req/alice",
            "im/sys/alice",
        ] {
            assert!(!may_retain(topic), "{topic}");
        }
        for topic in ["im/presence/alice", "devices/alice/state", "im"] {
            assert!(may_retain(topic), "{topic}");
        }
    }

    #[test]
    fn bounded_per_user_with_deletes_and_takeovers() {
        let r = Retained::new(2);
        assert_eq!(r.decide("a", "t/1", b"x"), Ok(()));
        assert_eq!(r.decide("a", "t/2", b"x"), Ok(()));
        assert_eq!(
            r.decide("a", "t/3", b"x"),
            Err(RetainRefusal::QuotaExceeded)
        );
        // Replacing one's own topic costs nothing; presence is not counted.
        assert_eq!(r.decide("a", "t/1", b"y"), Ok(()));
        assert_eq!(r.decide("a", "im/presence/a", b"y"), Ok(()));
        // Deletes always pass, even of unknown topics, and free a place.
        assert_eq!(r.decide("a", "t/9", b""), Ok(()));
        assert_eq!(r.decide("a", "t/2", b""), Ok(()));
        assert_eq!(r.decide("a", "t/3", b"x"), Ok(()));
        // b takes t/1 over: a's place is freed, b's taken.
        assert_eq!(r.decide("b", "t/1", b"z"), Ok(()));
        assert_eq!(r.decide("a", "t/4", b"x"), Ok(()));
        assert_eq!(
            r.decide("a", "t/5", b"x"),
            Err(RetainRefusal::QuotaExceeded)
        );
        // b deletes a's t/3: a's place is freed.
        assert_eq!(r.decide("b", "t/3", b""), Ok(()));
        assert_eq!(r.decide("a", "t/5", b"x"), Ok(()));
        assert_eq!(r.lock().owner.len(), 3);
    }

    #[test]
    fn zero_means_none() {
        let r = Retained::new(0);
        assert_eq!(
            r.decide("a", "t/1", b"x"),
            Err(RetainRefusal::QuotaExceeded)
        );
        assert_eq!(r.decide("a", "t/1", b""), Ok(()));
        assert_eq!(r.decide("a", "im/presence/a", b"x"), Ok(()));
    }
}
