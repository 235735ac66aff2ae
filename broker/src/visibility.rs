//! Presence visibility, `[presence] visibility = "groups"` (the default): a user sees the
//! presence of the users who share a group or a conversation with them, so that a school
//! does not show every pupil's presence to everyone (docs/protocol.md section 3).
//!
//! The ACL asks [`Scope::sees`] once per delivery of someone else's presence (see
//! `roost_auth::PresenceScope`), so the answer comes from memory, never from the database:
//!
//! - **Contacts** of each user signed in on this node: the other party of each of their
//!   DMs, the users the history store knows in their groups (who sent to or read them),
//!   and the account store's members of their groups ([`roost_history::Store::contacts`],
//!   at most `MAX_CONTACTS`). Loaded at sign-in, before the connection gets anything, and
//!   again in the background when older than [`REFRESH`], so a conversation started
//!   meanwhile counts within that time (at the next presence change of that user). Kept
//!   while the user has a connection here: bounded by the connections.
//! - **Groups seen**: the token (or account) groups of the users who signed in on this
//!   node lately, at most [`MAX_SEEN`] users, so a group member who never wrote to the
//!   group is seen as soon as they sign in here.
//!
//! A user shares a group with a viewer when one of the viewer's token groups is one of
//! theirs by either source. A store that does not answer at sign-in leaves the contacts
//! empty (groups seen still count) until the next refresh: it errs towards not showing.

use crate::history::History;
use roost_auth::{Identity, PresenceScope};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::warn;

/// Contacts older than this are loaded again (in the background) when next asked about.
pub(crate) const REFRESH: Duration = Duration::from_secs(30);
/// Users whose groups are remembered.
pub(crate) const MAX_SEEN: usize = 100_000;
/// How long a sign-in waits for the store's answer.
const LOAD_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) struct Scope {
    history: History,
    /// Per user signed in on this node.
    contacts: Mutex<HashMap<String, Contacts>>,
    /// Groups of users who signed in on this node lately.
    seen: Mutex<HashMap<String, Arc<[String]>>>,
}

#[derive(Debug)]
struct Contacts {
    users: Arc<HashSet<String>>,
    loaded: Instant,
    /// A background load is running.
    loading: bool,
    /// Connections of this user on this node.
    connections: usize,
    /// The user's token groups (for the background load).
    groups: Arc<[String]>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Scope {
    pub(crate) fn new(history: History) -> Arc<Scope> {
        Arc::new(Scope {
            history,
            contacts: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// `who` signs in: remember their groups, and have their contacts ready before the
    /// connection takes any delivery.
    pub(crate) async fn signed_in(self: &Arc<Self>, who: &Identity) {
        let groups: Arc<[String]> = who.groups.clone().into();
        {
            let mut seen = lock(&self.seen);
            if seen.len() >= MAX_SEEN && !seen.contains_key(&who.user) {
                // Any one goes: a user who signs in again is remembered again.
                if let Some(old) = seen.keys().next().cloned() {
                    seen.remove(&old);
                }
            }
            seen.insert(who.user.clone(), groups.clone());
        }
        let fresh = {
            let mut contacts = lock(&self.contacts);
            match contacts.get_mut(&who.user) {
                Some(c) => {
                    c.connections += 1;
                    c.groups = groups.clone();
                    c.loaded.elapsed() < REFRESH
                }
                None => {
                    contacts.insert(
                        who.user.clone(),
                        Contacts {
                            users: Arc::default(),
                            // Stale: loaded below, or by the next question.
                            loaded: Instant::now() - REFRESH,
                            loading: false,
                            connections: 1,
                            groups: groups.clone(),
                        },
                    );
                    false
                }
            }
        };
        if !fresh {
            let users = self.load(&who.user, &groups).await;
            self.store(&who.user, users);
        }
    }

    /// A connection of `user` ended.
    pub(crate) fn signed_out(&self, user: &str) {
        let mut contacts = lock(&self.contacts);
        if let Some(c) = contacts.get_mut(user) {
            c.connections = c.connections.saturating_sub(1);
            if c.connections == 0 {
                contacts.remove(user);
            }
        }
    }

    async fn load(&self, user: &str, groups: &[String]) -> Option<HashSet<String>> {
        let store = self.history.get()?;
        match tokio::time::timeout(LOAD_TIMEOUT, store.contacts(user, groups)).await {
            Ok(Ok(users)) => Some(users),
            Ok(Err(e)) => {
                warn!(user, error = %e, "presence visibility: contacts not loaded; retrying later");
                None
            }
            Err(_) => {
                warn!(
                    user,
                    "presence visibility: contacts not loaded in time; retrying later"
                );
                None
            }
        }
    }

    /// Keeps what a load found (nothing when it failed: tried again at the next question).
    fn store(&self, user: &str, users: Option<HashSet<String>>) {
        if let Some(c) = lock(&self.contacts).get_mut(user) {
            c.loading = false;
            if let Some(users) = users {
                c.users = Arc::new(users);
                c.loaded = Instant::now();
            }
        }
    }

    /// Starts a background load of `user`'s contacts unless one runs.
    fn refresh(self: &Arc<Self>, user: &str, c: &mut Contacts) {
        if c.loading {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        c.loading = true;
        let (scope, user, groups) = (self.clone(), user.to_owned(), c.groups.clone());
        runtime.spawn(async move {
            let users = scope.load(&user, &groups).await;
            scope.store(&user, users);
        });
    }

    fn shares_group(&self, viewer: &Identity, user: &str) -> bool {
        lock(&self.seen)
            .get(user)
            .is_some_and(|groups| groups.iter().any(|g| viewer.is_member(g)))
    }
}

/// The ACL's view of a [`Scope`] (the scope needs `Arc<Self>` to refresh).
#[derive(Debug)]
pub(crate) struct AclScope(pub(crate) Arc<Scope>);

impl PresenceScope for AclScope {
    fn sees(&self, viewer: &Identity, user: &str) -> bool {
        if viewer.user == user {
            return true;
        }
        let scope = &self.0;
        let contact = {
            let mut contacts = lock(&scope.contacts);
            match contacts.get_mut(&viewer.user) {
                Some(c) => {
                    if c.loaded.elapsed() >= REFRESH {
                        scope.refresh(&viewer.user, c);
                    }
                    c.users.contains(user)
                }
                None => false,
            }
        };
        contact || scope.shares_group(viewer, user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_auth::Role;

    fn who(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            role: Role::User,
            expires_at: u64::MAX,
        }
    }

    #[tokio::test]
    async fn groups_seen_at_sign_in_count_and_strangers_do_not() {
        // No store at all: only the groups seen decide.
        let scope = Scope::new(History::default());
        let acl = AclScope(scope.clone());
        let alice = who("alice", &["class-a"]);
        let bob = who("bob", &["class-a", "chess"]);
        let carol = who("carol", &["class-b"]);
        for w in [&alice, &bob, &carol] {
            scope.signed_in(w).await;
        }
        assert!(acl.sees(&alice, "alice"));
        assert!(acl.sees(&alice, "bob"));
        assert!(acl.sees(&bob, "alice"));
        assert!(!acl.sees(&alice, "carol"));
        assert!(!acl.sees(&carol, "bob"));
        assert!(!acl.sees(&alice, "nobody"));
        // Groups seen outlive the connection: bob's "offline" still reaches alice.
        scope.signed_out("bob");
        assert!(acl.sees(&alice, "bob"));
        assert!(lock(&scope.contacts).get("bob").is_none());
    }
}
