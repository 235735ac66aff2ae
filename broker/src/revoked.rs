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
}

impl Revoked {
    pub(crate) fn new(filters: &[String]) -> Revoked {
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
        }
    }

    /// `None` when `publish` may be delivered; otherwise it is dropped, and the router gets
    /// these acks in the client's place. `may_read` says whether the token allows a topic.
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
        if self.filters.is_empty() {
            return None;
        }
        let topic = std::str::from_utf8(topic).ok()?;
        if !self.filters.iter().any(|f| matches(topic, f)) || may_read(topic) {
            return None;
        }
        Some(match qos {
            QoS::AtMostOnce => Vec::new(),
            QoS::AtLeastOnce => vec![Packet::PubAck(
                PubAck {
                    pkid,
                    reason: PubAckReason::Success,
                },
                None,
            )],
            QoS::ExactlyOnce => {
                self.releasing.insert(pkid);
                vec![Packet::PubRec(
                    PubRec {
                        pkid,
                        reason: PubRecReason::Success,
                    },
                    None,
                )]
            }
        })
    }

    /// The PUBCOMP for the router's PUBREL `pkid`, when it releases a dropped delivery.
    pub(crate) fn release(&mut self, pkid: u16) -> Option<Packet> {
        self.releasing.remove(&pkid).then_some(Packet::PubComp(
            PubComp {
                pkid,
                reason: PubCompReason::Success,
            },
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intercept(r: &mut Revoked, topic: &str, qos: QoS, pkid: u16) -> Option<Vec<Packet>> {
        r.intercept_parts(topic.as_bytes(), qos, pkid, |t| t == "devices/kept")
    }

    #[test]
    fn drops_only_what_a_revoked_filter_matches_and_acks_it() {
        let mut r = Revoked::new(&["im/grp/g/+".into(), "$share/w/devices/#".into()]);
        assert!(intercept(&mut r, "im/grp/h/a", QoS::AtLeastOnce, 1).is_none());
        assert!(matches!(
            intercept(&mut r, "im/grp/g/a", QoS::AtLeastOnce, 2).as_deref(),
            Some([Packet::PubAck(PubAck { pkid: 2, .. }, None)])
        ));
        assert_eq!(
            intercept(&mut r, "devices/x", QoS::AtMostOnce, 0),
            Some(vec![])
        );
        // Still readable through a filter the session kept.
        assert!(intercept(&mut r, "devices/kept", QoS::AtLeastOnce, 5).is_none());
        assert!(matches!(
            intercept(&mut r, "im/grp/g/b", QoS::ExactlyOnce, 3).as_deref(),
            Some([Packet::PubRec(PubRec { pkid: 3, .. }, None)])
        ));
        assert!(r.release(4).is_none());
        assert!(matches!(
            r.release(3),
            Some(Packet::PubComp(PubComp { pkid: 3, .. }, None))
        ));
        assert!(r.release(3).is_none());
    }

    #[test]
    fn nothing_revoked_delivers_everything() {
        let mut r = Revoked::default();
        assert!(intercept(&mut r, "a", QoS::AtLeastOnce, 1).is_none());
    }
}
