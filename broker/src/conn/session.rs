//! The MQTT session rules of one signed-in connection, as plain state: no socket, no router,
//! no clock. The connection loop ([`super::serve`]) feeds it what the client sent
//! ([`Session::on_client`]) and what the router sent ([`Session::on_router`]) and carries out
//! the [`Actions`] it returns, so every rule here is unit-tested without I/O
//! (`session_tests.rs`).
//!
//! It holds the ACL and payload checks on what the client sends, the QoS 1/2 inflight state
//! in both directions (receive maximum, duplicate QoS 2 packet ids), the SUBACKs the router
//! owes, keepalive and token-expiry deadlines, and the will.

use super::aliases::Aliases;
pub(crate) use super::close::Close;
use super::inbound::{
    decode_error, detach, ephemeral_refusal, foreign_response_topic, ingress_topic,
    response_topic_error, stamp_identity, valid_publish_topic,
};
use super::sign_in::Will;
use crate::codec::Version;
use crate::metrics;
use crate::notice;
use crate::registry::Registry;
use crate::retained::RetainRefusal;
pub(crate) use crate::retained::Retained;
use crate::revoked::Revoked;
use crate::router::SystemMessage;
use roost_auth::{Acl, Grant, Identity, Role};
use roost_config::Limits;
use roost_proto::chat::ChatMessage;
use roost_proto::delivered::MAX_STAMPED_PAYLOAD;
use roost_proto::limits::MAX_CHAT_PAYLOAD;
use roost_proto::stamp;
use rumqttd::protocol::{
    self, DisconnectReasonCode, Packet, PingResp, PubAck, PubAckReason, PubComp, PubCompReason,
    PubRec, PubRecReason, Publish, PublishProperties, Subscribe, SubscribeReasonCode, UnsubAck,
    UnsubAckReason,
};
use rumqttd::Notification;
use std::collections::HashMap;
use std::time::Duration;
use tracing::{debug, info};

/// What the session reads besides its own state: the node's rules and shared registry.
pub(crate) struct Env<'a> {
    pub(crate) acl: &'a Acl,
    pub(crate) registry: &'a Registry,
    pub(crate) limits: &'a Limits,
    pub(crate) retained: &'a Retained,
    /// Stamped delivery (`history.delivery`): chat goes to the history service's ingress.
    pub(crate) stamped: bool,
}

/// What the connection loop is to do after an event, in order: answer the client, pass
/// packets to the router, publish notices.
#[derive(Default, Debug)]
pub(crate) struct Actions {
    pub(crate) to_client: Vec<Packet>,
    pub(crate) to_router: Vec<Packet>,
    pub(crate) notices: Vec<SystemMessage>,
}

/// Where a QoS 1 or 2 publish from the client stands, by packet id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inbound {
    /// QoS 1, passed to the router; waits for its PUBACK.
    AtLeastOnce,
    /// QoS 2, passed to the router; waits for the router's PUBREC.
    Routed,
    /// QoS 2, PUBREC sent; waits for the client's PUBREL. A PUBLISH with this id now is a
    /// duplicate.
    Received,
    /// QoS 2, PUBREL passed to the router; waits for its PUBCOMP.
    Released,
    /// QoS 2 refused with a successful PUBREC (v3.1.1 cannot say why): its PUBREL is ours
    /// to answer.
    Refused,
}

