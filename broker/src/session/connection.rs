//! A signed-in connection, from its CONNACK to its close: ACL checks on everything the
//! client sends, the router's deliveries and acks encoded back in the client's version,
//! keepalive, token expiry, and what happens when it ends (will, presence, router).

use super::link::RouterLink;
use crate::codec::{Codec, Version};
use crate::connect::Will;
use crate::metrics;
use crate::node::Context;
use crate::notice;
use crate::router::SystemMessage;
use crate::transport::Transport;
use bytes::BytesMut;
use futures_util::FutureExt;
use roost_auth::Identity;
use roost_history::payload::{self, ChatPayload};
use roost_history::stamp;
use rumqttd::protocol::{
    self, Disconnect, DisconnectProperties, DisconnectReasonCode, Packet, PingResp, PubAck,
    PubAckReason, PubComp, PubCompReason, PubRec, PubRecReason, PublishProperties, Subscribe,
    SubscribeReasonCode, UnsubAck, UnsubAckReason,
};
use rumqttd::Notification;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, warn};

/// Why a connection ended.
#[derive(Debug)]
pub(super) enum Close {
    /// DISCONNECT from the client; `will` asks for the will anyway (v5 reason 0x04).
    Disconnect {
        will: bool,
    },
    PeerGone,
    Io(std::io::Error),
    KeepAlive,
    TokenExpired,
    /// The router dropped the link: another connection took this client id.
    TakenOver,
    /// The client broke the protocol; v5 clients are told why.
    Protocol(DisconnectReasonCode, &'static str),
    /// Serving the connection panicked (a bug): it is closed and cleaned up all the same.
    Internal,
}

impl Close {
    /// The DISCONNECT a v5 client gets before the socket closes, if any.
    fn v5_reason(&self) -> Option<DisconnectReasonCode> {
        match self {
            Close::KeepAlive => Some(DisconnectReasonCode::KeepAliveTimeout),
            Close::TokenExpired => Some(DisconnectReasonCode::MaximumConnectTime),
            Close::TakenOver => Some(DisconnectReasonCode::SessionTakenOver),
            Close::Protocol(code, _) => Some(*code),
            Close::Internal => Some(DisconnectReasonCode::ImplementationSpecificError),
            Close::Disconnect { .. } | Close::PeerGone | Close::Io(_) => None,
        }
    }

    /// Why, in words, for the v5 DISCONNECT's reason string.
    fn describe(&self) -> &'static str {
        match self {
            Close::KeepAlive => "keepalive timeout",
            Close::TokenExpired => "token expired",
            Close::TakenOver => "session taken over by another connection",
            Close::Protocol(_, why) => why,
            Close::Internal => "internal error",
            Close::Disconnect { .. } => "disconnected by the client",
            Close::PeerGone | Close::Io(_) => "connection lost",
        }
    }

    fn publishes_will(&self) -> bool {
        !matches!(self, Close::Disconnect { will: false })
    }
}

pub(super) struct Connection {
    pub(super) ctx: Arc<Context>,
    pub(super) codec: Codec,
    pub(super) transport: Transport,
    pub(super) read: BytesMut,
    pub(super) write: BytesMut,
    pub(super) identity: Identity,
    pub(super) client_id: String,
    pub(super) link: RouterLink,
    pub(super) persistent: bool,
    /// The largest packet the client will take (v5 Maximum Packet Size).
    pub(super) client_max_packet: Option<u32>,
    pub(super) keepalive: Duration,
    /// SUBACKs the router owes, with the codes of the filters the front-end refused itself.
    pub(super) pending_subacks: HashMap<u16, Vec<Option<SubscribeReasonCode>>>,
    /// QoS 2 publishes refused with a successful PUBREC (v3.1.1): their PUBREL is ours to answer.
    pub(super) refused_qos2: HashSet<u16>,
    /// QoS 1 and 2 publishes from the client the router has not acknowledged yet.
    pub(super) unacked_in: HashSet<u16>,
}

/// What handling a batch of input decided.
enum Flow {
    Continue,
    /// Bytes arrived: decode them (outside the `select!`, see `run`).
    Input,
    Close(Close),
}

