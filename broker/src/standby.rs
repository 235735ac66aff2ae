//! Elastic standby (`[cluster] standby = true`): when a standby node takes users, and when
//! it gives them back. Pure decisions, no I/O: the caller feeds in the other nodes' loads
//! (from their heartbeats), this node's connections and the time, and carries out what
//! comes back (the agent check says `ready` or `drain`, a release disconnects the users).
//!
//! Why a separate, I/O-free module: the rules are where flapping and stuck nodes come
//! from, so they are unit-tested on their own, with a fake clock.
//!
//! The load is connections per *active* node (a node serving users: not a standby at
//! rest). A standby at rest activates once that load reaches `scale_up_at`, or when no
//! active node is alive at all. An active standby releases once the load the other
//! active nodes would carry without it (everyone's connections over one node fewer) has
//! stayed below `scale_down_at` for `scale_down_after`: counting it that way, releasing
//! never pushes the others straight back over `scale_up_at` (the config requires
//! `scale_down_at < scale_up_at`), so the node does not flap.

use std::time::{Duration, Instant};

/// The thresholds from `[cluster]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Thresholds {
    /// Connections per active node at which a standby starts taking users.
    pub scale_up_at: u32,
    /// Connections per active node (without this one) under which it gives them back...
    pub scale_down_at: u32,
    /// ...once it has stayed under for this long.
    pub scale_down_after: Duration,
}

/// Another live node, as its last heartbeat describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeLoad {
    pub connections: usize,
    /// A standby at rest (or releasing): it takes no new users and does not count.
    pub standby: bool,
}

/// Where the standby node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// At rest: joined, reporting `drain`, taking no users.
    Resting,
    /// Serving like any node (`ready`).
    Active,
    /// Giving its users back (`drain`, disconnecting them over the drain period).
    Releasing,
}

/// A change the caller must carry out, with the load that caused it (for the log).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Change {
    /// Start taking users: report `ready`. `load` is `None` when no active node is alive.
    Activate { load: Option<f64> },
    /// Give the users back: report `drain`, disconnect them, then call [`Standby::released`].
    Release { load: f64 },
}

/// The standby's state machine.
#[derive(Debug)]
pub(crate) struct Standby {
    thresholds: Thresholds,
    phase: Phase,
    /// Since when the load has been under `scale_down_at` (while active).
    quiet_since: Option<Instant>,
}

impl Standby {
    pub fn new(thresholds: Thresholds) -> Standby {
        Standby {
            thresholds,
            phase: Phase::Resting,
            quiet_since: None,
        }
    }

    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the node takes new users (the agent check says `ready`).
    #[cfg(test)]
    pub fn serving(&self) -> bool {
        self.phase == Phase::Active
    }

    /// One look at the cluster: `others` are the other live nodes, `own` this node's
    /// connections, `now` the time. Returns what to do, if anything.
    pub fn step(&mut self, others: &[NodeLoad], own: usize, now: Instant) -> Option<Change> {
        let active: Vec<usize> = others
            .iter()
            .filter(|n| !n.standby)
            .map(|n| n.connections)
            .collect();
        let others_total: usize = active.iter().sum();
        match self.phase {
            Phase::Resting => {
                let load = (!active.is_empty()).then(|| others_total as f64 / active.len() as f64);
                let activate = match load {
                    None => true,
                    Some(load) => load >= f64::from(self.thresholds.scale_up_at),
                };
                activate.then(|| {
                    self.phase = Phase::Active;
                    self.quiet_since = None;
                    Change::Activate { load }
                })
            }
            Phase::Active => {
                if active.is_empty() {
                    // Nobody to hand the users to.
                    self.quiet_since = None;
                    return None;
                }
                let without_me = (others_total + own) as f64 / active.len() as f64;
                if without_me >= f64::from(self.thresholds.scale_down_at) {
                    self.quiet_since = None;
                    return None;
                }
                let since = *self.quiet_since.get_or_insert(now);
                (now.duration_since(since) >= self.thresholds.scale_down_after).then(|| {
                    self.phase = Phase::Releasing;
                    self.quiet_since = None;
                    Change::Release { load: without_me }
                })
            }
            Phase::Releasing => None,
        }
    }