/// One signed-in client's session state. Kept compact: it lives in the connection task for
/// the connection's whole life, once per client.
pub(crate) struct Session {
    pub(crate) version: Version,
    pub(crate) identity: Identity,
    pub(crate) client_id: String,
    /// The session outlives the connection.
    pub(crate) persistent: bool,
    /// QoS 1/2 deliveries awaiting the client's PUBACK/PUBREC, and PUBRELs awaiting its
    /// PUBCOMP: where the node's own acks of dropped deliveries queue up (see `revoked`).
    out_unacked: u16,
    out_unreleased: u16,
    keepalive: Duration,
    /// QoS 1/2 publishes from the client not finished yet; at most the receive maximum.
    inbound: HashMap<u16, Inbound>,
    /// SUBACKs the router owes, with the codes of the filters the front-end refused itself.
    pending_subacks: HashMap<u16, Vec<Option<SubscribeReasonCode>>>,
    /// Boxed: most clients leave none, and it is large.
    will: Option<Box<Will>>,
    /// Filters of the resumed session this token no longer allows, or a root wildcard granted
    /// partially: deliveries to check (see `revoked`); boxed and usually `None`, like the will.
    revoked: Option<Box<Revoked>>,
    /// The client's MQTT 5 topic aliases; boxed and `None` until it sets one.
    aliases: Option<Box<Aliases>>,
    /// The client's v5 Maximum Packet Size, stamped on its requests so answers fit.
    client_max_packet: Option<std::num::NonZeroU32>,
}

impl Session {
    pub(crate) fn new(
        version: Version,
        identity: Identity,
        client_id: String,
        persistent: bool,
        keepalive_secs: u16,
        will: Option<Will>,
    ) -> Session {
        Session {
            version,
            identity,
            client_id,
            persistent,
            out_unacked: 0,
            out_unreleased: 0,
            keepalive: Duration::from_secs(u64::from(keepalive_secs)),
            inbound: HashMap::new(),
            pending_subacks: HashMap::new(),
            will: will.map(Box::new),
            revoked: None,
            aliases: None,
            client_max_packet: None,
        }
    }

    /// The largest packet the client takes (v5 CONNECT Maximum Packet Size).
    pub(crate) fn set_client_max_packet(&mut self, max: Option<u32>) {
        // 0 is not a size MQTT allows; NonZero keeps the session as small as it was.
        self.client_max_packet = max.and_then(std::num::NonZeroU32::new);
    }

    /// The resumed session's `filters` were unsubscribed at sign-in: what still comes
    /// through them is not delivered.
    pub(crate) fn revoke(&mut self, filters: &[String]) {
        if !filters.is_empty() {
            self.revoked = Some(Box::new(self.new_revoked(filters)));
        }
    }

    /// How long the client may stay silent: one and a half keepalives (MQTT), or `None`
    /// when keepalive is off.
    pub(crate) fn silence_limit(&self) -> Option<Duration> {
        (!self.keepalive.is_zero()).then(|| self.keepalive.mul_f32(1.5))
    }

    /// The unix time (seconds) the connection ends for its token: the token's `exp` plus
    /// the clock skew sign-in tolerated, so a token accepted within the skew is not closed
    /// at once.
    pub(crate) fn expires_at(&self) -> u64 {
        self.identity
            .expires_at
            .saturating_add(roost_auth::LEEWAY_SECS)
    }

    /// Why the connection ends when its one timer fires: `token_expired` tells which of the
    /// two deadlines it was.
    pub(crate) fn on_timer(&self, token_expired: bool) -> Close {
        if token_expired {
            Close::TokenExpired
        } else {
            Close::KeepAlive
        }
    }

    /// The connection ended: the will to publish, if this close calls for it.
    pub(crate) fn on_close(&mut self, close: &Close) -> Option<Will> {
        let will = self.will.take()?;
        close.publishes_will().then_some(*will)
    }

    /// A decode error in what the client sent.
    pub(crate) fn on_decode_error(&self, e: protocol::Error) -> Close {
        decode_error(e)
    }

