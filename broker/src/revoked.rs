//! Deliveries through subscriptions a resumed session lost at sign-in.
//!
//! A persistent session resumed with a token that no longer allows some of its filters (a
//! group the user left) has them unsubscribed, but the router resumes the session as it
//! links the client, before it reads that UNSUBSCRIBE: what was queued for those filters
//! while the client was away, and deliveries it had not acknowledged, are already on their
//! way. So the connection drops every delivery whose topic a revoked filter matches and the
//! token does not let it read (a filter it kept may still cover that topic), for as long as
//! it lasts, and acknowledges each to the router itself, so that the router's inflight
//! window and the session move on as if the client had taken it.
//!
//! The same drop-and-ack serves root wildcards granted partially (`#` in open mode, see
//! `Acl::subscribe_grant`): then every delivery is checked (`screen_all`), as Mosquitto
//! checks read access per delivered message, retained ones included. A filter granted whole
//! only ever matches readable topics, so the check needs no filter matching, and a
//! connection without such a grant pays nothing. Presence filters granted partially
//! (`[presence] visibility = "groups"`) have only the deliveries on `im/presence/...`
//! checked (`screen_presence`), so a chat client pays for its presence, not its chat.
//!
//! The node's acks go to the router in the order of its deliveries (`AckOrder`): a dropped
//! delivery's ack waits for the client's acks of the deliveries before it.

use crate::ack_order::AckOrder;
use rumqttd::protocol::{
    matches, Packet, PubAck, PubAckReason, PubComp, PubCompReason, PubRec, PubRecReason, Publish,
    QoS,
};
use std::collections::HashSet;

#[derive(Default)]
pub(crate) struct Revoked {
    /// The revoked filters, without any `$share/{group}/`.
    filters: Vec<String>,
    /// QoS 2 deliveries dropped and PUBREC'd: the router's PUBREL for them is answered here.
    releasing: HashSet<u16>,
    /// Check every delivery, whatever filter it came through.
    all: bool,
    /// Check every delivery on `im/presence/...`.
    presence: bool,
    /// PUBACKs and PUBRECs towards the router, in delivery order.
    acks: AckOrder,
    /// PUBCOMPs towards the router, in the order of its PUBRELs.
    comps: AckOrder,
}

impl Revoked {
    /// `in_flight` QoS 1/2 deliveries and `releasing` PUBRELs already await the client's
    /// ack: the node's own acks come after theirs.
    pub(crate) fn new(filters: &[String], in_flight: u16, releasing: u16) -> Revoked {
        let filters = filters
            .iter()
            .map(
                |f| match f.strip_prefix("$share/").and_then(|s| s.split_once('/')) {
                    Some((_, inner)) => inner.to_owned(),
                    None => f.clone(),
                },
            )
            .collect();
        Revoked {
            filters,
            releasing: HashSet::new(),
            all: false,
            presence: false,
            acks: AckOrder::new(usize::from(in_flight)),
            comps: AckOrder::new(usize::from(releasing)),
        }
    }

    /// Checks every delivery from now on (a root wildcard was granted partially).
    pub(crate) fn screen_all(&mut self) {
        self.all = true;
    }

    /// Checks every presence delivery from now on (a presence filter was granted partially).
    pub(crate) fn screen_presence(&mut self) {
        self.presence = true;
    }

    /// `None` when `publish` may be delivered; otherwise it is dropped, and the router gets
    /// these acks in the client's place (maybe later, see `AckOrder`). `may_read` says
    /// whether the token allows a topic.
    pub(crate) fn intercept(
        &mut self,
        publish: &Publish,
        may_read: impl Fn(&str) -> bool,
    ) -> Option<Vec<Packet>> {
        self.intercept_parts(&publish.topic, publish.qos(), publish.pkid(), may_read)
    }

