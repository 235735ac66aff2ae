//! Health and drain: what `/healthz` and the agent check report, and taking a node out of
//! service gently (SIGTERM, `roost drain`).
//!
//! A drain closes the listeners at once (a load balancer sends new users elsewhere), then
//! disconnects the signed-in clients a slice at a time over `cluster.drain_period`, so
//! they do not all reconnect to the other nodes in the same second. It does so by handing
//! out turns: one channel shared by every connection, each `()` in it closes the one
//! connection that takes it (`Close::Drain`: MQTT 5 DISCONNECT 0x8B, no will). A shared
//! channel rather than a per-connection watch keeps the connection task small (one
//! receive future). Each connection makes that future once and polls the same one for its
//! whole life: a receive future dropped while it waits unregisters from the channel's list
//! of waiters by a linear scan, so one made per loop turn cost O(connections) per event
//! (with 4,000 clients that scan was a third of the node's CPU). Once the clients are gone,
//! the in-node history service stores what it took and stops.

use crate::node::Context;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// What the node tells load balancers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// Serving, but a part it relies on is in trouble (set by the cluster bridge).
    Degraded,
    Draining,
}

impl Health {
    pub fn word(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::Draining => "draining",
        }
    }
}

/// The node's drain state, shared by listeners, connections and the HTTP side.
pub struct Drain {
    draining: watch::Sender<bool>,
    degraded: AtomicBool,
    /// An elastic standby at rest or releasing (`standby.rs`): serving, healthy, but the
    /// agent check says `drain` so the load balancer sends it nobody.
    resting: AtomicBool,
    /// Turns to close: each is taken by one connection.
    turns: (flume::Sender<()>, flume::Receiver<()>),
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: watch::Sender::new(false),
            degraded: AtomicBool::new(false),
            resting: AtomicBool::new(false),
            turns: flume::unbounded(),
        }
    }
}

impl Drain {
    pub fn health(&self) -> Health {
        if *self.draining.borrow() {
            Health::Draining
        } else if self.degraded.load(Ordering::Relaxed) {
            Health::Degraded
        } else {
            Health::Ok
        }
    }

    /// For the cluster bridge: the node serves, but its links to other nodes are in trouble.
    pub fn set_degraded(&self, degraded: bool) {
        self.degraded.store(degraded, Ordering::Relaxed);
    }

    /// For the elastic standby: whether the node takes no new users while it is healthy.
    pub(crate) fn set_resting(&self, resting: bool) {
        self.resting.store(resting, Ordering::Relaxed);
    }

    /// Whether the load balancer should send this node nobody: draining, or a standby at
    /// rest.
    pub(crate) fn takes_no_users(&self) -> bool {
        *self.draining.borrow() || self.resting.load(Ordering::Relaxed)
    }

    /// Resolves once the node drains (listeners stop accepting).
    pub async fn stopping(&self) {
        let mut rx = self.draining.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Resolves when it is this connection's turn to close. Make it once per connection
    /// and keep polling it (see the module doc).
    pub(crate) fn turn(&self) -> flume::r#async::RecvFut<'static, ()> {
        self.turns.1.clone().into_recv_async()
    }

    /// Hands out turns until `want` connections are due to close (turns not yet taken
    /// count: a connection busy elsewhere takes one at its next wait).
    fn hand_out(&self, want: usize) {
        for _ in self.turns.0.len()..want {
            let _ = self.turns.0.send(());
        }
    }
}

/// Closes the clients a share at a time over `period` (as a drain does), for a standby
/// giving its users back: the listeners stay open and the node stays in the cluster.
/// Returns once they are gone (bounded); turns nobody took are taken back, so they cannot
/// close the next users.
pub(crate) async fn release(ctx: &Arc<Context>, period: Duration) {
    spread_closes(ctx, period).await;
    while ctx.drain.turns.1.try_recv().is_ok() {}
}

/// Drains the node: stop accepting, close the clients over `period`, and wait (bounded)
/// until they are gone.
pub async fn run(ctx: &Arc<Context>, period: Duration) {
    let drain = &ctx.drain;
    drain.draining.send_replace(true);
    let active = || ctx.active.load(Ordering::Acquire);
    info!(
        ?period,
        connections = active(),
        "draining: listeners closed, clients leave over the drain period"
    );
    spread_closes(ctx, period).await;
    info!("draining: all clients disconnected");
}

/// Hands out turns to close so that the clients leave evenly over `period`, then (bounded
/// by the write timeout) until none is left.
async fn spread_closes(ctx: &Arc<Context>, period: Duration) {
    let drain = &ctx.drain;
    let active = || ctx.active.load(Ordering::Acquire);
    // A step every 100 ms: fine enough to spread, coarse enough to cost nothing.
    let steps = (period.as_millis() / 100).clamp(1, 6000) as u32;
    let pause = period / steps;
    for step in 0..steps {
        let left = active();
        if left == 0 {
            break;
        }
        // An even share of who is left over the steps left.
        let share = left.div_ceil((steps - step) as usize);
        drain.hand_out(share);
        tokio::time::sleep(pause).await;
    }
    // Each goodbye is bounded by the write timeout.
    let deadline = Instant::now() + ctx.limits.write_timeout + Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while active() > 0 {
        if Instant::now() >= deadline {
            warn!(
                left = active(),
                "draining: connections still closing; going on"
            );
            break;
        }
        // Everyone, including connections that signed in as the listeners closed.
        drain.hand_out(active());
        tick.tick().await;
    }
}