impl Connection {
    pub(super) async fn run(&mut self) -> Close {
        // MQTT: the server closes a connection silent for one and a half keepalives.
        let keepalive = (!self.keepalive.is_zero()).then(|| self.keepalive.mul_f32(1.5));
        let expires = instant_of(self.identity.expires_at);
        let idle_deadline = |now: Instant| keepalive.map_or(expires, |k| (now + k).min(expires));
        // One timer for both ends (silence and token expiry): this future lives as long as
        // the connection, once per client, so it is kept small.
        let timer = sleep_until(idle_deadline(Instant::now()));
        tokio::pin!(timer);

        // Anything already read after the CONNECT.
        if !self.read.is_empty() {
            if let Flow::Close(close) = self.handle_input().await {
                return close;
            }
        }

        loop {
            let mut unscheduled = false;
            let flow = tokio::select! {
                read = self.transport.read_into(&mut self.read) => match read {
                    Ok(0) => Flow::Close(Close::PeerGone),
                    Err(e) => Flow::Close(Close::Io(e)),
                    Ok(_) => {
                        if keepalive.is_some() {
                            timer.as_mut().reset(idle_deadline(Instant::now()));
                        }
                        Flow::Input
                    }
                },
                notification = self.link.link.rx.next() => match notification {
                    Ok(Some(first)) => {
                        let mut flow = self.handle_notification(first, &mut unscheduled);
                        // Drain whatever else the router has ready, to write it in one go.
                        while matches!(flow, Flow::Continue) {
                            match self.link.link.rx.next().now_or_never() {
                                Some(Ok(Some(n))) => flow = self.handle_notification(n, &mut unscheduled),
                                _ => break,
                            }
                        }
                        flow
                    }
                    Ok(None) => Flow::Continue,
                    Err(_) => {
                        self.link.gone = true;
                        Flow::Close(Close::TakenOver)
                    }
                },
                () = &mut timer => Flow::Close(if Instant::now() >= expires {
                    Close::TokenExpired
                } else {
                    Close::KeepAlive
                }),
            };
            // Awaited here rather than in its `select!` arm, where the select's output (a
            // router notification) would stay alive across the await and in the future.
            let flow = match flow {
                Flow::Input => self.handle_input().await,
                other => other,
            };
            if !self.write.is_empty() {
                if let Err(e) = self.transport.write_all(&self.write).await {
                    return Close::Io(e);
                }
                self.write.clear();
                if self.write.capacity() > 64 * 1024 {
                    // Don't keep a large buffer around for one large message.
                    self.write = BytesMut::with_capacity(1024);
                }
            }
            if unscheduled && self.link.link.rx.wake().await.is_err() {
                self.link.gone = true;
                return Close::TakenOver;
            }
            if let Flow::Close(close) = flow {
                return close;
            }
        }
    }

    /// Decodes and handles every whole packet in the read buffer.
    async fn handle_input(&mut self) -> Flow {
        let mut to_router = Vec::new();
        let mut notices = Vec::new();
        let flow = loop {
            let incoming = match self.codec.decode(&mut self.read) {
                Ok(Some(incoming)) => incoming,
                Ok(None) => break Flow::Continue,
                Err(e) => break Flow::Close(decode_error(e)),
            };
            match self.handle_packet(incoming, &mut to_router, &mut notices) {
                Flow::Continue => {}
                close => break close,
            }
        };
        if self.read.is_empty() && self.read.capacity() > 64 * 1024 {
            self.read = BytesMut::with_capacity(256);
        }
        // Allowed packets read before a protocol error still go through, in order.
        if !self.link.send(to_router) {
            return Flow::Close(Close::TakenOver);
        }
        for notice in notices {
            // Boxed: notices are rare, and inline this future would size every connection's
            // task for them.
            Box::pin(self.ctx.system.publish(notice)).await;
        }
        flow
    }

