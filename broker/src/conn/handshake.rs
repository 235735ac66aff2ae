//! From a connection's first byte to its CONNACK: the CONNECT read within the connect
//! timeout, the client signed in ([`super::sign_in`]), its client id claimed in the
//! registry, its router link made and its session resumed or started.

use super::serve::Connection;
use super::session::Session;
use super::sign_in::{bind, sign_in, Refusal, SignIn, Will};
use super::ActiveSlot;
use crate::codec::{sniff_connect, Codec, Sniff, Version};
use crate::metrics;
use crate::node::Context;
use crate::transport::Transport;
use bytes::BytesMut;
use roost_auth::Grant;
use rumqttd::protocol::{self, ConnAck, ConnAckProperties, ConnectReturnCode, Packet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};
use tracing::{debug, info, warn};

/// How long a CONNECT in a cluster waits for the presence bucket to name this node for its
/// user before the claim goes out anyway.
const PRESENCE_WAIT: Duration = Duration::from_secs(2);

/// A client signed in, welcomed and linked to the router.
pub(super) struct Accepted {
    pub(super) conn: Connection,
    /// Its place under `max_connections`, freed when the connection ends.
    pub(super) slot: ActiveSlot,
}

/// Takes a connection through CONNECT to its CONNACK; `None` once it is closed or refused.
pub(super) async fn accept(mut transport: Transport, ctx: Arc<Context>) -> Option<Accepted> {
    let mut buf = BytesMut::with_capacity(256);
    let deadline = Instant::now() + ctx.limits.connect_timeout;

    // 1. The CONNECT: which version, then the whole packet, all within the connect timeout.
    let version = loop {
        match sniff_connect(&buf, ctx.limits.max_packet_size) {
            Sniff::Connect(version) => break version,
            Sniff::NeedMore => {}
            Sniff::NotConnect => {
                metrics::protocol_error("first_packet_not_connect");
                warn!("closed: first packet is not a CONNECT");
                return None;
            }
            Sniff::TooLarge(size) => {
                // Decided from the fixed header alone: not one byte of the body is awaited.
                // No CONNACK: the protocol level, and so its form, is not known yet.
                metrics::protocol_error("connect_too_large");
                warn!(size, "refused: CONNECT larger than the maximum packet size");
                transport.shutdown().await;
                return None;
            }
            Sniff::UnsupportedLevel(level) => {
                metrics::protocol_error("unsupported_protocol_level");
                warn!(level, "refused: unsupported MQTT protocol level");
                // CONNACK 0x01 "unacceptable protocol version" in the 3.1.1 form every
                // version understands.
                let _ = transport.write_all(&[0x20, 0x02, 0x00, 0x01]).await;
                transport.shutdown().await;
                return None;
            }
        }
        if !read_before(&mut transport, &mut buf, deadline).await {
            return None;
        }
    };
    let codec = Codec::new(version, ctx.limits.max_packet_size);
    let connect = loop {
        match codec.decode(&mut buf) {
            Ok(Some(packet)) => break packet,
            Ok(None) => {
                if !read_before(&mut transport, &mut buf, deadline).await {
                    return None;
                }
            }
            Err(e) => {
                metrics::protocol_error("malformed_connect");
                warn!(error = %e, "refused: malformed CONNECT");
                if version == Version::V5 {
                    let code = match e {
                        protocol::Error::PayloadSizeLimitExceeded(_) => {
                            ConnectReturnCode::PacketTooLarge
                        }
                        protocol::Error::ProtocolViolation(_) => ConnectReturnCode::ProtocolError,
                        _ => ConnectReturnCode::MalformedPacket,
                    };
                    // No reason string: the client's Maximum Packet Size is not known.
                    refuse(&mut transport, codec, code, None, None).await;
                }
                return None;
            }
        }
    };
    let Packet::Connect(connect, connect_props, will, will_props, login) = connect else {
        return None;
    };

    // 2. Who is it?
    let clean = connect.clean_session;
    let session_expiry = connect_props
        .as_ref()
        .and_then(|p| p.session_expiry_interval)
        .unwrap_or(0);
    let client_max_packet = connect_props.as_ref().and_then(|p| p.max_packet_size);
    // No enhanced authentication (MQTT 5 section 4.12): the token is the password.
    if connect_props
        .as_ref()
        .is_some_and(|p| p.authentication_method.is_some())
    {
        refused(
            &mut transport,
            codec,
            Refusal::AuthenticationMethod,
            client_max_packet,
        )
        .await;
        return None;
    }
    let password = crate::accounts::mqtt::sign_in(&ctx, login.as_ref()).await;
    let by_password = password.is_some();
    let signed_in = match password {
        Some(Ok(identity)) => bind(identity, version, &connect.client_id, clean),
        Some(Err(refusal)) => Err(refusal),
        None => sign_in(
            &ctx.verifier,
            ctx.allow_anonymous,
            version,
            &connect.client_id,
            clean,
            login.as_ref(),
        )
        .and_then(|s| {
            // A disabled account's tokens are refused too (see `accounts::connected`).
            if ctx.accounts.connected().is_disabled(&s.identity.user) {
                Err(Refusal::AccountDisabled)
            } else {
                Ok(s)
            }
        }),
    };
    let SignIn {
        identity,
        client_id,
        assigned,
    } = match signed_in {
        Ok(s) => s,
        Err(refusal) => {
            refused(&mut transport, codec, refusal, client_max_packet).await;
            return None;
        }
    };
    let span = tracing::Span::current();
    span.record("user", identity.user.as_str());
    span.record("client_id", client_id.as_str());

    let will = match Will::from_connect(will, will_props.as_deref(), session_expiry) {
        Ok(w) => w,
        Err(refusal) => {
            refused(&mut transport, codec, refusal, client_max_packet).await;
            return None;
        }
    };
    if let Some(w) = &will {
        if !ctx.acl.can_publish(&identity, &client_id, &w.topic) {
            refused(
                &mut transport,
                codec,
                Refusal::WillNotAllowed,
                client_max_packet,
            )
            .await;
            return None;
        }
        if let Err(refusal) = w.check() {
            refused(&mut transport, codec, refusal, client_max_packet).await;
            return None;
        }
    }

    // 3. Room for it?
    if ctx.active.fetch_add(1, Ordering::AcqRel) >= ctx.limits.max_connections {
        ctx.active.fetch_sub(1, Ordering::AcqRel);
        refused(
            &mut transport,
            codec,
            Refusal::MaxConnections,
            client_max_packet,
        )
        .await;
        return None;
    }
    let slot = ActiveSlot(ctx.clone());

    // 3.1.1: clean session 0 keeps the session. v5: the Session Expiry Interval alone says
    // whether the session outlives the connection; Clean Start only discards a saved one.
    let persistent = match version {
        Version::V311 => !clean,
        Version::V5 => session_expiry > 0,
    };
    // Claimed before the router takes the session over, so the connection it replaces
    // sees, when it closes, that its client is back (its delayed will is dropped).
    // In a cluster the claim also goes to every node (`cluster_claims`), once linked.
    let epoch = ctx.registry.claim(&client_id, ctx.claims.is_some());
    let receive_maximum = connect_props.as_ref().and_then(|p| p.receive_maximum);
    // v5: the session ends this long after the connection (0xFFFFFFFF: never); v3.1.1
    // persistent sessions wait for the client.
    let expiry = (version == Version::V5 && session_expiry != u32::MAX)
        .then(|| Duration::from_secs(session_expiry.into()));
    let link = match ctx
        .router
        .link(
            client_id.clone(),
            !persistent,
            clean,
            receive_maximum,
            expiry,
        )
        .await
    {
        Ok(link) => link,
        Err(e) => {
            warn!(error = %e, "router refused the link");
            ctx.registry.claim_settled(&client_id, epoch);
            refused(
                &mut transport,
                codec,
                Refusal::ServerBusy,
                client_max_packet,
            )
            .await;
            return None;
        }
    };

    // Before anything is delivered (the router sends once the loop runs), and before this
    // user's "online" goes out, so their groups are known to those who see it.
    if let Some(scope) = &ctx.visibility {
        Box::pin(scope.signed_in(&identity)).await;
    }
    let will = will.map(|w| w.owned_by(&identity.user));
    // Before presence: in a cluster the will is stored before the user shows online.
    crate::cluster_presence::remember_will(&ctx, &client_id, epoch, will.as_ref());
    // In a cluster the presence bucket names this node for the user before the claim goes
    // out (bounded): a node this claim takes the client over from takes its own name out
    // only after reading the claim, so the user's entry is never empty in between
    // (docs/cluster.md, "Takeover").
    ctx.presence.connected(&identity.user).await;
    ctx.presence.written(&identity.user, PRESENCE_WAIT).await;
    crate::cluster_claims::announce(&ctx, &client_id, epoch).await;

    // 4. Welcome.
    // v5 Clean Start 0 resumes a saved session even when this one ends with the connection.
    let session_present = link.session_present;
    let ack = ConnAck {
        session_present,
        code: ConnectReturnCode::Success,
    };
    let props = ConnAckProperties {
        receive_max: Some(ctx.limits.receive_maximum),
        max_packet_size: Some(ctx.limits.max_packet_size as u32),
        assigned_client_identifier: assigned,
        topic_alias_max: (ctx.limits.topic_alias_maximum > 0)
            .then_some(ctx.limits.topic_alias_maximum),
        retain_available: Some(1),
        shared_subscription_available: Some(1),
        ..Default::default()
    };
    let mut out = BytesMut::with_capacity(64);
    if codec
        .encode(Packet::ConnAck(ack, Some(props)), &mut out)
        .is_err()
        || transport.write_all(&out).await.is_err()
    {
        // Gone before its CONNACK: undone as a close would (its will is not published).
        crate::cluster_presence::forget_will(&ctx, &client_id, epoch);
        if let Some(scope) = &ctx.visibility {
            scope.signed_out(&identity.user);
        }
        ctx.presence.disconnected(&identity.user).await;
        return None;
    }
    out.clear();
    metrics::sign_in_accepted();
    metrics::connections(1.0);
    info!(role = %identity.role, version = ?version, persistent, "signed in");

    // A resumed session keeps the subscriptions of earlier tokens; drop those this token no
    // longer allows (say, a group the user has left).
    // A root wildcard it keeps only partially has its deliveries checked; someone else's
    // presence (`[presence] visibility = "groups"`), its presence deliveries.
    let partial = std::cell::Cell::new(false);
    let presence = std::cell::Cell::new(false);
    let revoked = if session_present {
        ctx.registry.revalidate(&client_id, |f| {
            match ctx.acl.subscribe_grant(&identity, &client_id, f) {
                Grant::Full => true,
                Grant::Partial if f.starts_with("im/presence/") => {
                    presence.set(true);
                    true
                }
                Grant::Partial => {
                    partial.set(true);
                    true
                }
                Grant::Denied => false,
            }
        })
    } else {
        ctx.registry.reset(&client_id);
        Vec::new()
    };

    let mut session = Session::new(
        version,
        identity,
        client_id,
        persistent,
        connect.keep_alive,
        will,
    );
    session.revoke(&revoked);
    if partial.get() {
        session.screen_deliveries();
    } else if presence.get() {
        session.screen_presence();
    }
    session.set_client_max_packet(client_max_packet);
    let ended = ctx
        .accounts
        .connected()
        .add(&session.identity.user, epoch, by_password);
    let mut conn = Connection {
        ctx: ctx.clone(),
        codec,
        transport,
        read: buf,
        write: out,
        link,
        session,
        epoch,
        client_max_packet,
        ended,
        by_password,
    };
    if !revoked.is_empty() {
        info!(filters = ?revoked, "resumed session: dropped subscriptions this token no longer allows");
        let unsubscribe = protocol::Unsubscribe {
            pkid: 0,
            filters: revoked,
        };
        conn.link
            .try_send(vec![Packet::Unsubscribe(unsubscribe, None)]);
    }
    Some(Accepted { conn, slot })
}

