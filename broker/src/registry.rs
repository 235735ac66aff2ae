//! What the front-end remembers about client ids beyond one connection: which filters each
//! holds (to cap them, and to re-check a resumed session against a new token), which
//! connection holds it now (so a connection that was taken over knows it), and wills
//! waiting out their delay.
//!
//! Sign-in and close both go through one lock, so a will can never be registered after its
//! client came back: the old connection sees that a newer one claimed its client id.

use crate::conn::Will;
use crate::node::Context;
use crate::router::SystemMessage;
use rumqttd::protocol::PublishProperties;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::AbortHandle;
use tracing::{info, warn};

/// The client-id registry shared by every connection of the node.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The last epoch handed out; each sign-in gets the next.
    epoch: u64,
    /// Per client id. Clean sessions are forgotten when they end; persistent ones stay,
    /// like the router's copy of them.
    clients: HashMap<String, Entry>,
}

#[derive(Default)]
struct Entry {
    filters: HashSet<String>,
    /// The epoch of the connection that signed in last with this client id.
    owner: u64,
    /// A will waiting out its delay, with the epoch of the connection that left it.
    will: Option<(u64, AbortHandle)>,
    /// Whether the owner's connection is open (signed in, not closed yet).
    live: bool,
    /// In a cluster: the owner's claim of the client id is on its way through the claims
    /// stream; a claim of another node read meanwhile came earlier, so it loses.
    claiming: Option<u64>,
    /// The connection (epoch) another node took the client id from: it closes without
    /// its will, and its session is not kept here.
    moved: Option<u64>,
}

/// How a connection's end looked to the registry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Closed {
    /// An ordinary end (taken over on this node included).
    Here,
    /// Another node took the client id over: the client is on, elsewhere.
    Moved,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain maps behind: still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection signs in with `client_id`: it becomes the owner (the returned epoch
    /// names it), and a will still waiting out its delay is not published.
    /// `clustered`: the claim goes through the cluster's claims stream next
    /// (`cluster_claims`), and until it is back, claims of other nodes do not take it over.
    pub fn claim(&self, client_id: &str, clustered: bool) -> u64 {
        let mut inner = self.lock();
        inner.epoch += 1;
        let epoch = inner.epoch;
        let entry = inner.clients.entry(client_id.to_owned()).or_default();
        entry.owner = epoch;
        entry.live = true;
        entry.claiming = clustered.then_some(epoch);
        if let Some((_, pending)) = entry.will.take() {
            pending.abort();
            info!(
                client_id,
                "client back within its will delay; will cancelled"
            );
        }
        epoch
    }

    /// The cluster-wide claim of connection `epoch` is through (read back from the claims
    /// stream) or failed: from now on a later claim of another node takes it over.
    pub(crate) fn claim_settled(&self, client_id: &str, epoch: u64) {
        if let Some(entry) = self.lock().clients.get_mut(client_id) {
            if entry.claiming == Some(epoch) {
                entry.claiming = None;
            }
        }
    }

    /// Another node claimed `client_id` after this node's last claim of it. Returns
    /// whether this node holds anything of it to take over (through the router, see
    /// `cluster_claims`): a connection, which is then marked to close as moved (no will,
    /// no offline), or a saved session, forgotten here. A will waiting out its delay is
    /// dropped: the client is back, elsewhere. `false` while this node's own claim is
    /// still on its way: that one is the later, and wins.
    pub(crate) fn taken_elsewhere(&self, client_id: &str) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.clients.get_mut(client_id) else {
            return false;
        };
        if entry.claiming.is_some_and(|epoch| epoch == entry.owner) {
            return false;
        }
        if let Some((_, pending)) = entry.will.take() {
            pending.abort();
            info!(
                client_id,
                "client back on another node; delayed will dropped"
            );
        }
        entry.filters.clear();
        if entry.live {
            entry.moved = Some(entry.owner);
        } else {
            inner.clients.remove(client_id);
        }
        true
    }

    /// A new session starts for `client_id`: forget any filters of an earlier one.
    pub fn reset(&self, client_id: &str) {
        if let Some(entry) = self.lock().clients.get_mut(client_id) {
            entry.filters.clear();
        }
    }

    /// Records a granted filter; `false` when it would exceed `max` filters.
    pub fn subscribed(&self, client_id: &str, filter: &str, max: usize) -> bool {
        let mut inner = self.lock();
        let filters = &mut inner
            .clients
            .entry(client_id.to_owned())
            .or_default()
            .filters;
        if filters.contains(filter) {
            return true;
        }
        if filters.len() >= max {
            return false;
        }
        filters.insert(filter.to_owned());
        true
    }

    /// Forgets a filter; `false` when the client id held no such filter.
    pub fn unsubscribed(&self, client_id: &str, filter: &str) -> bool {
        self.lock()
            .clients
            .get_mut(client_id)
            .is_some_and(|entry| entry.filters.remove(filter))
    }

    /// Removes and returns the filters of a resumed session that `allowed` now refuses.
    pub fn revalidate(&self, client_id: &str, allowed: impl Fn(&str) -> bool) -> Vec<String> {
        let mut inner = self.lock();
        let Some(entry) = inner.clients.get_mut(client_id) else {
            return Vec::new();
        };
        let revoked: Vec<String> = entry
            .filters
            .iter()
            .filter(|f| !allowed(f))
            .cloned()
            .collect();
        for filter in &revoked {
            entry.filters.remove(filter);
        }
        revoked
    }

    /// The connection `epoch` of `client_id` is over. A clean session (`clean_end`) is
    /// forgotten; `will` is published now, or after its delay unless the client comes back
    /// first. A connection whose client id a newer one has claimed (taken over) leaves the
    /// session alone, and its delayed will is dropped: the client is back (MQTT 5
    /// 3.1.3.2.2). A will without delay goes out at the close either way. A connection
    /// another node took over ([`Registry::taken_elsewhere`]) publishes no will at all and
    /// leaves nothing behind ([`Closed::Moved`]).
    pub(crate) fn closed(
        &self,
        ctx: &Arc<Context>,
        client_id: &str,
        epoch: u64,
        clean_end: bool,
        will: Option<Will>,
    ) -> Closed {
        let mut inner = self.lock();
        let entry = inner
            .clients
            .entry(client_id.to_owned())
            .or_insert_with(|| Entry {
                owner: epoch,
                ..Entry::default()
            });
        let owner = entry.owner == epoch;
        if owner {
            entry.live = false;
        }
        if entry.moved == Some(epoch) {
            entry.moved = None;
            if will.is_some() {
                info!(
                    client_id,
                    "session taken over on another node; will dropped"
                );
            }
            if owner {
                inner.clients.remove(client_id);
            }
            return Closed::Moved;
        }
        if owner && clean_end {
            entry.filters.clear();
        }
        match will {
            Some(will) if will.delay_secs == 0 => publish(ctx, will),
            Some(_) if !owner => {
                info!(
                    client_id,
                    "session taken over within its will delay; will dropped"
                )
            }
            Some(will) => {
                let delay = Duration::from_secs(u64::from(will.delay_secs));
                let owner_ctx = ctx.clone();
                let id = client_id.to_owned();
                let task = tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let still_ours = owner_ctx
                        .registry
                        .lock()
                        .clients
                        .get_mut(&id)
                        .and_then(|e| e.will.take_if(|(e, _)| *e == epoch))
                        .is_some();
                    if let Some((message, props)) =
                        still_ours.then(|| message(&owner_ctx, will)).flatten()
                    {
                        owner_ctx.system.publish_with(message, props).await;
                    }
                    owner_ctx.registry.forget_if_unused(&id, epoch);
                });
                entry.will = Some((epoch, task.abort_handle()));
            }
            None => {}
        }
        drop(inner);
        if clean_end {
            self.forget_if_unused(client_id, epoch);
        }
        Closed::Here
    }

    /// Drops the entry of a client id that holds nothing any more and that no connection
    /// has claimed since `epoch` ended.
    fn forget_if_unused(&self, client_id: &str, epoch: u64) {
        let mut inner = self.lock();
        if inner
            .clients
            .get(client_id)
            .is_some_and(|e| e.owner == epoch && e.filters.is_empty() && e.will.is_none())
        {
            inner.clients.remove(client_id);
        }
    }
}

