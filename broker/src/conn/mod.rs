//! One client connection, from its first byte to its close.
//!
//! The front-end owns the socket. It signs the client in, checks every PUBLISH and SUBSCRIBE
//! against the ACL, and passes what is allowed to the router over the client's link. What the
//! router sends back (deliveries and acks) is encoded in the client's own MQTT version.
//!
//! [`handshake`] takes a connection through CONNECT to its CONNACK, with [`sign_in`] deciding
//! who may in; [`serve`] runs the connection loop from there to its close; [`session`] holds
//! the MQTT session rules as plain state, free of I/O.

mod aliases;
mod close;
mod handshake;
mod inbound;
mod packet_ids;
mod serve;
mod session;
pub(crate) mod sign_in;

pub(crate) use inbound::{ingress_topic, valid_publish_topic};
pub(crate) use session::{Actions, Env, Session};
pub(crate) use sign_in::Will;

use crate::node::Context;
use crate::transport::Transport;
use close::Close;
use futures_util::FutureExt as _;
use handshake::{accept, Accepted};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{error, field, info_span, Instrument};

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(transport: Transport, peer: SocketAddr, ctx: Arc<Context>) {
    let span = info_span!(
        "conn",
        %peer,
        via = transport.kind(),
        user = field::Empty,
        client_id = field::Empty
    );
    run(transport, ctx).instrument(span).await
}

async fn run(transport: Transport, ctx: Arc<Context>) {
    // The connect phase is boxed so that its state (the CONNECT with its token, the sign-in)
    // is freed once the client is in, instead of sizing the future every connection keeps
    // for its whole life.
    let Some(Accepted { mut conn, slot }) = Box::pin(accept(transport, ctx)).await else {
        return;
    };
    // A panic while serving is contained here, so the goodbye below (router, will, presence,
    // connections gauge) still runs; otherwise the user would stay online for good.
    let close = match AssertUnwindSafe(conn.run()).catch_unwind().await {
        Ok(close) => close,
        Err(_) => {
            error!("connection task panicked; closing it");
            Close::Internal
        }
    };
    // Boxed for the same reason: the goodbye happens once, its state need not be kept all along.
    Box::pin(conn.finish(close)).await;
    drop(slot);
}

/// Gives back a connection slot when the connection ends, however it ends.
struct ActiveSlot(Arc<Context>);

impl Drop for ActiveSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future an async fn returns, without calling it.
    fn future_size<A, B, C, F>(_: &impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every connection keeps this future for its whole life (BENCHMARKS.md, "What was
    /// fixed"): 1,248 bytes before the session became plain state. It must not grow.
    #[test]
    fn connection_task_stays_small() {
        let size = future_size(&super::serve);
        eprintln!("connection future: {size} bytes");
        assert!(size <= 1248, "the connection future grew to {size} bytes");
    }
}
