//! ROOST PATCH: tests of what a subscriber receives, through a real router thread and local
//! links (the way roost's front-end uses it): delivery QoS, MQTT 5 subscription options,
//! Receive Maximum and Session Expiry.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::local::{LinkBuilder, LinkRx, LinkTx};
use crate::protocol::{
    Filter, Packet, PubAck, PubAckReason, Publish, PublishProperties, QoS, RetainForwardRule,
    Subscribe,
};
use crate::router::{Ack, Event, Forward};
use crate::{ConnectionId, Notification, Router, RouterConfig};

pub(super) type RouterTx = flume::Sender<(ConnectionId, Event)>;

pub(super) fn router() -> RouterTx {
    let config = RouterConfig {
        max_connections: 16,
        max_outgoing_packet_count: 200,
        max_segment_size: 1 << 20,
        max_segment_count: 2,
        ..Default::default()
    };
    Router::new(0, config).spawn()
}

pub(super) struct Client {
    tx: LinkTx,
    rx: LinkRx,
    rt: tokio::runtime::Runtime,
    pkid: u16,
}

impl Client {
    pub(super) fn new(router: &RouterTx, id: &str) -> Client {
        Client::with_receive_maximum(router, id, None)
    }

    pub(super) fn with_receive_maximum(router: &RouterTx, id: &str, max: Option<u16>) -> Client {
        let (tx, rx, _connack) = LinkBuilder::new(id, router.clone())
            .topic_alias_max(0)
            .receive_maximum(max)
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

    pub(super) fn send(&mut self, packet: Packet) {
        self.rt.block_on(self.tx.send(packet)).unwrap();
    }

    pub(super) fn subscribe(&mut self, filter: Filter) {
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

    pub(super) fn publish(&mut self, topic: &str, payload: &str, qos: QoS, retain: bool) {
        self.publish_with(topic, payload, qos, retain, None);
    }

    pub(super) fn publish_with(
        &mut self,
        topic: &str,
        payload: &str,
        qos: QoS,
        retain: bool,
        properties: Option<PublishProperties>,
    ) {
        self.pkid += 1;
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            pkid: if qos == QoS::AtMostOnce { 0 } else { self.pkid },
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            ..Default::default()
        };
        self.send(Packet::Publish(publish, properties));
    }

    pub(super) fn next(&mut self) -> Notification {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.rx.recv_deadline(deadline) {
                Ok(Some(notification)) => return notification,
                Ok(None) => continue,
                Err(e) => panic!("nothing from the router: {e}"),
            }
        }
    }

    /// Everything the router sends until the answer to a PINGREQ. The router handles a
    /// connection's packets in order and forwards whatever it can whenever it serves the
    /// connection, so two of these in a row show all it was willing to deliver by then.
    pub(super) fn ping_sync(&mut self) -> Vec<Notification> {
        let mut seen = Vec::new();
        for _ in 0..2 {
            self.send(Packet::PingReq(crate::protocol::PingReq));
            loop {
                match self.next() {
                    Notification::DeviceAck(Ack::PingResp(_)) => break,
                    n => seen.push(n),
                }
            }
        }
        seen
    }

    /// The next publish delivered, not acknowledged.
    pub(super) fn forward(&mut self) -> Forward {
        loop {
            if let Notification::Forward(forward) = self.next() {
                return forward;
            }
        }
    }

    pub(super) fn ack(&mut self, pkid: u16) {
        let puback = PubAck {
            pkid,
            reason: PubAckReason::Success,
        };
        self.send(Packet::PubAck(puback, None));
    }