    fn handle_packet(
        &mut self,
        packet: Packet,
        to_router: &mut Vec<Packet>,
        notices: &mut Vec<SystemMessage>,
    ) -> Flow {
        match packet {
            Packet::Publish(publish, props) => {
                let (qos, pkid) = (publish.qos() as u8, publish.pkid());
                if props.as_ref().is_some_and(|p| p.topic_alias.is_some()) {
                    return Flow::Close(Close::Protocol(
                        DisconnectReasonCode::TopicAliasInvalid,
                        "topic alias (the server allows none)",
                    ));
                }
                let Ok(topic) = std::str::from_utf8(&publish.topic) else {
                    // Ill-formed UTF-8 makes a Malformed Packet (MQTT 5 section 1.5.4).
                    return Flow::Close(Close::Protocol(
                        DisconnectReasonCode::MalformedPacket,
                        "invalid UTF-8 in the publish topic",
                    ));
                };
                if !valid_publish_topic(topic) {
                    return Flow::Close(Close::Protocol(
                        DisconnectReasonCode::TopicNameInvalid,
                        "invalid publish topic",
                    ));
                }
                let receive_maximum = usize::from(self.ctx.limits.receive_maximum);
                if qos > 0
                    && !self.unacked_in.contains(&pkid)
                    && self.unacked_in.len() >= receive_maximum
                {
                    return Flow::Close(Close::Protocol(
                        DisconnectReasonCode::ReceiveMaximumExceeded,
                        "more unacknowledged publishes than the receive maximum",
                    ));
                }
                if !self
                    .ctx
                    .acl
                    .can_publish(&self.identity, &self.client_id, topic)
                {
                    metrics::acl_denied("publish");
                    info!(topic, "publish denied");
                    notices.push(notice::error(
                        &self.identity.user,
                        notice::payload_id(&publish.payload).as_deref(),
                        notice::FORBIDDEN,
                        format!("not allowed to publish to {topic}"),
                    ));
                    self.refuse_publish(qos, pkid, Refused::NotAuthorized);
                    return Flow::Continue;
                }
                if payload::is_stored_topic(topic) {
                    if let Err(e) = ChatPayload::parse(&publish.payload) {
                        metrics::payload_refused(e.code);
                        info!(topic, code = e.code, "chat payload refused");
                        notices.push(notice::error(
                            &self.identity.user,
                            notice::payload_id(&publish.payload).as_deref(),
                            e.code,
                            e.message,
                        ));
                        self.refuse_publish(qos, pkid, Refused::BadPayload);
                        return Flow::Continue;
                    }
                }
                let props = stamp_identity(props, &self.identity, topic);
                if qos > 0 {
                    self.unacked_in.insert(pkid);
                }
                metrics::message_in();
                to_router.push(Packet::Publish(detach(publish), props));
            }
            Packet::Subscribe(subscribe, props) => {
                self.subscribe(subscribe, props, to_router, notices)
            }
            Packet::Unsubscribe(unsubscribe, _) => {
                for filter in &unsubscribe.filters {
                    self.ctx.sessions.unsubscribed(&self.client_id, filter);
                }
                // The router acks only filters it knows, once per filter; the client is owed
                // exactly one UNSUBACK with one reason per filter, so the front-end answers.
                let reasons = vec![UnsubAckReason::Success; unsubscribe.filters.len()];
                self.queue(Packet::UnsubAck(
                    UnsubAck {
                        pkid: unsubscribe.pkid,
                        reasons,
                    },
                    None,
                ));
                to_router.push(Packet::Unsubscribe(unsubscribe, None));
            }
            Packet::PubRel(pubrel, props) => {
                if self.refused_qos2.remove(&pubrel.pkid) {
                    self.queue(Packet::PubComp(
                        PubComp {
                            pkid: pubrel.pkid,
                            reason: PubCompReason::Success,
                        },
                        None,
                    ));
                } else {
                    to_router.push(Packet::PubRel(pubrel, props));
                }
            }
            ack @ (Packet::PubAck(..) | Packet::PubRec(..) | Packet::PubComp(..)) => {
                to_router.push(ack)
            }
            Packet::PingReq(_) => self.queue(Packet::PingResp(PingResp)),
            Packet::Disconnect(disconnect, _) => {
                let will =
                    disconnect.reason_code == DisconnectReasonCode::DisconnectWithWillMessage;
                return Flow::Close(Close::Disconnect { will });
            }
            Packet::Connect(..) => {
                return Flow::Close(Close::Protocol(
                    DisconnectReasonCode::ProtocolError,
                    "second CONNECT",
                ))
            }
            _ => {
                return Flow::Close(Close::Protocol(
                    DisconnectReasonCode::ProtocolError,
                    "packet a client may not send",
                ))
            }
        }
        Flow::Continue
    }

