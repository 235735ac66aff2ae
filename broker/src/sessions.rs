//! What the front-end remembers about client sessions beyond one connection: which filters
//! each client id holds (to cap them, and to re-check a resumed session against a new
//! token), and wills waiting out their delay.

use crate::connect::Will;
use crate::node::Context;
use crate::router::SystemMessage;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::AbortHandle;
use tracing::info;

#[derive(Default)]
pub struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Filters per client id. Clean sessions are forgotten when they end; persistent ones
    /// stay, like the router's copy of them.
    filters: HashMap<String, HashSet<String>>,
    /// Wills with a delay, cancelled if the client comes back in time.
    wills: HashMap<String, AbortHandle>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain maps behind: still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session starts for `client_id`: forget any filters of an earlier one.
    pub fn reset(&self, client_id: &str) {
        self.lock().filters.remove(client_id);
    }

    /// Records a granted filter; `false` when it would exceed `max` filters.
    pub fn subscribed(&self, client_id: &str, filter: &str, max: usize) -> bool {
        let mut inner = self.lock();
        let filters = inner.filters.entry(client_id.to_owned()).or_default();
        if filters.contains(filter) {
            return true;
        }
        if filters.len() >= max {
            return false;
        }
        filters.insert(filter.to_owned());
        true
    }

    pub fn unsubscribed(&self, client_id: &str, filter: &str) {
        if let Some(filters) = self.lock().filters.get_mut(client_id) {
            filters.remove(filter);
        }
    }

    /// A clean session ended: nothing of it is kept.
    pub fn ended(&self, client_id: &str) {
        self.lock().filters.remove(client_id);
    }

    /// Removes and returns the filters of a resumed session that `allowed` now refuses.
    pub fn revalidate(&self, client_id: &str, allowed: impl Fn(&str) -> bool) -> Vec<String> {
        let mut inner = self.lock();
        let Some(filters) = inner.filters.get_mut(client_id) else {
            return Vec::new();
        };
        let revoked: Vec<String> = filters.iter().filter(|f| !allowed(f)).cloned().collect();
        for filter in &revoked {
            filters.remove(filter);
        }
        revoked
    }

    /// The client is back: a will still waiting out its delay is not published.
    pub fn cancel_will(&self, client_id: &str) {
        if let Some(pending) = self.lock().wills.remove(client_id) {
            pending.abort();
            info!(
                client_id,
                "client back within its will delay; will cancelled"
            );
        }
    }

    /// Publishes `will` now, or after its delay unless the client reconnects first.
    pub fn publish_will(&self, ctx: &Arc<Context>, client_id: &str, will: Will) {
        let message = SystemMessage {
            topic: will.topic,
            payload: will.payload,
            retain: will.retain,
        };
        let system = ctx.system.clone();
        if will.delay_secs == 0 {
            tokio::spawn(async move { system.publish(message).await });
            return;
        }
        let delay = Duration::from_secs(u64::from(will.delay_secs));
        let owner = ctx.clone();
        let id = client_id.to_owned();
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            owner.sessions.lock().wills.remove(&id);
            system.publish(message).await;
        });
        self.lock()
            .wills
            .insert(client_id.to_owned(), task.abort_handle());
    }
}