    fn intercept_parts(
        &mut self,
        topic: &[u8],
        qos: QoS,
        pkid: u16,
        may_read: impl Fn(&str) -> bool,
    ) -> Option<Vec<Packet>> {
        if !self.drops(topic, may_read) {
            if qos != QoS::AtMostOnce {
                self.acks.delivered(pkid);
            }
            return None;
        }
        let mut out = Vec::new();
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let reason = PubAckReason::Success;
                let ack = Packet::PubAck(PubAck { pkid, reason }, None);
                self.acks.dropped(pkid, ack, &mut out);
            }
            QoS::ExactlyOnce => {
                self.releasing.insert(pkid);
                let reason = PubRecReason::Success;
                let ack = Packet::PubRec(PubRec { pkid, reason }, None);
                self.acks.dropped(pkid, ack, &mut out);
            }
        }
        Some(out)
    }

    fn drops(&self, topic: &[u8], may_read: impl Fn(&str) -> bool) -> bool {
        if self.filters.is_empty() && !self.all && !self.presence {
            return false;
        }
        // Topics are UTF-8 (the front-end refuses others), so this never lets one through.
        let Ok(topic) = std::str::from_utf8(topic) else {
            return false;
        };
        let screened = self.all
            || (self.presence && topic.starts_with("im/presence/"))
            || self.filters.iter().any(|f| matches(topic, f));
        if !screened {
            return false;
        }
        !may_read(topic)
    }

    /// The router's PUBREL `pkid`: `Some` (the acks for the router, maybe none yet) when it
    /// releases a dropped delivery, `None` when it goes to the client.
    pub(crate) fn release(&mut self, pkid: u16) -> Option<Vec<Packet>> {
        if !self.releasing.remove(&pkid) {
            self.comps.delivered(pkid);
            return None;
        }
        let reason = PubCompReason::Success;
        let comp = Packet::PubComp(PubComp { pkid, reason }, None);
        let mut out = Vec::new();
        self.comps.dropped(pkid, comp, &mut out);
        Some(out)
    }

    /// The client's PUBACK, PUBREC or PUBCOMP: what goes to the router now, in order.
    pub(crate) fn client_ack(&mut self, ack: Packet, out: &mut Vec<Packet>) {
        match ack {
            Packet::PubAck(ref a, _) => {
                let pkid = a.pkid;
                self.acks.client_ack(pkid, ack, out)
            }
            Packet::PubRec(ref a, _) => {
                let pkid = a.pkid;
                self.acks.client_ack(pkid, ack, out)
            }
            Packet::PubComp(ref a, _) => {
                let pkid = a.pkid;
                self.comps.client_ack(pkid, ack, out)
            }
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intercept(r: &mut Revoked, topic: &str, qos: QoS, pkid: u16) -> Option<Vec<Packet>> {
        r.intercept_parts(topic.as_bytes(), qos, pkid, |t| t == "devices/kept")
    }

    fn client(r: &mut Revoked, ack: Packet) -> Vec<(u8, u16)> {
        let mut out = Vec::new();
        r.client_ack(ack, &mut out);
        acks(&out)
    }

    /// (packet type, pkid) of acks for the router.
    fn acks(out: &[Packet]) -> Vec<(u8, u16)> {
        out.iter()
            .map(|p| match p {
                Packet::PubAck(a, _) => (4, a.pkid),
                Packet::PubRec(a, _) => (5, a.pkid),
                Packet::PubComp(a, _) => (7, a.pkid),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn puback(pkid: u16) -> Packet {
        let reason = PubAckReason::Success;
        Packet::PubAck(PubAck { pkid, reason }, None)
    }

    #[test]
    fn drops_only_what_a_revoked_filter_matches_and_acks_it_in_order() {
        let filters = ["im/grp/g/+".into(), "$share/w/devices/#".into()];
        let mut r = Revoked::new(&filters, 0, 0);
        assert!(intercept(&mut r, "im/grp/h/a", QoS::AtLeastOnce, 1).is_none());
        // Its ack waits for the client's ack of pkid 1.
        assert_eq!(
            intercept(&mut r, "im/grp/g/a", QoS::AtLeastOnce, 2),
            Some(vec![])
        );
        assert_eq!(client(&mut r, puback(1)), [(4, 1), (4, 2)]);
        assert_eq!(
            intercept(&mut r, "devices/x", QoS::AtMostOnce, 0),
            Some(vec![])
        );
        // Still readable through a filter the session kept.
        assert!(intercept(&mut r, "devices/kept", QoS::AtLeastOnce, 5).is_none());
        assert_eq!(
            intercept(&mut r, "im/grp/g/b", QoS::ExactlyOnce, 3),
            Some(vec![])
        );
        assert_eq!(client(&mut r, puback(5)), [(4, 5), (5, 3)]);
        // PUBCOMPs follow the router's PUBRELs: 4 is the client's, 3 the node's.
        assert!(r.release(4).is_none());
        assert_eq!(r.release(3).as_deref().map(acks), Some(vec![]));
        let comp = Packet::PubComp(
            PubComp {
                pkid: 4,
                reason: PubCompReason::Success,
            },
            None,
        );
        assert_eq!(client(&mut r, comp), [(7, 4), (7, 3)]);
        assert!(r.release(3).is_none());
    }

    #[test]
    fn screening_presence_checks_presence_deliveries_only() {
        let mut r = Revoked::new(&[], 0, 0);
        r.screen_presence();
        let nobody = |_: &str| false;
        assert!(r.drops(b"im/presence/bob", nobody));
        assert!(!r.drops(b"im/dm/alice/bob", nobody), "chat is not screened");
        assert!(!r.drops(b"im/presence/bob", |_| true));
    }

    #[test]
    fn screening_all_drops_every_unreadable_delivery() {
        // pkid 9 went out before screening started.
        let mut r = Revoked::new(&[], 1, 0);
        r.screen_all();
        assert!(intercept(&mut r, "devices/kept", QoS::AtLeastOnce, 1).is_none());
        assert_eq!(
            intercept(&mut r, "im/dm/bob/alice", QoS::AtMostOnce, 0),
            Some(vec![])
        );
        assert_eq!(
            intercept(&mut r, "private/x", QoS::AtLeastOnce, 2),
            Some(vec![])
        );
        assert_eq!(client(&mut r, puback(9)), [(4, 9)]);
        assert_eq!(client(&mut r, puback(1)), [(4, 1), (4, 2)]);
        assert_eq!(
            intercept(&mut r, "private/y", QoS::AtLeastOnce, 3)
                .as_deref()
                .map(acks),
            Some(vec![(4, 3)])
        );
    }

    #[test]
    fn nothing_revoked_delivers_everything() {
        let mut r = Revoked::default();
        assert!(intercept(&mut r, "a", QoS::AtLeastOnce, 1).is_none());
    }
}
