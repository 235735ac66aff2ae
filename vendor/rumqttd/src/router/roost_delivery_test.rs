//! ROOST PATCH: tests of what a subscriber receives, through a real router thread and local
//! links (the way roost's front-end uses it): delivery QoS and MQTT 5 subscription options.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::local::{LinkBuilder, LinkRx, LinkTx};
use crate::protocol::{
    Filter, Packet, PubAck, PubAckReason, Publish, QoS, RetainForwardRule, Subscribe,
};
use crate::router::{Ack, Event, Forward};
use crate::{ConnectionId, Notification, Router, RouterConfig};

type RouterTx = flume::Sender<(ConnectionId, Event)>;

fn router() -> RouterTx {
    let config = RouterConfig {
        max_connections: 16,
        max_outgoing_packet_count: 200,
        max_segment_size: 1 << 20,
        max_segment_count: 2,
        ..Default::default()
    };
    Router::new(0, config).spawn()
}

struct Client {
    tx: LinkTx,
    rx: LinkRx,
    rt: tokio::runtime::Runtime,
    pkid: u16,
}

impl Client {
    fn new(router: &RouterTx, id: &str) -> Client {
        let (tx, rx, _connack) = LinkBuilder::new(id, router.clone())
            .topic_alias_max(0)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Client {
            tx,
            rx,
            rt,
            pkid: 0,
        }
    }

    fn send(&mut self, packet: Packet) {
        self.rt.block_on(self.tx.send(packet)).unwrap();
    }

    fn subscribe(&mut self, filter: Filter) {
        self.pkid += 1;
        let subscribe = Subscribe {
            pkid: self.pkid,
            filters: vec![filter],
        };
        self.send(Packet::Subscribe(subscribe, None));
        // The SUBACK: the subscription is in place once it arrives.
        loop {
            if let Notification::DeviceAck(Ack::SubAck(_)) = self.next() {
                return;
            }
        }
    }

    fn publish(&mut self, topic: &str, payload: &str, qos: QoS, retain: bool) {
        self.pkid += 1;
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            pkid: if qos == QoS::AtMostOnce { 0 } else { self.pkid },
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        };
        self.send(Packet::Publish(publish, None));
    }

    fn next(&mut self) -> Notification {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.rx.recv_deadline(deadline) {
                Ok(Some(notification)) => return notification,
                Ok(None) => continue,
                Err(e) => panic!("nothing from the router: {e}"),
            }
        }
    }

    /// The next delivered publish (acknowledged if QoS 1), skipping acks.
    fn delivery(&mut self) -> Forward {
        loop {
            if let Notification::Forward(forward) = self.next() {
                if forward.publish.qos == QoS::AtLeastOnce {
                    let puback = PubAck {
                        pkid: forward.publish.pkid,
                        reason: PubAckReason::Success,
                    };
                    self.send(Packet::PubAck(puback, None));
                }
                return forward;
            }
        }
    }
}

fn filter(path: &str, qos: QoS) -> Filter {
    Filter {
        path: path.to_owned(),
        qos,
        nolocal: false,
        preserve_retain: false,
        retain_forward_rule: RetainForwardRule::OnEverySubscribe,
    }
}

fn payload(forward: &Forward) -> &[u8] {
    &forward.publish.payload
}

#[test]
fn delivery_qos_is_the_lower_of_publish_and_subscription() {
    let router = router();
    let mut sub = Client::new(&router, "sub");
    let mut publisher = Client::new(&router, "pub");
    sub.subscribe(filter("t/q", QoS::AtLeastOnce));
    publisher.publish("t/q", "zero", QoS::AtMostOnce, false);
    publisher.publish("t/q", "one", QoS::AtLeastOnce, false);
    publisher.publish("t/q", "two", QoS::ExactlyOnce, false);

    let got = sub.delivery();
    assert_eq!(payload(&got), b"zero");
    assert_eq!(
        got.publish.qos,
        QoS::AtMostOnce,
        "a QoS 0 publish stays QoS 0"
    );
    assert_eq!(got.publish.pkid, 0);
    let got = sub.delivery();
    assert_eq!(payload(&got), b"one");
    assert_eq!(got.publish.qos, QoS::AtLeastOnce);
    assert_ne!(got.publish.pkid, 0);
    // QoS 2 publishes reach the log on PUBREL; the router's ack path answers PUBREC first.
    let pkid = publisher.pkid;
    publisher.send(Packet::PubRel(
        crate::protocol::PubRel {
            pkid,
            reason: crate::protocol::PubRelReason::Success,
        },
        None,
    ));
    let got = sub.delivery();
    assert_eq!(payload(&got), b"two");
    assert_eq!(
        got.publish.qos,
        QoS::AtLeastOnce,
        "capped at the granted QoS 1"
    );
}

#[test]
fn no_local_skips_only_the_subscribers_own_publishes() {
    let router = router();
    let mut me = Client::new(&router, "me");
    let mut other = Client::new(&router, "other");
    me.subscribe(Filter {
        nolocal: true,
        ..filter("t/n", QoS::AtMostOnce)
    });
    me.publish("t/n", "mine", QoS::AtMostOnce, false);
    other.publish("t/n", "theirs", QoS::AtMostOnce, false);
    assert_eq!(payload(&me.delivery()), b"theirs");
}

#[test]
fn retain_as_published_keeps_the_flag_on_live_messages() {
    let router = router();
    let mut keeps = Client::new(&router, "keeps");
    let mut clears = Client::new(&router, "clears");
    let mut publisher = Client::new(&router, "pub");
    keeps.subscribe(Filter {
        preserve_retain: true,
        ..filter("t/r", QoS::AtMostOnce)
    });
    clears.subscribe(filter("t/r", QoS::AtMostOnce));
    publisher.publish("t/r", "kept", QoS::AtMostOnce, true);
    publisher.publish("t/r", "plain", QoS::AtMostOnce, false);

    let got = keeps.delivery();
    assert_eq!((payload(&got), got.publish.retain), (&b"kept"[..], true));
    let got = keeps.delivery();
    assert_eq!((payload(&got), got.publish.retain), (&b"plain"[..], false));
    let got = clears.delivery();
    assert_eq!((payload(&got), got.publish.retain), (&b"kept"[..], false));

    // A new subscriber still gets the stored retained message flagged as retained.
    let mut late = Client::new(&router, "late");
    late.subscribe(filter("t/r", QoS::AtMostOnce));
    let got = late.delivery();
    assert_eq!((payload(&got), got.publish.retain), (&b"kept"[..], true));
}

#[test]
fn retain_handling_2_sends_no_retained_messages() {
    let router = router();
    let mut publisher = Client::new(&router, "pub");
    publisher.publish("t/h", "old", QoS::AtMostOnce, true);
    // Handling 0 gets it: the retained message is in place before the next subscriber.
    let mut witness = Client::new(&router, "witness");
    witness.subscribe(filter("t/h", QoS::AtMostOnce));
    assert_eq!(payload(&witness.delivery()), b"old");

    let mut sub = Client::new(&router, "sub");
    sub.subscribe(Filter {
        retain_forward_rule: RetainForwardRule::Never,
        ..filter("t/h", QoS::AtMostOnce)
    });
    publisher.publish("t/h", "new", QoS::AtMostOnce, false);
    assert_eq!(
        payload(&sub.delivery()),
        b"new",
        "no retained message first"
    );
}