    /// One packet from the client. `Err` closes the connection, after the actions already
    /// decided for earlier packets are carried out.
    pub(crate) fn on_client(
        &mut self,
        packet: Packet,
        env: &Env,
        out: &mut Actions,
    ) -> Result<(), Close> {
        match packet {
            Packet::Publish(publish, props) => self.publish(publish, props, env, out)?,
            Packet::Subscribe(subscribe, props) => self.subscribe(subscribe, props, env, out),
            Packet::Unsubscribe(unsubscribe, _) => {
                // The router acks only filters it knows, once per filter; the client is owed
                // exactly one UNSUBACK with one reason per filter, so the front-end answers:
                // MQTT 5 0x11 for a filter the session does not have (3.1.1 has no reasons).
                let reasons = unsubscribe
                    .filters
                    .iter()
                    .map(|filter| {
                        if env.registry.unsubscribed(&self.client_id, filter) {
                            UnsubAckReason::Success
                        } else {
                            UnsubAckReason::NoSubscriptionExisted
                        }
                    })
                    .collect();
                out.to_client.push(Packet::UnsubAck(
                    UnsubAck {
                        pkid: unsubscribe.pkid,
                        reasons,
                    },
                    None,
                ));
                out.to_router.push(Packet::Unsubscribe(unsubscribe, None));
            }
            Packet::PubRel(pubrel, props) => match self.inbound.get(&pubrel.pkid) {
                Some(Inbound::Refused) => {
                    self.inbound.remove(&pubrel.pkid);
                    out.to_client.push(Packet::PubComp(
                        PubComp {
                            pkid: pubrel.pkid,
                            reason: PubCompReason::Success,
                        },
                        None,
                    ));
                }
                // No QoS 2 publish of this connection has the id (the router's state is per
                // connection too): the flow is complete. MQTT 5 says so with 0x92.
                None => {
                    let reason = match self.version {
                        Version::V5 => PubCompReason::PacketIdentifierNotFound,
                        Version::V311 => PubCompReason::Success,
                    };
                    let pkid = pubrel.pkid;
                    debug!(pkid, "PUBREL for an unknown packet id");
                    out.to_client
                        .push(Packet::PubComp(PubComp { pkid, reason }, None));
                }
                Some(_) => {
                    self.inbound.insert(pubrel.pkid, Inbound::Released);
                    out.to_router.push(Packet::PubRel(pubrel, props));
                }
            },
            ack @ (Packet::PubAck(..) | Packet::PubRec(..) | Packet::PubComp(..)) => {
                if let Packet::PubComp(..) = ack {
                    self.out_unreleased = self.out_unreleased.saturating_sub(1);
                } else {
                    self.out_unacked = self.out_unacked.saturating_sub(1);
                }
                match self.revoked.as_deref_mut() {
                    Some(revoked) => revoked.client_ack(ack, &mut out.to_router),
                    None => out.to_router.push(ack),
                }
            }
            Packet::PingReq(_) => out.to_client.push(Packet::PingResp(PingResp)),
            Packet::Disconnect(disconnect, _) => {
                let will =
                    disconnect.reason_code == DisconnectReasonCode::DisconnectWithWillMessage;
                return Err(Close::Disconnect { will });
            }
            Packet::Connect(..) => {
                return Err(Close::Protocol(
                    DisconnectReasonCode::ProtocolError,
                    "second CONNECT",
                ))
            }
            _ => {
                return Err(Close::Protocol(
                    DisconnectReasonCode::ProtocolError,
                    "packet a client may not send",
                ))
            }
        }
        Ok(())
    }