    /// Answers a refused publish: v5 hears why, v3.1.1 (which has no way to say it) gets a
    /// normal ack and the message is dropped. Both get an `error` notice.
    fn refuse_publish(&mut self, qos: u8, pkid: u16, why: Refused) {
        let v5 = self.codec.version == Version::V5;
        match qos {
            1 => {
                let reason = match (v5, why) {
                    (false, _) => PubAckReason::Success,
                    (true, Refused::NotAuthorized) => PubAckReason::NotAuthorized,
                    (true, Refused::BadPayload) => PubAckReason::PayloadFormatInvalid,
                };
                self.queue(Packet::PubAck(PubAck { pkid, reason }, None));
            }
            2 => {
                let reason = if v5 {
                    match why {
                        Refused::NotAuthorized => PubRecReason::NotAuthorized,
                        Refused::BadPayload => PubRecReason::PayloadFormatInvalid,
                    }
                } else {
                    self.refused_qos2.insert(pkid);
                    PubRecReason::Success
                };
                self.queue(Packet::PubRec(PubRec { pkid, reason }, None));
            }
            _ => {}
        }
    }

    fn subscribe(
        &mut self,
        mut subscribe: Subscribe,
        props: Option<protocol::SubscribeProperties>,
        to_router: &mut Vec<Packet>,
        notices: &mut Vec<SystemMessage>,
    ) {
        let v5 = self.codec.version == Version::V5;
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut allowed = Vec::with_capacity(subscribe.filters.len());
        for filter in subscribe.filters.drain(..) {
            let code = if !protocol::valid_filter(&filter.path) {
                Some(if v5 {
                    SubscribeReasonCode::TopicFilterInvalid
                } else {
                    SubscribeReasonCode::Failure
                })
            } else if !self
                .ctx
                .acl
                .can_subscribe(&self.identity, &self.client_id, &filter.path)
            {
                metrics::acl_denied("subscribe");
                info!(filter = filter.path, "subscribe denied");
                notices.push(notice::error(
                    &self.identity.user,
                    None,
                    notice::FORBIDDEN,
                    format!("not allowed to subscribe to {}", filter.path),
                ));
                Some(if v5 {
                    SubscribeReasonCode::NotAuthorized
                } else {
                    SubscribeReasonCode::Failure
                })
            } else if !self.ctx.sessions.subscribed(
                &self.client_id,
                &filter.path,
                self.ctx.limits.max_subscriptions,
            ) {
                Some(if v5 {
                    SubscribeReasonCode::QuotaExceeded
                } else {
                    SubscribeReasonCode::Failure
                })
            } else {
                None
            };
            if code.is_none() {
                allowed.push(filter);
            }
            codes.push(code);
        }
        if allowed.is_empty() {
            let return_codes = codes.into_iter().flatten().collect();
            self.queue(Packet::SubAck(
                protocol::SubAck {
                    pkid: subscribe.pkid,
                    return_codes,
                },
                None,
            ));
            return;
        }
        self.pending_subacks.insert(subscribe.pkid, codes);
        subscribe.filters = allowed;
        to_router.push(Packet::Subscribe(subscribe, props));
    }

