//! Issue 9 against a real node: packets only a server sends (and AUTH) close the connection
//! that sent them with a protocol error, and the connection is cleaned up like any other
//! (presence offline, connections gauge back); and a client cycling through distinct
//! filters leaves no router state (logs, trie nodes, meters) behind once it leaves.
mod common;

use common::client::{Client, Mqtt3};
use common::raw::{self, Raw, DISCONNECT_NORMAL, SUBACK, V311, V5};
use common::Node;
use rumqttc::Packet;
use serde_json::Value;

const PRESENCE: &str = "im/presence/mallory";

/// The next status on mallory's presence topic.
async fn next_status(watcher: &mut Client<Mqtt3>) -> String {
    match watcher
        .next_where(|p| matches!(p, Packet::Publish(p) if p.topic == PRESENCE))
        .await
    {
        Packet::Publish(p) => {
            let status: Value = serde_json::from_slice(&p.payload).expect("presence is JSON");
            status["status"].as_str().expect("a status").to_owned()
        }
        _ => unreachable!(),
    }
}

/// Bob and carol exchange DMs.
async fn still_talk(node: &mut Node, bob: &mut Client<Mqtt3>, carol: &mut Client<Mqtt3>) {
    assert!(node.is_running(), "the node died:\n{}", node.log_text());
    bob.publish(
        "im/dm/carol/bob",
        r#"{"id":"b1","kind":"text","body":"still there?"}"#,
    )
    .await;
    let (topic, payload) = carol.next_publish().await;
    assert_eq!(topic, "im/dm/carol/bob");
    assert!(payload.contains("still there?"), "{payload}");
    carol
        .publish(
            "im/dm/bob/carol",
            r#"{"id":"c1","kind":"text","body":"yes"}"#,
        )
        .await;
    let (topic, payload) = bob.next_publish().await;
    assert_eq!(topic, "im/dm/bob/carol");
    assert!(payload.contains(r#""body":"yes""#), "{payload}");
}

/// Every packet type a server never receives, in the form `level` gives it, with the words
/// the node's log (and a v5 reason string) uses for it.
fn server_only_packets(level: u8) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    const NOT_FROM_A_CLIENT: &str = "packet a client may not send";
    let v5 = level == V5;
    vec![
        (
            "CONNACK",
            if v5 {
                vec![0x20, 0x03, 0x00, 0x00, 0x00]
            } else {
                vec![0x20, 0x02, 0x00, 0x00]
            },
            NOT_FROM_A_CLIENT,
        ),
        (
            "SUBACK",
            if v5 {
                vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x00]
            } else {
                vec![0x90, 0x03, 0x00, 0x01, 0x00]
            },
            NOT_FROM_A_CLIENT,
        ),
        (
            "UNSUBACK",
            if v5 {
                vec![0xb0, 0x04, 0x00, 0x01, 0x00, 0x00]
            } else {
                vec![0xb0, 0x02, 0x00, 0x01]
            },
            NOT_FROM_A_CLIENT,
        ),
        ("PINGRESP", vec![0xd0, 0x00], NOT_FROM_A_CLIENT),
        // AUTH: v5 has it but roost has no enhanced authentication; v3.1.1 reserves type 15.
        (
            "AUTH",
            vec![0xf0, 0x00],
            if v5 {
                NOT_FROM_A_CLIENT
            } else {
                "malformed packet"
            },
        ),
    ]
}

#[tokio::test]
async fn server_only_packets_close_the_connection_and_clean_up() {
    let mut node = Node::start();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let mut carol = Client::<Mqtt3>::user(&node, "carol").await;
    assert_eq!(carol.subscribe("im/dm/carol/+").await, 1);
    let mut watcher = Client::<Mqtt3>::user(&node, "watcher").await;
    assert_eq!(watcher.subscribe(PRESENCE).await, 1);
    let baseline = node.metric("roost_connections").unwrap_or(0.0);

    for level in [V311, V5] {
        for (name, bad, cause) in server_only_packets(level) {
            let mut mallory = Raw::sign_in(&node, level, "mallory").await;
            assert_eq!(next_status(&mut watcher).await, "online", "{name}");
            mallory.send(&bad).await;

            let closed = mallory.closed().await;
            assert!(closed.trailing.is_empty(), "{name}: {closed:?}");
            if level == V5 {
                assert_eq!(closed.packets.len(), 1, "{name}: {closed:?}");
                assert_eq!(closed.packets[0].disconnect_reason(), 0x82, "{name}");
                let why = closed.packets[0].reason_string();
                assert_eq!(why.as_deref(), Some(cause), "{name}");
            } else {
                assert!(closed.packets.is_empty(), "{name}: {closed:?}");
            }
            node.wait_for_log(&[&mallory.peer(), cause]).await;

            // The cleanup ran: mallory is offline and the gauge is back.
            assert_eq!(
                next_status(&mut watcher).await,
                "offline",
                "level {level} {name}"
            );
            node.wait_metric("roost_connections", |v| v == baseline)
                .await;
        }
    }
    still_talk(&mut node, &mut bob, &mut carol).await;
}