    /// The next delivered publish (acknowledged if QoS 1), skipping acks.
    pub(super) fn delivery(&mut self) -> Forward {
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

pub(super) fn filter(path: &str, qos: QoS) -> Filter {
    Filter {
        path: path.to_owned(),
        qos,
        nolocal: false,
        preserve_retain: false,
        retain_forward_rule: RetainForwardRule::OnEverySubscribe,
    }
}

pub(super) fn payload(forward: &Forward) -> &[u8] {
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

/// MQTT 5 section 3.8.4: a SUBSCRIBE repeating a filter replaces the subscription: the new
/// QoS applies, Retain Handling 0 sends the retained message again, 1 and 2 do not, and
/// messages still arrive once.
#[test]
fn a_repeated_subscribe_replaces_the_subscription() {
    let router = router();
    let mut publisher = Client::new(&router, "pub");
    publisher.publish("t/rs", "kept", QoS::AtMostOnce, true);
    let mut sub = Client::new(&router, "sub");
    sub.subscribe(filter("t/rs", QoS::AtMostOnce));
    let got = sub.delivery();
    assert_eq!((payload(&got), got.publish.retain), (&b"kept"[..], true));
    assert_eq!(forwards(&sub.ping_sync()), 0);

    sub.subscribe(filter("t/rs", QoS::AtLeastOnce));
    let got = sub.delivery();
    assert_eq!((payload(&got), got.publish.retain), (&b"kept"[..], true));
    publisher.publish("t/rs", "live", QoS::AtLeastOnce, false);
    let got = sub.delivery();
    assert_eq!(payload(&got), b"live");
    assert_eq!(
        got.publish.qos,
        QoS::AtLeastOnce,
        "the new subscription's QoS"
    );

    for rule in [RetainForwardRule::OnNewSubscribe, RetainForwardRule::Never] {
        sub.subscribe(Filter {
            retain_forward_rule: rule.clone(),
            ..filter("t/rs", QoS::AtMostOnce)
        });
        assert_eq!(
            forwards(&sub.ping_sync()),
            0,
            "{rule:?} sent retained again"
        );
    }
    publisher.publish("t/rs", "last", QoS::AtLeastOnce, false);
    let got = sub.delivery();
    assert_eq!(
        (payload(&got), got.publish.qos),
        (&b"last"[..], QoS::AtMostOnce)
    );
    assert_eq!(forwards(&sub.ping_sync()), 0, "delivered once");
}

pub(super) fn forwards(notifications: &[Notification]) -> usize {
    notifications
        .iter()
        .filter(|n| matches!(n, Notification::Forward(_)))
        .count()
}

#[test]
fn receive_maximum_bounds_qos1_deliveries_in_flight() {
    let router = router();
    let mut sub = Client::with_receive_maximum(&router, "sub", Some(2));
    let mut publisher = Client::new(&router, "pub");
    sub.subscribe(filter("t/m", QoS::AtLeastOnce));
    for n in 1..=4 {
        publisher.publish("t/m", &format!("m{n}"), QoS::AtLeastOnce, false);
    }
    // All four are in the router's log once their PUBACKs are back.
    let mut acked = 0;
    while acked < 4 {
        if let Notification::DeviceAck(Ack::PubAck(_)) = publisher.next() {
            acked += 1;
        }
    }

    let first = sub.forward();
    let second = sub.forward();
    assert_eq!(
        (payload(&first), payload(&second)),
        (&b"m1"[..], &b"m2"[..])
    );
    assert_eq!(forwards(&sub.ping_sync()), 0, "a third before any PUBACK");
    sub.ack(first.publish.pkid);
    assert_eq!(payload(&sub.forward()), b"m3");
    assert_eq!(forwards(&sub.ping_sync()), 0, "a fourth with two in flight");
    sub.ack(second.publish.pkid);
    assert_eq!(payload(&sub.forward()), b"m4");
}

#[test]
fn a_qos2_delivery_holds_its_receive_maximum_slot_until_pubcomp() {
    use crate::protocol::{PubComp, PubCompReason, PubRec, PubRecReason, PubRel, PubRelReason};
    let router = router();
    let mut sub = Client::with_receive_maximum(&router, "sub", Some(1));
    let mut publisher = Client::new(&router, "pub");
    sub.subscribe(filter("t/2", QoS::ExactlyOnce));
    for n in 1..=2 {
        publisher.publish("t/2", &format!("m{n}"), QoS::ExactlyOnce, false);
        let pkid = publisher.pkid;
        let pubrel = PubRel {
            pkid,
            reason: PubRelReason::Success,
        };
        publisher.send(Packet::PubRel(pubrel, None));
    }

    let first = sub.forward();
    assert_eq!(payload(&first), b"m1");
    let pkid = first.publish.pkid;
    let pubrec = PubRec {
        pkid,
        reason: PubRecReason::Success,
    };
    sub.send(Packet::PubRec(pubrec, None));
    let seen = sub.ping_sync();
    assert!(
        seen.iter()
            .any(|n| matches!(n, Notification::DeviceAck(Ack::PubRel(_)))),
        "PUBREL for the first"
    );
    assert_eq!(forwards(&seen), 0, "the second before the first's PUBCOMP");
    let pubcomp = PubComp {
        pkid,
        reason: PubCompReason::Success,
    };
    sub.send(Packet::PubComp(pubcomp, None));
    assert_eq!(payload(&sub.forward()), b"m2");
}

/// MQTT 5 section 4.3.3: a PUBREC with an error reason code ends the flow: no PUBREL follows
/// and the Receive Maximum slot is free for the next delivery.
#[test]
fn a_pubrec_with_an_error_ends_the_qos2_flow() {
    use crate::protocol::{PubRec, PubRecReason, PubRel, PubRelReason};
    let router = router();
    let mut sub = Client::with_receive_maximum(&router, "sub", Some(1));
    let mut publisher = Client::new(&router, "pub");
    sub.subscribe(filter("t/2e", QoS::ExactlyOnce));
    for n in 1..=2 {
        publisher.publish("t/2e", &format!("m{n}"), QoS::ExactlyOnce, false);
        let pkid = publisher.pkid;
        let pubrel = PubRel {
            pkid,
            reason: PubRelReason::Success,
        };
        publisher.send(Packet::PubRel(pubrel, None));
    }

    let first = sub.forward();
    assert_eq!(payload(&first), b"m1");
    let pubrec = PubRec {
        pkid: first.publish.pkid,
        reason: PubRecReason::UnspecifiedError,
    };
    sub.send(Packet::PubRec(pubrec, None));
    let second = loop {
        match sub.next() {
            Notification::Forward(forward) => break forward,
            Notification::DeviceAck(Ack::PubRel(_)) => panic!("PUBREL after a PUBREC error"),
            _ => {}
        }
    };
    assert_eq!(payload(&second), b"m2", "the slot is free again");
    let seen = sub.ping_sync();
    assert!(
        !seen
            .iter()
            .any(|n| matches!(n, Notification::DeviceAck(Ack::PubRel(_)))),
        "no PUBREL after a PUBREC with an error: {seen:?}"
    );
}

/// DUP is the publisher's resend flag towards the server: subscribers never see it.
#[test]
fn dup_is_not_passed_on() {
    let router = router();
    let mut sub = Client::new(&router, "sub");
    let mut publisher = Client::new(&router, "pub");
    sub.subscribe(filter("t/d", QoS::AtLeastOnce));
    publisher.pkid += 1;
    let publish = Publish {
        dup: true,
        qos: QoS::AtLeastOnce,
        pkid: publisher.pkid,
        retain: false,
        topic: Bytes::from_static(b"t/d"),
        payload: Bytes::from_static(b"again"),
        ..Default::default()
    };
    publisher.send(Packet::Publish(publish, None));
    let got = sub.delivery();
    assert_eq!(payload(&got), b"again");
    assert!(!got.publish.dup);
}

/// Links `id` with a persistent session expiring `expiry` after the link ends; whether a
/// saved session was resumed.
fn persistent(router: &RouterTx, id: &str, expiry: Duration) -> (Client, bool) {
    persistent_starting(router, id, expiry, false)
}

/// `persistent`, discarding a saved session first when `clean_start`.
fn persistent_starting(
    router: &RouterTx,
    id: &str,
    expiry: Duration,
    clean_start: bool,
) -> (Client, bool) {
    let (tx, rx, connack) = LinkBuilder::new(id, router.clone())
        .clean_session(false)
        .clean_start(clean_start)
        .session_expiry(Some(expiry))
        .build()
        .unwrap();
    let Notification::DeviceAck(Ack::ConnAck(_, connack, _)) = connack else {
        panic!("not a CONNACK: {connack:?}");
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let client = Client {
        tx,
        rx,
        rt,
        pkid: 0,
    };
    (client, connack.session_present)
}

#[test]
fn a_persistent_session_ends_when_its_expiry_passes() {
    let router = router();
    let mut publisher = Client::new(&router, "pub");
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(60);
    for (id, expiry) in [("short", short), ("long", long)] {
        let (mut client, resumed) = persistent(&router, id, expiry);
        assert!(!resumed);
        client.subscribe(filter(&format!("t/{id}"), QoS::AtLeastOnce));
        client.send(Packet::Disconnect(
            crate::protocol::Disconnect {
                reason_code: crate::protocol::DisconnectReasonCode::NormalDisconnection,
            },
            None,
        ));
        publisher.publish(&format!("t/{id}"), "kept", QoS::AtLeastOnce, false);
    }
    // Wait for the short expiry to pass: the passing of time is what is tested.
    std::thread::sleep(short + Duration::from_millis(100));

    let (mut long_client, resumed) = persistent(&router, "long", long);
    assert!(resumed, "a session within its expiry resumes");
    assert_eq!(payload(&long_client.delivery()), b"kept");

    let (mut short_client, resumed) = persistent(&router, "short", short);
    assert!(!resumed, "the expired session was not resumed");
    publisher.publish("t/short", "after", QoS::AtLeastOnce, false);
    assert_eq!(
        forwards(&short_client.ping_sync()),
        0,
        "its subscription went with it"
    );
}

type Interest = std::sync::mpsc::Receiver<(String, String, bool)>;

fn router_with_interest_hook() -> (RouterTx, Interest) {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = RouterConfig {
        max_connections: 16,
        max_outgoing_packet_count: 200,
        max_segment_size: 1 << 20,
        max_segment_count: 2,
        ..Default::default()
    };
    let hook = Box::new(move |client: &str, filter: &str, held: bool| {
        let _ = tx.send((client.to_owned(), filter.to_owned(), held));
    });
    let router = Router::new(0, config).with_interest_hook(hook).spawn();
    (router, rx)
}

fn next_interest(rx: &Interest) -> (String, String, bool) {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("no interest change from the router")
}

fn change(client: &str, filter: &str, held: bool) -> (String, String, bool) {
    (client.to_owned(), filter.to_owned(), held)
}

fn unsubscribe(client: &mut Client, path: &str) {
    client.pkid += 1;
    let unsubscribe = crate::protocol::Unsubscribe {
        pkid: client.pkid,
        filters: vec![path.to_owned()],
    };
    client.send(Packet::Unsubscribe(unsubscribe, None));
    loop {
        if let Notification::DeviceAck(Ack::UnsubAck(_)) = client.next() {
            return;
        }
    }
}

#[test]
fn a_local_link_publishes_at_qos_1_and_2() {
    // ROOST PATCH (26): `Publish::set_qos`, a QoS 2 publish released in the same batch.
    let router = router();
    let mut sub = Client::new(&router, "sub");
    let mut publisher = Client::new(&router, "pub");
    sub.subscribe(filter("t/local", QoS::ExactlyOnce));
    let mut one = Publish::new("t/local", "one", false);
    one.set_qos(QoS::AtLeastOnce, 1);
    let mut two = Publish::new("t/local", "two", false);
    two.set_qos(QoS::ExactlyOnce, 2);
    let release = crate::protocol::PubRel {
        pkid: 2,
        reason: crate::protocol::PubRelReason::Success,
    };
    publisher
        .tx
        .buffer()
        .extend([Packet::Publish(one, None), Packet::Publish(two, None)]);
    publisher.send(Packet::PubRel(release, None));
    let got = sub.forward();
    assert_eq!(
        (payload(&got), got.publish.qos),
        (&b"one"[..], QoS::AtLeastOnce)
    );
    sub.ack(got.publish.pkid);
    let got = sub.forward();
    assert_eq!(
        (payload(&got), got.publish.qos),
        (&b"two"[..], QoS::ExactlyOnce)
    );
    let mut zero = Publish::new("t/local", "zero", false);
    zero.set_qos(QoS::AtMostOnce, 9);
    assert_eq!((zero.qos(), zero.pkid()), (QoS::AtMostOnce, 0));
}

fn disconnect(client: &mut Client) {
    client.send(Packet::Disconnect(
        crate::protocol::Disconnect {
            reason_code: crate::protocol::DisconnectReasonCode::NormalDisconnection,
        },
        None,
    ));
}

/// MQTT 5: Clean Start 1 with a Session Expiry Interval discards a saved session, and the
/// new one is still kept after the connection ends (upstream tied both to `clean`).
#[test]
fn a_clean_start_session_with_an_expiry_outlives_its_connection() {
    let router = router();
    let mut publisher = Client::new(&router, "pub");
    let expiry = Duration::from_secs(60);

    let (mut first, resumed) = persistent_starting(&router, "cs", expiry, true);
    assert!(!resumed);
    first.subscribe(filter("t/old", QoS::AtLeastOnce));
    disconnect(&mut first);

    let (mut second, resumed) = persistent_starting(&router, "cs", expiry, true);
    assert!(!resumed, "Clean Start discards the saved session");
    second.subscribe(filter("t/new", QoS::AtLeastOnce));
    disconnect(&mut second);
    publisher.publish("t/old", "old", QoS::AtLeastOnce, false);
    publisher.publish("t/new", "new", QoS::AtLeastOnce, false);

    let (mut third, resumed) = persistent_starting(&router, "cs", expiry, false);
    assert!(resumed, "the clean-started session was kept");
    assert_eq!(payload(&third.delivery()), b"new");
    assert_eq!(
        forwards(&third.ping_sync()),
        0,
        "the discarded session's subscription went with it"
    );
}

#[test]
fn interest_hook_follows_the_subscriptions_sessions_hold() {
    let (router, rx) = router_with_interest_hook();
    let mut a = Client::new(&router, "a");
    a.subscribe(filter("t/x", QoS::AtLeastOnce));
    assert_eq!(next_interest(&rx), change("a", "t/x", true));
    // A repeated SUBSCRIBE is no new subscription.
    a.subscribe(filter("t/x", QoS::AtMostOnce));
    a.subscribe(filter("$share/g/t/+", QoS::AtLeastOnce));
    assert_eq!(next_interest(&rx), change("a", "$share/g/t/+", true));
    unsubscribe(&mut a, "t/x");
    assert_eq!(next_interest(&rx), change("a", "t/x", false));
    a.subscribe(filter("t/y", QoS::AtMostOnce));
    assert_eq!(next_interest(&rx), change("a", "t/y", true));

    // The end of a clean session drops what it held.
    disconnect(&mut a);
    let mut gone = vec![next_interest(&rx), next_interest(&rx)];
    gone.sort();
    assert_eq!(
        gone,
        [change("a", "$share/g/t/+", false), change("a", "t/y", false)]
    );

    // A persistent session holds its subscriptions while offline; a clean start drops them.
    let (mut p, _) = persistent(&router, "p", Duration::from_secs(60));
    p.subscribe(filter("t/p", QoS::AtLeastOnce));
    assert_eq!(next_interest(&rx), change("p", "t/p", true));
    disconnect(&mut p);
    let (_p, resumed) = persistent(&router, "p", Duration::from_secs(60));
    assert!(resumed);
    let _clean = Client::new(&router, "p");
    assert_eq!(
        next_interest(&rx),
        change("p", "t/p", false),
        "nothing between: the offline session kept t/p until the clean start"
    );
    assert!(rx.try_recv().is_err());
}
