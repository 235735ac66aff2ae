//! What the session does with a PUBLISH from its client: the topic alias, the topic and
//! Response Topic rules, QoS 1/2 inflight bookkeeping (receive maximum, QoS 2 duplicates),
//! the ACL, the presence and chat payload checks, retained admission, identity stamping and
//! stamped delivery's detour to the history ingress; and how a refusal is answered.
//! Split from `session.rs`, whose `Session` it extends.

use super::super::inbound::{
    detach, ephemeral_refusal, foreign_response_topic, ingress_topic, response_topic_error,
    stamp_identity, valid_publish_topic,
};
use super::{Actions, Close, Env, Inbound, Session};
use crate::codec::Version;
use crate::metrics;
use crate::notice;
use crate::retained::RetainRefusal;
use roost_auth::Role;
use roost_proto::chat::ChatMessage;
use roost_proto::delivered::MAX_STAMPED_PAYLOAD;
use roost_proto::limits::MAX_CHAT_PAYLOAD;
use roost_proto::stamp;
use roost_proto::topic::Topic;
use rumqttd::protocol::{
    DisconnectReasonCode, Packet, PubAck, PubAckReason, PubRec, PubRecReason, Publish,
    PublishProperties,
};
use tracing::{debug, info};

impl Session {
    pub(super) fn publish(
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
        // Parsed once here for the checks below that need the topic's shape.
        let parsed = Topic::parse(topic);
        if let Some(refusal) =
            foreign_response_topic(&self.identity, &self.client_id, parsed, &props)
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
        if let Some(why) = ephemeral_refusal(&self.identity, parsed, &publish.payload) {
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
            // The verdict only (the message itself is not needed here): without allocating
            // for a valid payload, with the full parse's error for an invalid one.
            if let Err(e) = ChatMessage::check_within(&publish.payload, limit) {
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
            parsed,
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
        if ingress.is_some() && qos == 2 {
            // The history service reads at QoS 1; the copy goes out at the QoS sent.
            let p = props.get_or_insert_with(Default::default);
            p.user_properties
                .push((stamp::QOS.to_owned(), "2".to_owned()));
        }
        let publish = detach(publish, ingress);
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
}

/// Why the front-end refused a publish.
#[derive(Clone, Copy)]
enum Refused {
    NotAuthorized,
    BadPayload,
    Retain(RetainRefusal),
}