/// Lets every user subscribe to filters of their own under `devices/{user}/`.
const DEVICE_RULES: &str = r#"
[[acl.rules]]
permission = "allow"
action = "all"
topic = "devices/{user}/#"
"#;

/// An UNSUBSCRIBE (v3.1.1) of `filter`.
fn unsubscribe(pkid: u16, filter: &str) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend(raw::string(filter.as_bytes()));
    raw::packet(0xa2, &body)
}

/// Subscribes and unsubscribes each filter `devices/alice/{i}/...` for `i` in `range`,
/// pipelined in batches; every SUBSCRIBE must be granted.
async fn churn(alice: &mut Raw, range: std::ops::Range<u32>) {
    const BATCH: u32 = 250;
    let mut start = range.start;
    while start < range.end {
        let end = (start + BATCH).min(range.end);
        let mut out = Vec::new();
        for i in start..end {
            // Alternate shapes: exact, `+` and `#` filters all get trie nodes.
            let filter = match i % 3 {
                0 => format!("devices/alice/{i}"),
                1 => format!("devices/alice/{i}/+"),
                _ => format!("devices/alice/{i}/#"),
            };
            let pkid = (i % 30_000 + 1) as u16;
            out.extend(raw::subscribe(V311, pkid, &filter));
            out.extend(unsubscribe(pkid + 30_000, &filter));
        }
        alice.send(&out).await;
        for _ in start..end {
            // A SUBACK and an UNSUBACK per pair, in some order.
            for _ in 0..2 {
                let frame = alice.next_frame().await.expect("closed while churning");
                if frame.kind() == SUBACK {
                    assert!(frame.body[2] < 0x80, "subscription refused: {frame:?}");
                }
            }
        }
        start = end;
    }
}

#[tokio::test]
async fn churning_distinct_filters_leaves_no_router_state_behind() {
    let mut node = Node::builder().toml(DEVICE_RULES).start();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let mut carol = Client::<Mqtt3>::user(&node, "carol").await;
    assert_eq!(carol.subscribe("im/dm/carol/+").await, 1);

    let mut alice = Raw::sign_in(&node, V311, "alice").await;
    // Warm up the node's buffers and allocator before the baseline.
    churn(&mut alice, 0..2_000).await;
    let before = raw::rss_kib(node.pid());

    // Each distinct filter used to leave a log, trie nodes and a meter: about 650 bytes,
    // so 60,000 of them some 38 MiB.
    churn(&mut alice, 2_000..62_000).await;
    alice.send(&DISCONNECT_NORMAL).await;
    let closed = alice.closed().await;
    assert!(closed.packets.is_empty(), "{closed:?}");

    let after = raw::rss_kib(node.pid());
    eprintln!("RSS {before} KiB before, {after} KiB after 60,000 distinct filters");
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} KiB to {after} KiB after 60,000 distinct filters came and went"
    );
    still_talk(&mut node, &mut bob, &mut carol).await;
}

