//! A signed-in connection, from its CONNACK to its close: a short loop that reads the
//! client, receives from the router and fires the one timer, hands each event to the
//! [`Session`] and carries out its [`Actions`] (encode for the client, pass to the router,
//! publish notices). The goodbye (will, presence, router) is [`Connection::finish`].

use super::session::{Actions, Close, Env, Session};
use crate::codec::{Codec, Version};
use crate::metrics;
use crate::node::Context;
use crate::registry::Closed;
use crate::router::Link;
use crate::transport::Transport;
use bytes::BytesMut;
use rumqttd::protocol::{Disconnect, DisconnectProperties, Packet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

/// Bytes taken from the router for one write to the client, at most (plus one packet).
const WRITE_BATCH: usize = 64 * 1024;

pub(super) struct Connection {
    pub(super) ctx: Arc<Context>,
    pub(super) codec: Codec,
    pub(super) transport: Transport,
    pub(super) read: BytesMut,
    pub(super) write: BytesMut,
    pub(super) link: Link,
    pub(super) session: Session,
    /// Names this connection in the registry (see `Registry::claim`).
    pub(super) epoch: u64,
    /// The largest packet the client will take (v5 Maximum Packet Size).
    pub(super) client_max_packet: Option<u32>,
    /// Resolves when the node ends this user's connections (account disabled or deleted).
    pub(super) ended: tokio::sync::oneshot::Receiver<crate::accounts::connected::Ended>,
    /// Signed in with an account password: its time is up at `accounts.token_ttl`.
    pub(super) by_password: bool,
}

/// What handling one event decided.
enum Flow {
    Continue,
    /// Bytes arrived: decode them (outside the `select!`, see `run`).
    Input,
    Close(Close),
}

impl Connection {
    pub(super) async fn run(&mut self) -> Close {
        let silence = self.session.silence_limit();
        let expires = instant_of(self.session.expires_at());
        let idle_deadline = |now: Instant| silence.map_or(expires, |k| (now + k).min(expires));
        let write_timeout = self.ctx.limits.write_timeout;
        // One timer for every end (silence, token expiry, a write the client does not take):
        // this future lives as long as the connection, once per client, so it is kept small.
        let mut idle_at = idle_deadline(Instant::now());
        let timer = sleep_until(idle_at);
        tokio::pin!(timer);
        // Made once: a fresh one per loop turn would cost a scan of every waiting
        // connection when dropped (see `drain`). Boxed, as it is polled at most once per
        // event and would otherwise widen every connection's task.
        let mut turn = Box::pin(self.ctx.drain.turn());

        // Anything already read after the CONNECT.
        let mut flow = if self.read.is_empty() {
            Flow::Continue
        } else {
            Flow::Input
        };
        loop {
            // Awaited here rather than in its `select!` arm, where the select's output (a
            // router notification) would stay alive across the await and in the future.
            if let Flow::Input = flow {
                flow = self.handle_input().await;
            }
            if !self.write.is_empty() {
                // A client that does not read would block this write, and with it keepalive
                // and token expiry, for ever: the write gets `limits.write_timeout`.
                let write_by = Instant::now() + write_timeout;
                let armed = write_by < idle_at;
                if armed {
                    timer.as_mut().reset(write_by);
                }
                let written = tokio::select! {
                    written = self.transport.write_all(&self.write) => written.map_err(Close::Io),
                    () = &mut timer => Err(if armed && Instant::now() >= write_by {
                        Close::SlowConsumer
                    } else {
                        self.on_timer(Instant::now() >= expires)
                    }),
                };
                if let Err(close) = written {
                    return close;
                }
                if armed {
                    timer.as_mut().reset(idle_at);
                }
                self.write.clear();
                if self.write.capacity() > 64 * 1024 {
                    // Don't keep a large buffer around for one large message.
                    self.write = BytesMut::with_capacity(1024);
                }
            }
            if let Flow::Close(close) = flow {
                return close;
            }
            flow = tokio::select! {
                read = self.transport.read_into(&mut self.read) => match read {
                    Ok(0) => Flow::Close(Close::PeerGone),
                    Err(e) => Flow::Close(Close::Io(e)),
                    Ok(_) => {
                        if silence.is_some() {
                            idle_at = idle_deadline(Instant::now());
                            timer.as_mut().reset(idle_at);
                        }
                        Flow::Input
                    }
                },
                notification = self.link.recv() => match notification {
                    Some(first) => self.handle_notifications(first),
                    None => Flow::Close(Close::TakenOver),
                },
                () = &mut timer => Flow::Close(self.on_timer(Instant::now() >= expires)),
                // The sender lives in the context this connection holds: never an error.
                _ = &mut turn => Flow::Close(Close::Drain),
                // Registered until `finish`: a sender is dropped only once it has sent.
                ended = &mut self.ended => Flow::Close(match ended {
                    Ok(why) => Close::Account(why),
                    Err(_) => Close::Internal,
                }),
            };
        }
    }

    /// Why the one timer ends the connection (see `Session::on_timer`); a password sign-in
    /// has no token, so its end says so.
    fn on_timer(&self, expired: bool) -> Close {
        match self.session.on_timer(expired) {
            Close::TokenExpired if self.by_password => Close::SignInExpired,
            close => close,
        }
    }

    /// Hands the session a notification and whatever else the router has ready, up to
    /// [`WRITE_BATCH`] bytes, to write it all in one go. The rest waits in the link, whose
    /// length the router bounds.
    fn handle_notifications(&mut self, first: rumqttd::Notification) -> Flow {
        let mut actions = Actions::default();
        let mut result = self.session.on_router(first, &self.ctx.acl, &mut actions);
        loop {
            for packet in actions.to_client.drain(..) {
                self.queue(packet);
            }
            if result.is_err() || self.write.len() >= WRITE_BATCH {
                break;
            }
            match self.link.try_recv() {
                Some(n) => result = self.session.on_router(n, &self.ctx.acl, &mut actions),
                None => break,
            }
        }
        // Acks the session gives the router in the client's place (revoked filters).
        if !self.link.try_send(actions.to_router) {
            return Flow::Close(Close::TakenOver);
        }
        match result {
            Ok(()) => Flow::Continue,
            Err(close) => Flow::Close(close),
        }
    }

    /// Decodes and hands the session every whole packet in the read buffer.
    async fn handle_input(&mut self) -> Flow {
        let mut actions = Actions::default();
        // `env` ends with this block: kept across the awaits below it would grow the future
        // every connection keeps (see `conn::tests::connection_task_stays_small`).
        let result = {
            let env = Env {
                acl: &self.ctx.acl,
                registry: &self.ctx.registry,
                limits: &self.ctx.limits,
                retained: &self.ctx.retained,
                stamped: self.ctx.stamped,
            };
            loop {
                let incoming = match self.codec.decode(&mut self.read) {
                    Ok(Some(incoming)) => incoming,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(self.session.on_decode_error(e)),
                };
                if let Err(close) = self.session.on_client(incoming, &env, &mut actions) {
                    break Err(close);
                }
            }
        };
        if self.read.is_empty() && self.read.capacity() > 64 * 1024 {
            self.read = BytesMut::with_capacity(256);
        }
        let Actions {
            to_client,
            to_router,
            notices,
        } = actions;
        for packet in to_client {
            self.queue(packet);
        }
        // Allowed packets read before a protocol error still go through, in order.
        if !self.link.try_send(to_router) {
            return Flow::Close(Close::TakenOver);
        }
        for notice in notices {
            // Boxed: notices are rare, and inline this future would size every connection's
            // task for them.
            Box::pin(self.ctx.system.publish(notice)).await;
        }
        match result {
            Ok(()) => Flow::Continue,
            Err(close) => Flow::Close(close),
        }
    }

    /// Encodes a packet for the client; written out once the current batch is handled.
    fn queue(&mut self, packet: Packet) {
        let start = self.write.len();
        if let Err(e) = self.codec.encode(packet, &mut self.write) {
            warn!(error = %e, "could not encode a packet for the client; dropped");
            self.write.truncate(start);
            return;
        }
        if let Some(max) = self.client_max_packet {
            if self.write.len() - start > max as usize {
                // MQTT 5: a packet larger than the client accepts is discarded, not sent.
                debug!("packet larger than the client's maximum packet size discarded");
                self.write.truncate(start);
            }
        }
    }

    /// Tells the router, the will, presence and the log that this connection is over.
    pub(super) async fn finish(&mut self, close: Close) {
        if !matches!(close, Close::SlowConsumer) {
            // Bounded like every write: a client that stopped reading does not hold the
            // goodbye (and the will, and presence) back.
            let write_timeout = self.ctx.limits.write_timeout;
            let _ = tokio::time::timeout(write_timeout, self.goodbye(&close)).await;
        }

        match &close {
            Close::Disconnect { .. } | Close::PeerGone => info!(cause = ?close, "disconnected"),
            Close::Protocol(_, why) => {
                metrics::protocol_error("client_protocol_error");
                warn!(cause = why, "closed: protocol error")
            }
            Close::SlowConsumer => {
                metrics::slow_consumer();
                warn!(
                    write_timeout = ?self.ctx.limits.write_timeout,
                    "closed: slow consumer (the client took nothing written to it within limits.write_timeout)"
                )
            }
            Close::Io(e) => info!(error = %e, "closed: connection error"),
            Close::Drain => info!("closed: node draining"),
            _ => info!(cause = ?close, "closed"),
        }

        // Tell the router before the will goes out, so a subscriber sees this client gone
        // by the time it reads the will.
        self.link.close();
        let will = self.session.on_close(&close);
        let clean_end = !self.session.persistent && !matches!(close, Close::TakenOver);
        let closed = self.ctx.registry.closed(
            &self.ctx,
            &self.session.client_id,
            self.epoch,
            clean_end,
            will,
        );
        // Moved or not, this node no longer owns the connection's will: out of the wills
        // bucket, so no survivor publishes it either.
        crate::cluster_presence::forget_will(&self.ctx, &self.session.client_id, self.epoch);
        self.ctx
            .accounts
            .connected()
            .remove(&self.session.identity.user, self.epoch);
        if let Some(scope) = &self.ctx.visibility {
            scope.signed_out(&self.session.identity.user);
        }
        let user = &self.session.identity.user;
        match closed {
            Closed::Here => self.ctx.presence.disconnected(user).await,
            // Taken over by another node: the user is online there, no flap to offline.
            Closed::Moved => {
                self.ctx.presence.moved(user).await;
                info!("session moved to another node: no will, presence stays online");
            }
        }
        metrics::connections(-1.0);
    }

    /// The v5 DISCONNECT that says why, if any, and the transport's own close.
    async fn goodbye(&mut self, close: &Close) {
        if self.codec.version == Version::V5 {
            if let Some(reason_code) = close.v5_reason() {
                // Always with a reason string. Besides telling the client why, it keeps the
                // properties non-empty, which rumqttd's v5 DISCONNECT writer needs: without
                // properties it declares one byte too few (a stray 0x00 follows the packet),
                // with empty ones it drops the reason code.
                let props = Some(DisconnectProperties {
                    session_expiry_interval: None,
                    reason_string: Some(close.describe().to_owned()),
                    user_properties: Vec::new(),
                    server_reference: None,
                });
                self.write.clear();
                self.queue(Packet::Disconnect(Disconnect { reason_code }, props));
                let _ = self.transport.write_all(&self.write).await;
            }
        }
        self.transport.shutdown().await;
    }
}

/// The tokio instant of a unix time in seconds (far in the future for "never").
fn instant_of(unix_secs: u64) -> Instant {
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let left = unix_secs.saturating_sub(now_unix).min(10 * 365 * 24 * 3600);
    Instant::now() + Duration::from_secs(left)
}