    fn publish(
        &mut self,
        mut publish: Publish,
        mut props: Option<PublishProperties>,
        env: &Env,
        out: &mut Actions,
    ) -> Result<(), Close> {
        let (qos, pkid) = (publish.qos() as u8, publish.pkid());
        // A topic alias is the client's shorthand with this node: resolved here, so the ACL
        // judges the real topic, and stripped, so no subscriber sees it.
        if let Some(alias) = props.as_mut().and_then(|p| p.topic_alias.take()) {
            let aliases = self.aliases.get_or_insert_default();
            publish.topic = aliases.resolve(alias, publish.topic, env)?;
        }
        let Ok(topic) = std::str::from_utf8(&publish.topic) else {
            // Ill-formed UTF-8 makes a Malformed Packet (MQTT 5 section 1.5.4).
            return Err(Close::Protocol(
                DisconnectReasonCode::MalformedPacket,
                "invalid UTF-8 in the publish topic",
            ));
        };
        if !valid_publish_topic(topic) {
            return Err(Close::Protocol(
                DisconnectReasonCode::TopicNameInvalid,
                "invalid publish topic",
            ));
        }
        if let Some(close) = response_topic_error(props.as_ref()) {
            return Err(close);
        }
        let state = self.inbound.get(&pkid).copied();
        if qos == 2 {
            match state {
                // Exactly once: a QoS 2 id still awaiting its PUBREL is a copy of what was
                // taken. It is answered again and neither routed nor stored again.
                Some(Inbound::Received | Inbound::Refused) => {
                    debug!(pkid, "duplicate QoS 2 publish answered again");
                    let reason = PubRecReason::Success;
                    out.to_client
                        .push(Packet::PubRec(PubRec { pkid, reason }, None));
                    return Ok(());
                }
                // The router's PUBREC for the first copy is on its way.
                Some(Inbound::Routed) => {
                    debug!(pkid, "duplicate QoS 2 publish dropped");
                    return Ok(());
                }
                _ => {}
            }
        }
        let receive_maximum = usize::from(env.limits.receive_maximum);
        if qos > 0 && state.is_none() && self.inbound.len() >= receive_maximum {
            return Err(Close::Protocol(
                DisconnectReasonCode::ReceiveMaximumExceeded,
                "more unacknowledged publishes than the receive maximum",
            ));
        }
        if !env.acl.can_publish(&self.identity, &self.client_id, topic) {
            metrics::acl_denied("publish");
            info!(topic, "publish denied");
            out.notices.push(notice::error(
                &self.identity.user,
                notice::payload_id(&publish.payload).as_deref(),
                notice::FORBIDDEN,
                format!("not allowed to publish to {topic}"),
            ));
            self.refuse_publish(qos, pkid, Refused::NotAuthorized, out);
            return Ok(());
        }
        if let Some(refusal) =
            foreign_response_topic(&self.identity, &self.client_id, topic, &props)
        {
            metrics::acl_denied("response_topic");
            info!(
                topic,
                "request refused: Response Topic outside the user's im/sys"
            );
            out.notices.push(refusal);
            self.refuse_publish(qos, pkid, Refused::NotAuthorized, out);
            return Ok(());
        }
        if let Some(why) = ephemeral_refusal(&self.identity, topic, &publish.payload) {
            metrics::payload_refused(notice::INVALID_PAYLOAD);
            info!(topic, "presence status or signal refused");
            let user = self.identity.user.as_str();
            out.notices
                .push(notice::error(user, None, notice::INVALID_PAYLOAD, why));
            self.refuse_publish(qos, pkid, Refused::BadPayload, out);
            return Ok(());
        }
        let stored = roost_proto::topic::is_stored(topic);
        // A history worker's stamped copy goes to the recipients as it is (see `route`).
        let stamped_copy = stored
            && self.identity.role == Role::Service
            && props
                .as_ref()
                .is_some_and(|p| stamp::is_stamped_copy(&p.user_properties));
        if stored {
            let limit = if stamped_copy {
                MAX_STAMPED_PAYLOAD
            } else {
                MAX_CHAT_PAYLOAD
            };
            if let Err(e) = ChatMessage::parse_within(&publish.payload, limit) {
                metrics::payload_refused(e.code());
                info!(topic, code = e.code(), "chat payload refused");
                out.notices.push(notice::error(
                    &self.identity.user,
                    notice::payload_id(&publish.payload).as_deref(),
                    e.code(),
                    e.to_string(),
                ));
                self.refuse_publish(qos, pkid, Refused::BadPayload, out);
                return Ok(());
            }
        }
        if publish.retain {
            let user = self.identity.user.as_str();
            if let Err(r) = env.retained.admit(user, topic, &publish.payload) {
                let id = notice::payload_id(&publish.payload);
                let message = r.message(topic);
                out.notices
                    .push(notice::error(user, id.as_deref(), r.code(), message));
                self.refuse_publish(qos, pkid, Refused::Retain(r), out);
                return Ok(());
            }
        }
        let mut props = stamp_identity(
            props,
            &self.identity,
            (&self.client_id, self.client_max_packet.map(u32::from)),
            topic,
        );
        match qos {
            1 => {
                self.inbound.insert(pkid, Inbound::AtLeastOnce);
            }
            2 => {
                self.inbound.insert(pkid, Inbound::Routed);
            }
            _ => {}
        }
        metrics::message_in();
        // Stamped delivery: to the history service, which delivers it once stored.
        let ingress = (stored && env.stamped && !stamped_copy).then(|| ingress_topic(topic));
        let mut publish = detach(publish);
        if let Some(ingress) = ingress {
            publish.topic = ingress.into();
            if qos == 2 {
                // The history service reads at QoS 1; the copy goes out at the QoS sent.
                let p = props.get_or_insert_with(Default::default);
                p.user_properties
                    .push((stamp::QOS.to_owned(), "2".to_owned()));
            }
        }
        out.to_router.push(Packet::Publish(publish, props));
        Ok(())
    }

