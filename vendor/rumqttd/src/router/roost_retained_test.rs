//! ROOST PATCH: retained messages sent on subscribe to a client with fewer free Receive
//! Maximum slots than there are matching retained topics (patch 25): every one arrives,
//! flagged retained, as slots free up, and before the subscription's live messages.
//! Helpers are roost_delivery_test's (a real router thread and local links).

use crate::protocol::QoS;
use crate::router::roost_delivery_test::{filter, forwards, payload, router, Client};
use crate::router::Ack;
use crate::Notification;

/// Publishes `count` retained QoS 1 messages `r1`.. on `{prefix}/1`.. and waits until the
/// router has acknowledged (stored) them all.
fn retain(publisher: &mut Client, prefix: &str, count: usize) {
    for n in 1..=count {
        publisher.publish(
            &format!("{prefix}/{n}"),
            &format!("r{n}"),
            QoS::AtLeastOnce,
            true,
        );
    }
    let mut acked = 0;
    while acked < count {
        if let Notification::DeviceAck(Ack::PubAck(_)) = publisher.next() {
            acked += 1;
        }
    }
}

#[test]
fn retained_messages_beyond_the_receive_maximum_arrive_as_slots_free_up() {
    let router = router();
    let mut publisher = Client::new(&router, "pub");
    retain(&mut publisher, "t/ret", 6);

    let mut sub = Client::with_receive_maximum(&router, "sub", Some(2));
    sub.subscribe(filter("t/ret/+", QoS::AtLeastOnce));
    let first = sub.forward();
    let second = sub.forward();
    assert_eq!(forwards(&sub.ping_sync()), 0, "a third before any PUBACK");
    // A live message published now still comes after every retained one.
    publisher.publish("t/ret/live", "live", QoS::AtLeastOnce, false);

    sub.ack(first.publish.pkid);
    sub.ack(second.publish.pkid);
    let mut delivered = vec![first, second];
    while delivered.len() < 7 {
        let next = sub.forward();
        sub.ack(next.publish.pkid);
        delivered.push(next);
    }
    let got: Vec<(String, bool)> = delivered
        .iter()
        .map(|f| {
            (
                String::from_utf8_lossy(payload(f)).into_owned(),
                f.publish.retain,
            )
        })
        .collect();
    let want: Vec<(String, bool)> = (1..=6)
        .map(|n| (format!("r{n}"), true))
        .chain([("live".to_owned(), false)])
        .collect();
    assert_eq!(got, want);
    assert_eq!(forwards(&sub.ping_sync()), 0, "each delivered once");
}

/// ROOST PATCH 29: a node link's retained publish marked `RETAIN_ONLY` updates the store
/// (set, then delete) and reaches no subscriber; the marker is not kept, and from a
/// network client's link (no `@`) it is an ordinary user property.
#[test]
fn a_retain_only_publish_of_a_node_link_is_stored_and_delivered_to_nobody() {
    use crate::protocol::PublishProperties;
    use crate::RETAIN_ONLY;

    let marked = || {
        Some(PublishProperties {
            user_properties: vec![(RETAIN_ONLY.to_owned(), String::new())],
            ..Default::default()
        })
    };
    let router = router();
    let mut watcher = Client::new(&router, "watcher");
    watcher.subscribe(filter("t/#", QoS::AtLeastOnce));
    let mut node = Client::new(&router, "@node");
    node.publish_with("t/a", "stored", QoS::AtLeastOnce, true, marked());
    node.ping_sync();
    assert_eq!(forwards(&watcher.ping_sync()), 0, "store-only reached a subscriber");

    let mut later = Client::new(&router, "later");
    later.subscribe(filter("t/a", QoS::AtLeastOnce));
    let got = later.forward();
    assert_eq!(payload(&got), b"stored");
    assert!(got.publish.retain);
    assert!(
        got.properties.is_none(),
        "marker kept: {:?}",
        got.properties
    );
    later.ack(got.publish.pkid);

    // An empty store-only publish deletes, silently too.
    node.publish_with("t/a", "", QoS::AtLeastOnce, true, marked());
    node.ping_sync();
    assert_eq!(forwards(&watcher.ping_sync()), 0);
    let mut last = Client::new(&router, "last");
    last.subscribe(filter("t/a", QoS::AtLeastOnce));
    assert_eq!(forwards(&last.ping_sync()), 0, "deleted retained message sent");

    // A network client cannot use it: delivered, property and all.
    let mut client = Client::new(&router, "client");
    client.publish_with("t/b", "live", QoS::AtLeastOnce, true, marked());
    let got = watcher.forward();
    assert_eq!(payload(&got), b"live");
    let properties = got.properties.expect("properties");
    assert_eq!(properties.user_properties[0].0, RETAIN_ONLY);
}