    /// The release is over (its users are gone): back at rest.
    pub fn released(&mut self) {
        if self.phase == Phase::Releasing {
            self.phase = Phase::Resting;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        scale_up_at: 100,
        scale_down_at: 40,
        scale_down_after: Duration::from_secs(60),
    };

    fn active(connections: usize) -> NodeLoad {
        NodeLoad {
            connections,
            standby: false,
        }
    }

    fn resting(connections: usize) -> NodeLoad {
        NodeLoad {
            connections,
            standby: true,
        }
    }

    #[test]
    fn rests_until_the_load_per_active_node_reaches_scale_up_at() {
        let mut s = Standby::new(T);
        let t = Instant::now();
        assert_eq!(s.phase(), Phase::Resting);
        assert!(!s.serving());
        // 99 per active node; the other standby's users do not count, nor does it.
        assert_eq!(s.step(&[active(99), active(99), resting(500)], 0, t), None);
        assert!(!s.serving());
        assert_eq!(
            s.step(&[active(100), active(100), resting(0)], 0, t),
            Some(Change::Activate { load: Some(100.0) })
        );
        assert!(s.serving());
        // Once active, a high load changes nothing.
        assert_eq!(s.step(&[active(500)], 0, t), None);
    }

    #[test]
    fn activates_when_no_active_node_is_alive() {
        let mut s = Standby::new(T);
        let t = Instant::now();
        assert_eq!(s.step(&[], 0, t), Some(Change::Activate { load: None }));
        let mut s = Standby::new(T);
        assert_eq!(
            s.step(&[resting(3)], 0, t),
            Some(Change::Activate { load: None })
        );
    }

    #[test]
    fn releases_after_scale_down_after_below_scale_down_at_without_it() {
        let mut s = Standby::new(T);
        let t0 = Instant::now();
        s.step(&[active(100), active(100)], 0, t0);
        assert!(s.serving());
        // Everyone's load on the two others would be (30 + 30 + 19) / 2 = 39.5 < 40.
        let quiet = [active(30), active(30)];
        assert_eq!(s.step(&quiet, 19, t0), None);
        assert_eq!(s.step(&quiet, 19, t0 + Duration::from_secs(59)), None);
        assert_eq!(
            s.step(&quiet, 19, t0 + Duration::from_secs(60)),
            Some(Change::Release { load: 39.5 })
        );
        assert_eq!(s.phase(), Phase::Releasing);
        assert!(!s.serving());
        // Nothing more until the release is over; then at rest, and it can come back.
        assert_eq!(
            s.step(&[active(900)], 0, t0 + Duration::from_secs(61)),
            None
        );
        s.released();
        assert_eq!(s.phase(), Phase::Resting);
        assert!(matches!(
            s.step(&[active(900)], 0, t0 + Duration::from_secs(62)),
            Some(Change::Activate { .. })
        ));
    }

    #[test]
    fn a_busy_moment_restarts_the_quiet_clock() {
        let mut s = Standby::new(T);
        let t0 = Instant::now();
        s.step(&[active(100)], 0, t0);
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(s.step(&[active(10)], 10, at(1)), None);
        // 40 without it: not below scale_down_at, the clock stops.
        assert_eq!(s.step(&[active(20)], 20, at(50)), None);
        assert_eq!(s.step(&[active(10)], 10, at(70)), None);
        assert_eq!(s.step(&[active(10)], 10, at(129)), None);
        assert_eq!(
            s.step(&[active(10)], 10, at(130)),
            Some(Change::Release { load: 20.0 })
        );
    }

    #[test]
    fn keeps_its_users_when_it_is_the_only_active_node() {
        let mut s = Standby::new(T);
        let t0 = Instant::now();
        s.step(&[], 0, t0);
        assert!(s.serving());
        // The other nodes are gone or at rest: nobody to give the users to.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(s.step(&[], 1, t0), None);
        assert_eq!(s.step(&[resting(0)], 1, later), None);
        assert!(s.serving());
    }

    #[test]
    fn released_outside_a_release_changes_nothing() {
        let mut s = Standby::new(T);
        s.released();
        assert_eq!(s.phase(), Phase::Resting);
        s.step(&[], 0, Instant::now());
        s.released();
        assert_eq!(s.phase(), Phase::Active);
    }

    #[test]
    fn no_flapping_between_up_and_down() {
        // Three nodes near scale_up_at: the standby activates, takes a share of the
        // users (load per node falls to 75), and does not release: without it the others
        // would be back at 100, not under 40.
        let mut s = Standby::new(T);
        let t0 = Instant::now();
        s.step(&[active(100), active(100), active(100)], 0, t0);
        let spread = [active(75), active(75), active(75)];
        for minute in 1..=10 {
            assert_eq!(
                s.step(&spread, 75, t0 + Duration::from_secs(60 * minute)),
                None
            );
        }
        assert!(s.serving());
    }
}
