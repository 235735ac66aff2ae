//! The history service inside `roost serve`: its [`Bus`] is a link to the router, subscribed
//! to the same shared subscriptions a `roost history-worker` takes, so both kinds of
//! service split the load. Under stamped delivery it also publishes the stamped copies, on
//! the stored topics, as an ordinary publish any subscriber (or, later, the cluster) takes.
//!
//! Deliveries are acknowledged to the router as they are taken, not after the commit as a
//! worker does: the router's copy lives in this same process, so holding the ack back would
//! protect nothing against a crash, and it would cap every batch at the router's window of
//! 100 unacknowledged messages. Users' `ack` notices still wait for the commit; while the
//! database is away the service takes nothing more, and messages wait in the router.

use crate::router::{Link, Router};
use roost_history::service::{Bus, Delivery, StampedCopy};
use roost_proto::subscriptions;
use rumqttd::protocol::{
    Filter, Packet, PubAck, PubAckReason, PubRel, PubRelReason, Publish, PublishProperties, QoS,
    RetainForwardRule, Subscribe,
};
use rumqttd::Notification;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// How long the router must stay quiet, once the node is finishing, before the service
/// stops: everything clients handed over before they left has reached it by then.
const QUIET: Duration = Duration::from_secs(1);

pub struct LinkBus {
    link: Link,
    /// Packet id of the last stamped copy published at QoS 1 or 2.
    pkid: u16,
    /// Set when the node drains and its clients are gone: take what is left, then stop.
    finish: watch::Receiver<bool>,
}

impl LinkBus {
    /// Links the service to the router, subscribed to the ingress (`stamped`: stamped
    /// delivery) or to the stored topics themselves.
    pub async fn start(
        router: &Router,
        finish: watch::Receiver<bool>,
        stamped: bool,
    ) -> anyhow::Result<LinkBus> {
        let mut link = router
            .link(crate::keys::HISTORY.to_owned(), true, true, None, None)
            .await?;
        let filters = subscriptions::history(stamped)
            .iter()
            .map(|s| Filter {
                path: s.path(),
                // QoS 1, so the router keeps each delivery until it is taken (see the
                // module comment for when the PUBACK goes).
                qos: QoS::AtLeastOnce,
                nolocal: false,
                preserve_retain: false,
                retain_forward_rule: RetainForwardRule::Never,
            })
            .collect();
        if !link.try_send(vec![Packet::Subscribe(
            Subscribe { pkid: 1, filters },
            None,
        )]) {
            anyhow::bail!("router dropped the history link");
        }
        Ok(LinkBus {
            link,
            pkid: 0,
            finish,
        })
    }
}

impl Bus for LinkBus {
    /// Nothing: deliveries are acknowledged as they are taken (see the module comment).
    type Ack = ();

    async fn recv(&mut self) -> Option<Delivery<()>> {
        loop {
            let notification = if *self.finish.borrow() {
                match tokio::time::timeout(QUIET, self.link.recv()).await {
                    Ok(notification) => notification,
                    Err(_) => {
                        info!("history: everything taken; the service finishes");
                        return None;
                    }
                }
            } else {
                tokio::select! {
                    notification = self.link.recv() => notification,
                    _ = self.finish.wait_for(|f| *f) => continue,
                }
            };
            let Some(notification) = notification else {
                warn!("history link closed by the router");
                return None;
            };
            let Notification::Forward(forward) = notification else {
                continue;
            };
            let publish = forward.publish;
            let Ok(topic) = String::from_utf8(publish.topic.to_vec()) else {
                continue;
            };
            if publish.qos() != QoS::AtMostOnce {
                let puback = PubAck {
                    pkid: publish.pkid(),
                    reason: PubAckReason::Success,
                };
                // Never waits, so taking this delivery stays cancel safe. A link gone
                // shows at the next `recv`.
                self.link.try_send(vec![Packet::PubAck(puback, None)]);
            }
            let props = forward.properties.map(|p| *p).unwrap_or_default();
            return Some(Delivery {
                topic,
                qos: publish.qos() as u8,
                payload: publish.payload.to_vec(),
                user_properties: props.user_properties,
                response_topic: props.response_topic,
                correlation_data: props.correlation_data.map(|c| c.to_vec()),
                ack: (),
            });
        }
    }

    async fn publish(&mut self, topic: String, payload: Vec<u8>) {
        let publish = Publish::new(topic.into_bytes(), payload, false);
        self.link.try_send(vec![Packet::Publish(publish, None)]);
    }

    async fn publish_answer(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        correlation_data: Option<Vec<u8>>,
    ) {
        let publish = Publish::new(topic.into_bytes(), payload, false);
        let props = correlation_data.map(|c| PublishProperties {
            correlation_data: Some(c.into()),
            ..Default::default()
        });
        self.link.try_send(vec![Packet::Publish(publish, props)]);
    }

    async fn ack(&mut self, (): ()) {}

    async fn forward(&mut self, copy: StampedCopy) {
        let qos = match copy.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        self.pkid = self.pkid.wrapping_add(1).max(1);
        let mut publish = Publish::new(copy.topic.into_bytes(), copy.payload, false);
        publish.set_qos(qos, self.pkid);
        let props = (!copy.user_properties.is_empty()).then(|| PublishProperties {
            user_properties: copy.user_properties,
            ..Default::default()
        });
        let mut packets = vec![Packet::Publish(publish, props)];
        if qos == QoS::ExactlyOnce {
            // Released at once: the router holds a QoS 2 publish until its PUBREL, and there
            // is nothing to wait for here (the router answers PUBREC and PUBCOMP, skipped
            // by `recv` like every ack).
            let pubrel = PubRel {
                pkid: self.pkid,
                reason: PubRelReason::Success,
            };
            packets.push(Packet::PubRel(pubrel, None));
        }
        self.link.try_send(packets);
    }
}