    fn handle_notification(&mut self, notification: Notification, unscheduled: &mut bool) -> Flow {
        let packet = match notification {
            Notification::Forward(forward) => {
                metrics::messages_out(1);
                Packet::Publish(forward.publish, forward.properties)
            }
            Notification::DeviceAck(ack) => match Packet::from(ack) {
                Packet::SubAck(mut suback, props) => {
                    if let Some(codes) = self.pending_subacks.remove(&suback.pkid) {
                        let mut granted = suback.return_codes.into_iter();
                        suback.return_codes = codes
                            .into_iter()
                            .map(|own| {
                                own.or_else(|| granted.next())
                                    .unwrap_or(SubscribeReasonCode::Failure)
                            })
                            .collect();
                    }
                    Packet::SubAck(suback, props)
                }
                // Answered by the front-end already (see Unsubscribe).
                Packet::UnsubAck(..) => return Flow::Continue,
                Packet::PubAck(puback, props) => {
                    self.unacked_in.remove(&puback.pkid);
                    Packet::PubAck(puback, props)
                }
                Packet::PubComp(pubcomp, props) => {
                    self.unacked_in.remove(&pubcomp.pkid);
                    Packet::PubComp(pubcomp, props)
                }
                packet => packet,
            },
            Notification::Unschedule => {
                *unscheduled = true;
                return Flow::Continue;
            }
            Notification::Disconnect(disconnect, _) => {
                self.link.gone = true;
                return Flow::Close(Close::Protocol(
                    disconnect.reason_code,
                    "router closed the link",
                ));
            }
            _ => return Flow::Continue,
        };
        self.queue(packet);
        Flow::Continue
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
    pub(super) async fn finish(&mut self, close: Close, will: Option<Will>) {
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

        match &close {
            Close::Disconnect { .. } | Close::PeerGone => info!(cause = ?close, "disconnected"),
            Close::Protocol(_, why) => {
                metrics::protocol_error("client_protocol_error");
                warn!(cause = why, "closed: protocol error")
            }
            Close::Io(e) => info!(error = %e, "closed: connection error"),
            _ => info!(cause = ?close, "closed"),
        }

        // Tell the router before the will goes out, so a subscriber sees this client gone
        // by the time it reads the will.
        self.link.close();
        if !self.persistent && !matches!(close, Close::TakenOver) {
            self.ctx.sessions.ended(&self.client_id);
        }
        if close.publishes_will() {
            if let Some(will) = will {
                self.ctx
                    .sessions
                    .publish_will(&self.ctx, &self.client_id, will);
            }
        }
        self.ctx.presence.disconnected(&self.identity.user).await;
        metrics::connections(-1.0);
    }
}

/// Why the front-end refused a publish.
#[derive(Clone, Copy)]
enum Refused {
    NotAuthorized,
    BadPayload,
}

/// The publish with its topic and payload in allocations of their own. Decoded, they are
/// slices of the connection's read buffer, and each message the router keeps in a filter's
/// log would keep that whole buffer alive.
fn detach(mut publish: rumqttd::protocol::Publish) -> rumqttd::protocol::Publish {
    publish.topic = bytes::Bytes::copy_from_slice(&publish.topic);
    publish.payload = bytes::Bytes::copy_from_slice(&publish.payload);
    publish
}

/// Removes `roost-` user properties a client set, and stamps the sender's verified identity
/// on requests for the history service (see `roost_history::stamp`).
fn stamp_identity(
    props: Option<PublishProperties>,
    who: &Identity,
    topic: &str,
) -> Option<PublishProperties> {
    let mut props = props;
    if let Some(p) = props.as_mut() {
        p.user_properties.retain(|(k, _)| !stamp::is_reserved(k));
    }
    if topic.starts_with("im/req/") {
        let p = props.get_or_insert_with(Default::default);
        p.user_properties.extend([
            (stamp::USER.to_owned(), who.user.clone()),
            (stamp::GROUPS.to_owned(), who.groups.join(",")),
            (stamp::ROLE.to_owned(), who.role.to_string()),
        ]);
    }
    props
}

fn decode_error(e: protocol::Error) -> Close {
    use protocol::Error as E;
    let code = match e {
        E::PayloadSizeLimitExceeded(_) => DisconnectReasonCode::PacketTooLarge,
        E::PacketIdZero | E::UnexpectedPacket(_) => DisconnectReasonCode::ProtocolError,
        // QoS 3 (both QoS bits set) included: a Malformed Packet (MQTT 5 section 3.3.1.2).
        _ => DisconnectReasonCode::MalformedPacket,
    };
    let why = match e {
        E::PayloadSizeLimitExceeded(_) => "packet larger than the maximum packet size",
        E::InvalidQoS(_) => "QoS 3",
        E::TopicNotUtf8 | E::PayloadNotUtf8(_) => "invalid UTF-8",
        E::UnexpectedPacket(_) => "packet a client may not send",
        _ => "malformed packet",
    };
    Close::Protocol(code, why)
}

/// A topic a client may publish to: UTF-8 (checked by the caller), not empty, no wildcards,
/// no NUL, not a `$` system topic.
pub fn valid_publish_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 65535
        && !topic.contains(['+', '#', '\0'])
        && !topic.starts_with('$')
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
