//! What the session does with what the router sends its client: deliveries (screened
//! when filters were revoked or granted partially, counted as unacknowledged), the
//! router's acks (SUBACK codes merged with the front-end's own refusals, inbound QoS 1/2
//! state finished), and the router closing the link. Split from `session.rs`, whose
//! `Session` it extends.

use super::{Actions, Close, Inbound, Session};
use crate::metrics;
use roost_auth::Acl;
use rumqttd::protocol::{self, Packet, SubscribeReasonCode};
use rumqttd::Notification;

impl Session {
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
                Packet::Publish(forward.publish, forward.properties.map(|p| *p))
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

    /// An ack from the router, for the client.
    pub(super) fn on_ack(&mut self, ack: Packet, out: &mut Actions) {
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
