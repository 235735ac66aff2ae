//! Fair scheduling of history requests: one user's flood of requests must not delay
//! anyone else's. Requests wait in one bounded queue per user and are served round robin
//! (one request of each waiting user in turn); each user also has a token bucket, so a
//! client over its rate is refused at once instead of queueing work for later. No I/O:
//! the service asks it what to do next.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Requests one user may have waiting; more are refused.
pub(crate) const MAX_QUEUED_PER_USER: usize = 16;
/// Requests waiting in all, whoever sent them; more are refused.
const MAX_QUEUED: usize = 4096;
/// Token buckets kept before the full (idle) ones are forgotten.
const MAX_BUCKETS: usize = 4096;

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over the user's requests per second.
    Rate,
    /// The user (or everyone together) has too many requests waiting.
    Queue,
}

/// Per-user queues served round robin, with a per-user rate limit.
pub(crate) struct Fair<R> {
    queues: HashMap<String, VecDeque<R>>,
    /// Users with waiting requests, in serving order.
    turn: VecDeque<String>,
    queued: usize,
    buckets: HashMap<String, Bucket>,
    /// Requests per second per user, which is also the burst a bucket holds.
    rate: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<R> Fair<R> {
    pub(crate) fn new(requests_per_second: u32) -> Fair<R> {
        Fair {
            queues: HashMap::new(),
            turn: VecDeque::new(),
            queued: 0,
            buckets: HashMap::new(),
            rate: f64::from(requests_per_second.max(1)),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Queues `request` of `user`, or says why not (and hands the request back).
    pub(crate) fn push(
        &mut self,
        user: &str,
        request: R,
        now: Instant,
    ) -> Result<(), (Refusal, R)> {
        let waiting = self.queues.get(user).map_or(0, VecDeque::len);
        if waiting >= MAX_QUEUED_PER_USER || self.queued >= MAX_QUEUED {
            return Err((Refusal::Queue, request));
        }
        if !self.take_token(user, now) {
            return Err((Refusal::Rate, request));
        }
        let queue = self.queues.entry(user.to_owned()).or_default();
        if queue.is_empty() {
            self.turn.push_back(user.to_owned());
        }
        queue.push_back(request);
        self.queued += 1;
        crate::metrics::queue_depth(self.queued);
        Ok(())
    }

    /// The next request to serve: the oldest of the user whose turn it is.
    pub(crate) fn pop(&mut self) -> Option<(String, R)> {
        let user = self.turn.pop_front()?;
        let queue = self.queues.get_mut(&user)?;
        let request = queue.pop_front()?;
        self.queued -= 1;
        crate::metrics::queue_depth(self.queued);
        if queue.is_empty() {
            self.queues.remove(&user);
        } else {
            self.turn.push_back(user.clone());
        }
        Some((user, request))
    }

    fn take_token(&mut self, user: &str, now: Instant) -> bool {
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(user) {
            let rate = self.rate;
            // A full bucket is the same as none.
            self.buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < rate);
        }
        let rate = self.rate;
        let bucket = self.buckets.entry(user.to_owned()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn users_take_turns() {
        let mut fair = Fair::new(100);
        let now = Instant::now();
        for n in 0..5 {
            fair.push("heavy", n, now).unwrap();
        }
        fair.push("light", 100, now).unwrap();
        let order: Vec<(String, i32)> = std::iter::from_fn(|| fair.pop()).collect();
        let users: Vec<&str> = order.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(
            users,
            ["heavy", "light", "heavy", "heavy", "heavy", "heavy"]
        );
        let heavy: Vec<i32> = order
            .iter()
            .filter(|(u, _)| u == "heavy")
            .map(|(_, r)| *r)
            .collect();
        assert_eq!(heavy, [0, 1, 2, 3, 4], "each user's requests in order");
        assert!(fair.is_empty());
    }

    #[test]
    fn queues_are_bounded_per_user() {
        let mut fair = Fair::new(1000);
        let now = Instant::now();
        for n in 0..MAX_QUEUED_PER_USER {
            fair.push("heavy", n, now).unwrap();
        }
        assert_eq!(fair.push("heavy", 99, now), Err((Refusal::Queue, 99)));
        fair.push("light", 0, now).unwrap();
        fair.pop();
        fair.push("heavy", 100, now).unwrap();
    }

    #[test]
    fn rate_is_limited_per_user_and_refills() {
        let mut fair = Fair::new(2);
        let now = Instant::now();
        fair.push("a", 1, now).unwrap();
        fair.push("a", 2, now).unwrap();
        assert_eq!(fair.push("a", 3, now), Err((Refusal::Rate, 3)));
        fair.push("b", 1, now).unwrap();
        let later = now + Duration::from_millis(500);
        fair.push("a", 4, later).unwrap();
        assert_eq!(fair.push("a", 5, later), Err((Refusal::Rate, 5)));
    }
}
