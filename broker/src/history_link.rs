//! The history service inside `roost serve`: its [`Bus`] is a link to the router, subscribed
//! to the same shared subscriptions a `roost history-worker` takes, so both kinds of
//! service split the load.

use crate::router::{Link, Router};
use roost_history::service::{Bus, Delivery, SUBSCRIPTIONS};
use rumqttd::protocol::{
    Filter, Packet, PubAck, PubAckReason, Publish, QoS, RetainForwardRule, Subscribe,
};
use rumqttd::Notification;
use tracing::warn;

pub struct LinkBus {
    link: Link,
    closed: bool,
}

impl LinkBus {
    pub async fn start(router: &Router) -> anyhow::Result<LinkBus> {
        let mut link = router.link("roost-history".to_owned(), true).await?;
        let filters = SUBSCRIPTIONS
            .iter()
            .map(|path| Filter {
                path: (*path).to_owned(),
                // Deliveries wait for our PUBACK, which is sent only after the commit.
                qos: QoS::AtLeastOnce,
                nolocal: false,
                preserve_retain: false,
                retain_forward_rule: RetainForwardRule::Never,
            })
            .collect();
        link.tx
            .send(Packet::Subscribe(Subscribe { pkid: 1, filters }, None))
            .await?;
        Ok(LinkBus {
            link,
            closed: false,
        })
    }
}

impl Bus for LinkBus {
    /// The packet id to PUBACK (0 for QoS 0 deliveries, which need none).
    type Ack = u16;

    async fn recv(&mut self) -> Option<Delivery<u16>> {
        while !self.closed {
            match self.link.rx.next().await {
                Ok(Some(Notification::Forward(forward))) => {
                    let publish = forward.publish;
                    let Ok(topic) = String::from_utf8(publish.topic.to_vec()) else {
                        continue;
                    };
                    let ack = if publish.qos() == QoS::AtMostOnce {
                        0
                    } else {
                        publish.pkid()
                    };
                    return Some(Delivery {
                        topic,
                        payload: publish.payload.to_vec(),
                        user_properties: forward
                            .properties
                            .map(|p| p.user_properties)
                            .unwrap_or_default(),
                        ack,
                    });
                }
                Ok(Some(Notification::Unschedule)) => {
                    if self.link.rx.wake().await.is_err() {
                        self.closed = true;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "history link closed by the router");
                    self.closed = true;
                }
            }
        }
        None
    }

    async fn publish(&mut self, topic: String, payload: Vec<u8>) {
        let publish = Publish::new(topic.into_bytes(), payload, false);
        if self
            .link
            .tx
            .send(Packet::Publish(publish, None))
            .await
            .is_err()
        {
            self.closed = true;
        }
    }

    async fn ack(&mut self, pkid: u16) {
        if pkid == 0 {
            return;
        }
        let puback = PubAck {
            pkid,
            reason: PubAckReason::Success,
        };
        if self
            .link
            .tx
            .send(Packet::PubAck(puback, None))
            .await
            .is_err()
        {
            self.closed = true;
        }
    }
}
