//! Cluster-wide client ids (docs/cluster.md, "Takeover"): a CONNECT accepted here is
//! announced as a claim of its client id, and a claim another node announced later takes
//! this node's session of that client id over, through the same router path as a local
//! takeover.
//!
//! Why through the router: a local takeover is the router dropping the old connection's
//! link when a new link with its client id arrives; the old connection then closes with
//! v5 DISCONNECT 0x8E (3.1.1: the socket closes) and the router drops or replaces its
//! session, interest included. A remote claim does the same with a short-lived link of
//! its own, clean, so the old session (live or saved) is gone from this node: the client's
//! session now lives on the node it connected to. Before that, the registry marks the old
//! connection as moved, so it closes without its will and without taking its user
//! offline (the user is online, on the other node).
//!
//! Order: the claims stream orders every claim once for all nodes, and the later claim
//! wins everywhere (`roost_bridge::Claims`). A connection whose own claim is still on its
//! way is never taken over by a claim read meanwhile: that one is the earlier.

use std::sync::Arc;
use std::time::Duration;

use roost_bridge::{Claim, Claims};
use tracing::{info, warn};

use crate::node::Context;

/// How long to wait before reading the claims again after the reader ended.
const REWATCH_AFTER: Duration = Duration::from_secs(1);

/// Announces connection `epoch`'s claim of `client_id` and waits until the claims stream
/// has it, before the CONNACK: so a CONNECT that follows a CONNACK, on any node, is
/// ordered after it and wins. A claim that cannot be made (NATS away, or too slow) is
/// logged and settled: the client is served by this node alone, as when NATS is
/// unreachable.
pub(crate) async fn announce(ctx: &Context, client_id: &str, epoch: u64) {
    let Some(claims) = ctx.claims.as_ref() else {
        return;
    };
    if let Err(error) = claims.announce(client_id, epoch).await {
        warn!(
            client_id,
            "client id not claimed across the cluster: {error}"
        );
        ctx.registry.claim_settled(client_id, epoch);
    }
}

/// Starts reading every node's claims, for as long as the node runs.
pub(crate) async fn start(ctx: Arc<Context>, claims: Claims) {
    // Right after a NATS server is lost, JetStream may time out a consumer's creation (it
    // can be placed on the lost server until the cluster marks it offline, which took over
    // 30 s in CI); a later try lands elsewhere. The node serves meanwhile, as it does while
    // NATS is unreachable: only takeovers from other nodes wait until the claims are read.
    let watch = match claims.watch().await {
        Ok(watch) => Some(watch),
        Err(error) => {
            warn!(
                "client-id claims not read yet ({error}): serving meanwhile, takeovers from \
                 other nodes wait until they are; trying again"
            );
            None
        }
    };
    tokio::spawn(async move {
        let mut watch = watch;
        loop {
            if let Some(watch) = watch.as_mut() {
                while let Some(claim) = watch.next().await {
                    match claim {
                        Ok(claim) => handle(&ctx, claim).await,
                        Err(error) => warn!("client-id claim skipped: {error}"),
                    }
                }
            }
            // The ordered reader resumes by itself across reconnects; it ends when its
            // subscription does or it failed (or never started). Start a new one after the
            // last claim read.
            let last_seq = watch.as_ref().map_or(0, |w| w.last_seq());
            loop {
                tokio::time::sleep(REWATCH_AFTER).await;
                match claims.watch_after(last_seq).await {
                    Ok(fresh) => {
                        info!("client-id claims read");
                        watch = Some(fresh);
                        break;
                    }
                    Err(error) => warn!("reading client-id claims again: {error}"),
                }
            }
        }
    });
}

async fn handle(ctx: &Arc<Context>, claim: Claim) {
    if claim.own {
        ctx.registry.claim_settled(&claim.client_id, claim.epoch);
        return;
    }
    if !ctx.registry.taken_elsewhere(&claim.client_id) {
        return;
    }
    info!(
        client_id = claim.client_id,
        node = claim.node,
        "client id claimed by another node; the session here is taken over"
    );
    // A clean link with the client id takes the old connection's link (or its saved
    // session) over in the router, which closes that connection as taken over; dropping
    // this link then ends the clean session it started.
    match ctx
        .router
        .link(claim.client_id.clone(), true, true, None, None)
        .await
    {
        Ok(link) => drop(link),
        Err(error) => warn!(
            client_id = claim.client_id,
            "takeover link refused: {error}"
        ),
    }
}
