//! Who is signed in on this node, per user, so that an account disabled or deleted while
//! its user is connected does not stay connected (issue 13).
//!
//! Each signed-in connection registers here with a one-shot channel it polls in its loop;
//! ending a user's connections sends on theirs, and the connection closes itself (v5
//! DISCONNECT 0x98, administrative action, with a reason string). The admin API ends them
//! at once; `roost user disable|del` runs in another process (maybe on another machine), so
//! the node also rechecks its signed-in users against the store every
//! `accounts.recheck_interval` ([`super::Accounts::recheck`]). Only the node knows its
//! connections: in a cluster, each node rechecks its own.
//!
//! Which connections end: a disabled user's, all of them (tokens included; their token
//! sign-ins are refused while the account is disabled); a deleted user's, those signed in
//! with the account's password (a token stays valid until it expires: a token user need
//! not have an account at all).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Why the node ended a user's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Disabled,
    Deleted,
}

impl Ended {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Ended::Disabled => "account disabled",
            Ended::Deleted => "account deleted",
        }
    }
}

struct Entry {
    /// The connection's registry epoch (unique per sign-in).
    epoch: u64,
    /// Signed in with the account password (not a token).
    password: bool,
    end: oneshot::Sender<Ended>,
}

#[derive(Default)]
pub(crate) struct Connected {
    users: Mutex<HashMap<String, Vec<Entry>>>,
    /// Users the store had disabled at the last look: their token sign-ins are refused.
    disabled: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps: still usable after a panic elsewhere.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Connected {
    /// Registers a connection of `user`; the receiver resolves when the node ends it.
    pub(crate) fn add(&self, user: &str, epoch: u64, password: bool) -> oneshot::Receiver<Ended> {
        let (end, ended) = oneshot::channel();
        lock(&self.users)
            .entry(user.to_owned())
            .or_default()
            .push(Entry {
                epoch,
                password,
                end,
            });
        ended
    }

    /// The connection `epoch` of `user` is over.
    pub(crate) fn remove(&self, user: &str, epoch: u64) {
        let mut users = lock(&self.users);
        if let Some(entries) = users.get_mut(user) {
            entries.retain(|e| e.epoch != epoch);
            if entries.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Users with at least one connection; `password_only`: those signed in with a password.
    pub(crate) fn users(&self, password_only: bool) -> Vec<String> {
        lock(&self.users)
            .iter()
            .filter(|(_, entries)| !password_only || entries.iter().any(|e| e.password))
            .map(|(user, _)| user.clone())
            .collect()
    }

    /// Ends `user`'s connections as the module doc says; how many.
    pub(crate) fn end(&self, user: &str, why: Ended) -> usize {
        if why == Ended::Disabled {
            lock(&self.disabled).insert(user.to_owned());
        }
        let mut users = lock(&self.users);
        let Some(entries) = users.get_mut(user) else {
            return 0;
        };
        let (gone, kept): (Vec<Entry>, Vec<Entry>) = entries
            .drain(..)
            .partition(|e| why == Ended::Disabled || e.password);
        *entries = kept;
        if entries.is_empty() {
            users.remove(user);
        }
        let count = gone.len();
        for entry in gone {
            // A connection that is closing anyway has dropped its receiver: nothing to do.
            let _ = entry.end.send(why);
        }
        count
    }

    /// The store's disabled users, as of now (see [`Connected::is_disabled`]); whether
    /// that changed anything.
    pub(crate) fn set_disabled(&self, users: HashSet<String>) -> bool {
        let mut disabled = lock(&self.disabled);
        let changed = *disabled != users;
        *disabled = users;
        changed
    }

    /// `user` was enabled again (admin API): their sign-ins are taken at once.
    pub(crate) fn enabled(&self, user: &str) {
        lock(&self.disabled).remove(user);
    }

    /// Whether the store had `user` disabled at the last look.
    pub(crate) fn is_disabled(&self, user: &str) -> bool {
        lock(&self.disabled).contains(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabling_ends_every_connection_deleting_the_password_ones() {
        let c = Connected::default();
        let mut token = c.add("alice", 1, false);
        let mut password = c.add("alice", 2, true);
        let mut bob = c.add("bob", 3, true);
        assert_eq!(c.users(true).len(), 2);

        assert_eq!(c.end("alice", Ended::Deleted), 1);
        assert_eq!(password.try_recv(), Ok(Ended::Deleted));
        assert!(token.try_recv().is_err(), "a token sign-in stays");
        assert!(!c.is_disabled("alice"));

        assert_eq!(c.end("alice", Ended::Disabled), 1);
        assert_eq!(token.try_recv(), Ok(Ended::Disabled));
        assert!(c.is_disabled("alice"));
        assert_eq!(c.users(false), ["bob"]);

        c.remove("bob", 3);
        assert!(c.users(false).is_empty());
        assert_eq!(c.end("bob", Ended::Disabled), 0);
        assert!(bob.try_recv().is_err());
        c.enabled("alice");
        assert!(!c.is_disabled("alice"));
    }
}