    /// Answers a refused publish: v5 hears why, v3.1.1 (which has no way to say it) gets a
    /// normal ack and the message is dropped. Both get an `error` notice.
    fn refuse_publish(&mut self, qos: u8, pkid: u16, why: Refused, out: &mut Actions) {
        let v5 = self.version == Version::V5;
        match qos {
            1 => {
                let reason = match (v5, why) {
                    (false, _) => PubAckReason::Success,
                    (true, Refused::NotAuthorized) => PubAckReason::NotAuthorized,
                    (true, Refused::BadPayload) => PubAckReason::PayloadFormatInvalid,
                    (true, Refused::Retain(RetainRefusal::NotAllowed)) => {
                        PubAckReason::ImplementationSpecificError
                    }
                    (true, Refused::Retain(RetainRefusal::QuotaExceeded)) => {
                        PubAckReason::QuotaExceeded
                    }
                };
                out.to_client
                    .push(Packet::PubAck(PubAck { pkid, reason }, None));
            }
            2 => {
                let reason = if v5 {
                    match why {
                        Refused::NotAuthorized => PubRecReason::NotAuthorized,
                        Refused::BadPayload => PubRecReason::PayloadFormatInvalid,
                        Refused::Retain(RetainRefusal::NotAllowed) => {
                            PubRecReason::ImplementationSpecificError
                        }
                        Refused::Retain(RetainRefusal::QuotaExceeded) => {
                            PubRecReason::QuotaExceeded
                        }
                    }
                } else {
                    self.inbound.insert(pkid, Inbound::Refused);
                    PubRecReason::Success
                };
                out.to_client
                    .push(Packet::PubRec(PubRec { pkid, reason }, None));
            }
            _ => {}
        }
    }