/// Reads more bytes, giving up at `deadline`. `false` when the connection is over.
async fn read_before(transport: &mut Transport, buf: &mut BytesMut, deadline: Instant) -> bool {
    match timeout_at(deadline, transport.read_into(buf)).await {
        Ok(Ok(n)) if n > 0 => true,
        Ok(Ok(_)) => {
            debug!("closed before CONNECT");
            false
        }
        Ok(Err(e)) => {
            debug!(error = %e, "read error before CONNECT");
            false
        }
        Err(_) => {
            metrics::protocol_error("connect_timeout");
            info!("closed: no CONNECT within the connect timeout");
            false
        }
    }
}

async fn refused(transport: &mut Transport, codec: Codec, refusal: Refusal, client_max: Limit) {
    metrics::sign_in_refused(refusal.reason());
    match &refusal {
        Refusal::BadToken(e) => warn!(cause = refusal.reason(), error = %e, "sign-in refused"),
        _ => warn!(cause = refusal.reason(), "sign-in refused"),
    }
    let why = Some(refusal.describe());
    refuse(
        transport,
        codec,
        refusal.code(codec.version),
        why,
        client_max,
    )
    .await;
}

/// The client's v5 Maximum Packet Size, if it gave one.
type Limit = Option<u32>;

/// Sends the refusing CONNACK and closes. v5 clients hear `why` as the reason string,
/// unless it would make the CONNACK larger than the client's Maximum Packet Size (MQTT 5
/// section 3.2.2.3.7): then it is left out, not the CONNACK.
async fn refuse(
    transport: &mut Transport,
    codec: Codec,
    code: ConnectReturnCode,
    why: Option<&str>,
    client_max: Limit,
) {
    let mut out = BytesMut::new();
    let ack = || ConnAck {
        session_present: false,
        code,
    };
    let props = (codec.version == Version::V5)
        .then_some(why)
        .flatten()
        .map(|why| ConnAckProperties {
            reason_string: Some(why.to_owned()),
            ..Default::default()
        });
    let fits = |out: &BytesMut| client_max.is_none_or(|max| out.len() <= max as usize);
    if props.is_some()
        && (codec
            .encode(Packet::ConnAck(ack(), props), &mut out)
            .is_err()
            || !fits(&out))
    {
        out.clear();
    }
    if out.is_empty()
        && codec
            .encode(Packet::ConnAck(ack(), None), &mut out)
            .is_err()
    {
        out.clear();
    }
    if !out.is_empty() {
        let _ = transport.write_all(&out).await;
    }
    transport.shutdown().await;
}
