use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use super::{
    scheduler::{PauseReason, Tracker},
    ConnectionEvents,
};

pub struct Graveyard {
    connections: HashMap<String, SavedState>,
    /// ROOST PATCH: when saved sessions expire, soonest first. An entry whose session was
    /// resumed (or saved again with another deadline) is stale and skipped.
    expiries: BTreeSet<(Instant, String)>,
}

impl Graveyard {
    pub fn new() -> Graveyard {
        Graveyard {
            connections: HashMap::new(),
            expiries: BTreeSet::new(),
        }
    }

    /// ROOST PATCH: the soonest a saved session expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// ROOST PATCH: removes the sessions whose expiry is at or before `now` and returns
    /// them, for the router to drop what they held (their filters' readers).
    pub fn take_expired(&mut self, now: Instant) -> Vec<(String, SessionState)> {
        let mut expired = Vec::new();
        while let Some((at, _)) = self.expiries.first() {
            if *at > now {
                break;
            }
            let Some((at, id)) = self.expiries.pop_first() else {
                break;
            };
            let current = self.connections.get(&id).and_then(|s| s.expires_at);
            if current != Some(at) {
                continue;
            }
            if let Some(state) = self.connections.remove(&id).and_then(|s| s.session_state) {
                expired.push((id, state));
            }
        }
        expired
    }

    /// Add a new connection.
    /// Return tracker of previous connection if connection id already exists
    pub fn retrieve(&mut self, id: &str) -> Option<SavedState> {
        self.connections.remove(id)
    }

    /// Save connection tracker
    pub fn save_state(
        &mut self,
        mut tracker: Tracker,
        subscriptions: HashSet<String>,
        metrics: ConnectionEvents,
        unacked_pubrels: VecDeque<u16>,
        expires_at: Option<Instant>,
    ) {
        tracker.pause(PauseReason::Busy);
        let id = tracker.id.clone();

        let session_state = SessionState {
            tracker,
            subscriptions,
            unacked_pubrels,
        };

        if let Some(at) = expires_at {
            self.expiries.insert((at, id.clone()));
        }
        self.connections.insert(
            id,
            SavedState {
                session_state: Some(session_state),
                metrics,
                expires_at,
            },
        );
    }

    /// Save only metrics for connection
    pub fn save_metrics(&mut self, id: String, metrics: ConnectionEvents) {
        self.connections.insert(
            id,
            SavedState {
                session_state: None,
                metrics,
                expires_at: None,
            },
        );
    }
}

#[derive(Debug)]
pub struct SavedState {
    pub session_state: Option<SessionState>,
    pub metrics: ConnectionEvents,
    /// ROOST PATCH: when the saved session ends (see `Graveyard::take_expired`).
    pub expires_at: Option<Instant>,
}

#[derive(Debug)]
pub struct SessionState {
    pub tracker: Tracker,
    pub subscriptions: HashSet<String>,
    // used for pubrel in qos2
    pub unacked_pubrels: VecDeque<u16>,
}