    fn subscribe(
        &mut self,
        mut subscribe: Subscribe,
        props: Option<protocol::SubscribeProperties>,
        env: &Env,
        out: &mut Actions,
    ) {
        let v5 = self.version == Version::V5;
        let refused = |v5_code| {
            Some(if v5 {
                v5_code
            } else {
                SubscribeReasonCode::Failure
            })
        };
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut allowed = Vec::with_capacity(subscribe.filters.len());
        for filter in subscribe.filters.drain(..) {
            let code = if !protocol::valid_filter(&filter.path) {
                refused(SubscribeReasonCode::TopicFilterInvalid)
            } else if !self.grant(env.acl, &filter.path) {
                metrics::acl_denied("subscribe");
                info!(filter = filter.path, "subscribe denied");
                out.notices.push(notice::error(
                    &self.identity.user,
                    None,
                    notice::FORBIDDEN,
                    format!("not allowed to subscribe to {}", filter.path),
                ));
                refused(SubscribeReasonCode::NotAuthorized)
            } else if !env.registry.subscribed(
                &self.client_id,
                &filter.path,
                env.limits.max_subscriptions,
            ) {
                metrics::limit_refused("subscriptions");
                refused(SubscribeReasonCode::QuotaExceeded)
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
            out.to_client.push(Packet::SubAck(
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
        out.to_router.push(Packet::Subscribe(subscribe, props));
    }

    /// Whether `filter` may be subscribed. A filter granted only partially (a root wildcard)
    /// turns on the per-delivery read check for the rest of the connection: the router may
    /// still deliver through it after an UNSUBSCRIBE, so it never turns off.
    fn grant(&mut self, acl: &Acl, filter: &str) -> bool {
        match acl.subscribe_grant(&self.identity, &self.client_id, filter) {
            Grant::Full => true,
            // Someone else's presence (`[presence] visibility = "groups"`): only presence
            // deliveries need the check.
            Grant::Partial if filter.starts_with("im/presence/") => {
                self.screen_presence();
                true
            }
            Grant::Partial => {
                self.screen_deliveries();
                true
            }
            Grant::Denied => false,
        }
    }

    /// From now on, every delivery is checked against the user's read rights.
    pub(crate) fn screen_deliveries(&mut self) {
        if self.revoked.is_none() {
            self.revoked = Some(Box::new(self.new_revoked(&[])));
        }
        if let Some(revoked) = self.revoked.as_deref_mut() {
            revoked.screen_all();
        }
    }

    /// From now on, every presence delivery is checked against the user's read rights.
    pub(crate) fn screen_presence(&mut self) {
        if self.revoked.is_none() {
            self.revoked = Some(Box::new(self.new_revoked(&[])));
        }
        if let Some(revoked) = self.revoked.as_deref_mut() {
            revoked.screen_presence();
        }
    }

    fn new_revoked(&self, filters: &[String]) -> Revoked {
        Revoked::new(filters, self.out_unacked, self.out_unreleased)
    }

    /// One notification from the router. `Err` closes the connection.
    pub(crate) fn on_router(
        &mut self,
        notification: Notification,
        acl: &Acl,
        out: &mut Actions,
    ) -> Result<(), Close> {
        let packet = match notification {
            Notification::Forward(forward) => {
                if let Some(revoked) = self.revoked.as_deref_mut() {
                    let (who, client_id) = (&self.identity, &self.client_id);
                    let may_read = |topic: &str| acl.can_read(who, client_id, topic);
                    if let Some(acks) = revoked.intercept(&forward.publish, may_read) {
                        out.to_router.extend(acks);
                        return Ok(());
                    }
                }
                if forward.publish.qos() != protocol::QoS::AtMostOnce {
                    self.out_unacked = self.out_unacked.saturating_add(1);
                }
                metrics::messages_out(1);
                Packet::Publish(forward.publish, forward.properties)
            }
            Notification::DeviceAck(ack) => {
                self.on_ack(Packet::from(ack), out);
                return Ok(());
            }
            Notification::Disconnect(disconnect, _) => {
                return Err(Close::Protocol(
                    disconnect.reason_code,
                    "router closed the link",
                ));
            }
            _ => return Ok(()),
        };
        out.to_client.push(packet);
        Ok(())
    }
}

impl Session {
    /// An ack from the router, for the client.
    fn on_ack(&mut self, ack: Packet, out: &mut Actions) {
        let packet = match ack {
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
            Packet::UnsubAck(..) => return,
            Packet::PubAck(puback, props) => {
                self.inbound.remove(&puback.pkid);
                Packet::PubAck(puback, props)
            }
            Packet::PubRec(pubrec, props) => {
                if let Some(state) = self.inbound.get_mut(&pubrec.pkid) {
                    if *state == Inbound::Routed {
                        *state = Inbound::Received;
                    }
                }
                Packet::PubRec(pubrec, props)
            }
            Packet::PubComp(pubcomp, props) => {
                self.inbound.remove(&pubcomp.pkid);
                Packet::PubComp(pubcomp, props)
            }
            Packet::PubRel(pubrel, props) => {
                let revoked = self.revoked.as_deref_mut();
                match revoked.and_then(|r| r.release(pubrel.pkid)) {
                    Some(acks) => {
                        out.to_router.extend(acks);
                        return;
                    }
                    None => {
                        self.out_unreleased = self.out_unreleased.saturating_add(1);
                        Packet::PubRel(pubrel, props)
                    }
                }
            }
            packet => packet,
        };
        out.to_client.push(packet);
    }
}

/// Why the front-end refused a publish.
#[derive(Clone, Copy)]
enum Refused {
    NotAuthorized,
    BadPayload,
    Retain(RetainRefusal),
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