/// The will as a message, unless it is retained and its user holds all the retained topics
/// they may already.
pub(crate) fn message(
    ctx: &Context,
    will: Will,
) -> Option<(SystemMessage, Option<PublishProperties>)> {
    if will.retain {
        if let Err(refusal) = ctx.retained.admit(&will.user, &will.topic, &will.payload) {
            let (user, topic, code) = (&will.user, &will.topic, refusal.code());
            warn!(user, topic, code, "will not published");
            return None;
        }
    }
    // A will on a stored chat topic is a chat message like any other: under stamped
    // delivery it is stored first, and delivered stamped (sign-in checked its payload).
    let topic = match ctx.stamped {
        true => crate::conn::ingress_topic(&will.topic),
        false => will.topic,
    };
    let message = SystemMessage {
        topic,
        payload: will.payload,
        retain: will.retain,
    };
    Some((message, will.properties.map(|p| *p)))
}

fn publish(ctx: &Arc<Context>, will: Will) {
    let system = ctx.system.clone();
    let Some((message, props)) = message(ctx, will) else {
        return;
    };
    tokio::spawn(async move { system.publish_with(message, props).await });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_claim_takes_over_only_once_the_own_claim_is_through() {
        let registry = Registry::default();
        assert!(!registry.taken_elsewhere("x"), "nothing of x here");
        let first = registry.claim("x", true);
        assert!(
            !registry.taken_elsewhere("x"),
            "x's own claim is on its way, so the other one came earlier"
        );
        registry.claim_settled("x", first);
        assert!(registry.taken_elsewhere("x"), "a later claim takes x over");
        // A newer local connection is on its way again: an older claim of its own epoch
        // coming back does not settle it.
        let second = registry.claim("x", true);
        registry.claim_settled("x", first);
        assert!(!registry.taken_elsewhere("x"));
        registry.claim_settled("x", second);
        assert!(registry.taken_elsewhere("x"));
    }

    #[test]
    fn outside_a_cluster_nothing_is_on_its_way() {
        let registry = Registry::default();
        registry.claim("x", false);
        assert!(registry.taken_elsewhere("x"));
    }
}
