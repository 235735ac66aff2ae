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
    /// Turns to close: each is taken by one connection.
    turns: (flume::Sender<()>, flume::Receiver<()>),
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: watch::Sender::new(false),
            degraded: AtomicBool::new(false),
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
    #[allow(dead_code)]
    pub fn set_degraded(&self, degraded: bool) {
        self.degraded.store(degraded, Ordering::Relaxed);
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
    info!("draining: all clients disconnected");
}