/// Issue 15: a packet MQTT calls malformed or a protocol error closes the connection that
/// sent it, v5 clients getting the reason code the spec names (DISCONNECT, or CONNACK for a
/// CONNECT) and v3.1.1 clients a plain close; the node keeps serving the others.
#[tokio::test]
async fn invalid_packets_get_the_reason_code_mqtt_names() {
    let mut node = Node::start();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let mut carol = Client::<Mqtt3>::user(&node, "carol").await;
    assert_eq!(carol.subscribe("im/dm/carol/+").await, 1);

    let topic = raw::string(b"im/dm/bob/mallory");
    let subscribe = |byte1: u8, options: u8| {
        let mut body = vec![0, 1, 0];
        body.extend(raw::string(b"im/dm/mallory/+"));
        body.push(options);
        raw::packet(byte1, &body)
    };
    let publish = |byte1: u8, props: &[u8]| {
        let mut body = topic.clone();
        body.push(props.len() as u8);
        body.extend_from_slice(props);
        body.push(b'x');
        raw::packet(byte1, &body)
    };
    const MALFORMED: (u8, &str) = (0x81, "malformed packet");
    let v5_cases: Vec<(&str, Vec<u8>, (u8, &str))> = vec![
        ("SUBSCRIBE flags 0000", subscribe(0x80, 1), MALFORMED),
        ("reserved option bits", subscribe(0x82, 0xc1), MALFORMED),
        (
            "Retain Handling 3",
            subscribe(0x82, 0x31),
            (0x82, "Retain Handling 3"),
        ),
        (
            "empty UNSUBSCRIBE",
            raw::packet(0xa2, &[0, 1, 0]),
            (0x82, "UNSUBSCRIBE without a topic filter"),
        ),
        ("DUP on QoS 0", publish(0x38, &[]), MALFORMED),
        (
            "property twice",
            publish(0x30, &[0x01, 1, 0x01, 1]),
            (0x82, "a property given more than once"),
        ),
        ("PUBREL flags 0000", raw::packet(0x60, &[0, 1]), MALFORMED),
    ];
    for (name, bad, (code, why)) in v5_cases {
        let mut mallory = Raw::sign_in(&node, V5, "mallory").await;
        mallory.send(&bad).await;
        let closed = mallory.closed().await;
        assert_eq!(closed.packets.len(), 1, "{name}: {closed:?}");
        assert_eq!(closed.packets[0].disconnect_reason(), code, "{name}");
        assert_eq!(
            closed.packets[0].reason_string().as_deref(),
            Some(why),
            "{name}"
        );
    }
    let v311_cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "SUBSCRIBE flags 0000",
            raw::packet(0x80, &subscribe(0x82, 1)[2..]),
        ),
        ("empty UNSUBSCRIBE", raw::packet(0xa2, &[0, 1])),
        (
            "DUP on QoS 0",
            raw::packet(0x38, &[&topic[..], b"x"].concat()),
        ),
    ];
    for (name, bad) in v311_cases {
        let mut mallory = Raw::sign_in(&node, V311, "mallory").await;
        mallory.send(&bad).await;
        let closed = mallory.closed().await;
        assert!(
            closed.packets.is_empty() && closed.trailing.is_empty(),
            "{name}: {closed:?}"
        );
    }

    // CONNECTs: the reserved flag is malformed (0x81), a property twice a protocol error
    // (0x82).
    let token = common::token("mallory");
    let connect = |flags: u8, props: &[u8]| {
        let mut body = raw::string(b"MQTT");
        body.extend_from_slice(&[V5, flags, 0, 30, props.len() as u8]);
        body.extend_from_slice(props);
        body.extend(raw::string(b"mallory"));
        body.extend(raw::string(b"mallory"));
        body.extend(raw::string(token.as_bytes()));
        raw::packet(0x10, &body)
    };
    let expiry_twice = [0x11, 0, 0, 0, 60, 0x11, 0, 0, 0, 60];
    for (name, bad, code) in [
        ("reserved flag", connect(0xc3, &[]), 0x81),
        ("property twice", connect(0xc2, &expiry_twice), 0x82),
    ] {
        let mut mallory = Raw::open(node.mqtt).await;
        mallory.send(&bad).await;
        let closed = mallory.closed().await;
        assert_eq!(closed.packets.len(), 1, "{name}: {closed:?}");
        assert_eq!(closed.packets[0].connack_code(), code, "{name}");
    }
    // The same CONNECT with valid flags signs in.
    let mut fine = Raw::open(node.mqtt).await;
    fine.send(&connect(0xc2, &[])).await;
    let ack = fine.next_frame().await.expect("a CONNACK");
    assert_eq!(ack.connack_code(), 0);

    still_talk(&mut node, &mut bob, &mut carol).await;
}
