//! Runs an elastic standby (`[cluster] standby = true`): once a second it looks at the
//! cluster's loads (the other nodes' heartbeats) and this node's connections, asks the
//! state machine in `standby.rs` what to do, and does it: the agent check says `ready` or
//! `drain`, a release disconnects the users over `drain_period` (they reconnect through
//! the load balancer to the others), the heartbeat says whether this node is at rest, and
//! the metrics and the log say when and why.
//!
//! Why apart from `standby.rs`: that one decides (pure, unit-tested); this one only
//! carries the decisions out.

use crate::node::Context;
use crate::standby::{Change, NodeLoad, Standby, Thresholds};
use roost_bridge::Members;
use roost_config::Cluster;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

/// How often the standby looks at the cluster.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Between saying `drain` and the first disconnect of a release: the load balancer's next
/// agent check (every second in deploy/haproxy.cfg) must have seen it, or the users would
/// come straight back.
const AGENT_GRACE: Duration = Duration::from_secs(2);

/// The thresholds of `[cluster]`.
pub(crate) fn thresholds(cluster: &Cluster) -> Thresholds {
    Thresholds {
        scale_up_at: cluster.scale_up_at,
        scale_down_at: cluster.scale_down_at,
        scale_down_after: cluster.scale_down_after,
    }
}

/// The other live nodes' loads, as the state machine takes them.
fn others(members: &Members, me: &str) -> Vec<NodeLoad> {
    members
        .cluster()
        .into_iter()
        .filter(|n| n.node_id != me)
        .map(|n| NodeLoad {
            connections: usize::try_from(n.connections).unwrap_or(usize::MAX),
            standby: n.standby,
        })
        .collect()
}

/// Runs the standby until the node drains. `members` gives the live nodes' loads and
/// carries whether this node rests in its heartbeat.
pub(crate) async fn run(ctx: Arc<Context>, cluster: Cluster, members: Members) {
    let me = cluster.node_id.clone().unwrap_or_default();
    let tell = |resting: bool| members.set_standby(resting);
    let thresholds = thresholds(&cluster);
    let mut standby = Standby::new(thresholds);
    ctx.drain.set_resting(true);
    tell(true);
    // The recorder may not be installed yet (the HTTP side does it): a gauge set before
    // would be lost.
    crate::metrics::install();
    crate::metrics::standby_resting();
    info!(
        scale_up_at = thresholds.scale_up_at,
        "standby: at rest, joined; taking users once the cluster's load reaches scale_up_at"
    );
    // The first look after one node_timeout: by then every live node's heartbeat has been
    // heard, so an empty view means nobody serves, not that nobody was heard yet.
    let first = tokio::time::Instant::now() + cluster.node_timeout;
    let mut tick = tokio::time::interval_at(first, LOOK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match ctx.drain.health() {
            crate::drain::Health::Draining => return,
            // Cut off from NATS, the view is stale: decide nothing until it is back.
            crate::drain::Health::Degraded => continue,
            crate::drain::Health::Ok => {}
        }
        let own = ctx.active.load(Ordering::Acquire);
        match standby.step(&others(&members, &me), own, Instant::now()) {
            None => {}
            Some(Change::Activate { load }) => {
                ctx.drain.set_resting(false);
                tell(false);
                crate::metrics::standby_active(true);
                match load {
                    Some(load) => info!(
                        load = format!("{load:.1}"),
                        scale_up_at = thresholds.scale_up_at,
                        "standby: taking users: connections per active node reached scale_up_at"
                    ),
                    None => info!("standby: taking users: no other active node is alive"),
                }
            }
            Some(Change::Release { load }) => {
                ctx.drain.set_resting(true);
                tell(true);
                crate::metrics::standby_active(false);
                info!(
                    load = format!("{load:.1}"),
                    scale_down_at = thresholds.scale_down_at,
                    after = ?thresholds.scale_down_after,
                    connections = own,
                    "standby: giving users back: connections per active node without this one \
                     stayed under scale_down_at"
                );
                tokio::time::sleep(AGENT_GRACE).await;
                crate::drain::release(&ctx, cluster.drain_period()).await;
                standby.released();
                info!("standby: at rest again");
            }
        }
    }
}
