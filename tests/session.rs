//! The MQTT session beyond one packet (docs/protocol.md, "While connected"): session
//! takeover, will timing around a reconnect, exactly-once QoS 2 with a reused packet id,
//! and a client that stops reading.
mod common;

use common::client::{options, options5, Client, Mqtt3, Mqtt5};
use common::history::chat;
use common::raw::{self, Connect, Raw, V311, V5};
use common::{token, Node};
use rumqttc::v5::mqttbytes::v5::{ConnectProperties, LastWill, LastWillProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::Packet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Bob, subscribed to his DMs.
async fn bob(node: &Node) -> Client<Mqtt3> {
    let mut bob = Client::<Mqtt3>::user(node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    bob
}

/// Bob's DM payloads up to and including the one that contains `marker`.
async fn payloads_until(bob: &mut Client<Mqtt3>, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let (_, payload) = bob.next_publish().await;
        let done = payload.contains(marker);
        seen.push(payload);
        if done {
            return seen;
        }
    }
}

/// MQTT 5 3.1.4-3: a CONNECT with a client id already connected takes the session over; the
/// old connection gets DISCONNECT 0x8E (Session taken over) before it is closed.
#[tokio::test]
async fn takeover_disconnects_the_old_connection_with_0x8e() {
    let node = Node::start();
    let (mut old, ack) = Raw::connect(&node, &Connect::user(V5, "alice", &token("alice"))).await;
    assert_eq!(ack.connack_code(), 0);
    let (_new, ack) = Raw::connect(&node, &Connect::user(V5, "alice", &token("alice"))).await;
    assert_eq!(ack.connack_code(), 0);
    let closed = old.closed().await;
    let last = closed
        .packets
        .last()
        .expect("a DISCONNECT before the close");
    assert_eq!(last.disconnect_reason(), 0x8E, "{closed:?}");
    assert_eq!(
        last.reason_string().as_deref(),
        Some("session taken over by another connection")
    );
}

/// Options for alice's persistent v5 session with a will to bob delayed by `delay` seconds.
fn alice_with_delayed_will(node: &Node, delay: u32) -> rumqttc::v5::MqttOptions {
    let mut o = options5(node, "alice", "alice", &token("alice"));
    o.set_clean_start(false);
    o.set_connect_properties(ConnectProperties {
        session_expiry_interval: Some(60),
        ..Default::default()
    });
    let props = LastWillProperties {
        delay_interval: Some(delay),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    o.set_last_will(LastWill::new(
        "im/dm/bob/alice",
        chat("w1", "gone"),
        QoS::AtMostOnce,
        false,
        Some(props),
    ));
    o
}

/// MQTT 5 3.1.3.2.2: a will with a delay is not published when the client is back within the
/// delay, and a session takeover is such a return: the old connection's will must not fire
/// while the new one is connected.
#[tokio::test]
async fn delayed_will_not_published_after_takeover() {
    let node = Node::start();
    let mut bob = bob(&node).await;
    let o = alice_with_delayed_will(&node, 1);
    let mut first = Client::<Mqtt5>::connect(o.clone()).await.unwrap();
    let second = Client::<Mqtt5>::connect(o).await.unwrap();
    let ended = format!("{:?}", first.ended().await);
    assert!(ended.contains("SessionTakenOver"), "{ended}");

    // The will's delay passes while the second connection is up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    second
        .client
        .publish(
            "im/dm/bob/alice",
            QoS::AtLeastOnce,
            false,
            chat("marker", "still here"),
        )
        .await
        .unwrap();
    let seen = payloads_until(&mut bob, "marker").await;
    assert!(
        !seen.iter().any(|p| p.contains("\"w1\"")),
        "will published while the client is connected: {seen:?}"
    );
}

/// A v5 CONNECT for alice's persistent session (expiry 60 s) with a will to bob delayed by
/// `delay` seconds. By hand: the raw client has no will properties, and a rumqttc client
/// cannot be made to drop its socket.
fn raw_connect_with_delayed_will(delay: u32) -> Vec<u8> {
    let mut body = raw::string(b"MQTT");
    body.push(V5);
    body.push(0x04 | 0x40 | 0x80); // will, password, username; Clean Start 0
    body.extend(30u16.to_be_bytes());
    body.extend(raw::varint(5));
    body.push(0x11); // Session Expiry Interval
    body.extend(60u32.to_be_bytes());
    body.extend(raw::string(b"alice"));
    body.extend(raw::varint(5));
    body.push(0x18); // Will Delay Interval
    body.extend(delay.to_be_bytes());
    body.extend(raw::string(b"im/dm/bob/alice"));
    body.extend(raw::string(chat("w1", "gone").as_bytes()));
    body.extend(raw::string(b"alice"));
    body.extend(raw::string(token("alice").as_bytes()));
    raw::packet(0x10, &body)
}

/// MQTT 5 3.1.3.2.2: the connection drops and the client reconnects within the will delay:
/// the will is not published.
#[tokio::test]
async fn delayed_will_cancelled_by_reconnect() {
    let node = Node::start();
    let mut bob = bob(&node).await;
    let mut first = Raw::open(node.mqtt).await;
    first.send(&raw_connect_with_delayed_will(1)).await;
    let ack = first.next_frame().await.expect("CONNACK");
    assert_eq!(ack.connack_code(), 0);
    // Gone without a DISCONNECT: the will waits out its delay.
    let peer = first.peer();
    drop(first);
    node.wait_for_log(&[&peer, "disconnected"]).await;
    let second = Client::<Mqtt5>::connect(alice_with_delayed_will(&node, 1))
        .await
        .unwrap();

    // The will's delay passes while the second connection is up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    second
        .client
        .publish(
            "im/dm/bob/alice",
            QoS::AtLeastOnce,
            false,
            chat("marker", "back"),
        )
        .await
        .unwrap();
    let seen = payloads_until(&mut bob, "marker").await;
    assert!(
        !seen.iter().any(|p| p.contains("\"w1\"")),
        "will published although the client came back: {seen:?}"
    );
}

/// Sends a QoS 2 PUBLISH as alice and takes its PUBREC.
async fn publish_qos2(alice: &mut Raw, pkid: u16, id: &str) -> Vec<u8> {
    let message = raw::publish(
        V311,
        b"im/dm/bob/alice",
        2,
        pkid,
        chat(id, "once").as_bytes(),
    );
    alice.send(&message).await;
    let rec = alice.next_frame().await.expect("PUBREC");
    assert_eq!(
        (rec.kind(), &rec.body[..]),
        (5, &pkid.to_be_bytes()[..]),
        "{rec:?}"
    );
    message
}

/// Releases alice's QoS 2 message `pkid` and takes its PUBCOMP.
async fn release(alice: &mut Raw, pkid: u16) {
    alice.send(&raw::packet(0x62, &pkid.to_be_bytes())).await;
    let comp = alice.next_frame().await.expect("PUBCOMP");
    assert_eq!(
        (comp.kind(), &comp.body[..]),
        (7, &pkid.to_be_bytes()[..]),
        "{comp:?}"
    );
}

/// MQTT 4.3.3: until its PUBREL, a QoS 2 PUBLISH with the same packet id is the same
/// message. It is answered with PUBREC again and delivered once. Before, the router kept
/// every copy (10,000 copies of 60 KB grew the node by 600 MiB), and each later PUBREL
/// released the oldest copy kept: the duplicate went out again in place of the next message.
#[tokio::test]
async fn qos2_copy_with_the_same_packet_id_is_delivered_once() {
    let node = Node::start();
    let mut bob = bob(&node).await;
    let mut alice = Raw::sign_in(&node, V311, "alice").await;
    let message = publish_qos2(&mut alice, 9, "q2").await;
    // The same packet id again, before the PUBREL: a duplicate (its DUP flag set).
    let mut copy = message.clone();
    copy[0] |= 0x08;
    alice.send(&copy).await;
    let rec = alice.next_frame().await.expect("PUBREC for the copy");
    assert_eq!((rec.kind(), &rec.body[..]), (5, &[0, 9][..]), "{rec:?}");
    release(&mut alice, 9).await;
    // The next QoS 2 message is delivered as itself.
    publish_qos2(&mut alice, 10, "next").await;
    release(&mut alice, 10).await;

    alice
        .send(&raw::publish(
            V311,
            b"im/dm/bob/alice",
            1,
            11,
            chat("marker", "m").as_bytes(),
        ))
        .await;
    let seen = payloads_until(&mut bob, "marker").await;
    let count = |id: &str| {
        seen.iter()
            .filter(|p| p.contains(&format!("\"{id}\"")))
            .count()
    };
    assert_eq!((count("q2"), count("next")), (1, 1), "{seen:?}");
}

/// The next status bob sees on alice's presence topic.
async fn alice_status(bob: &mut Client<Mqtt3>) -> String {
    match bob
        .next_where(|p| matches!(p, Packet::Publish(p) if p.topic == "im/presence/alice"))
        .await
    {
        Packet::Publish(p) => {
            let status: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
            status["status"].as_str().unwrap_or_default().to_owned()
        }
        _ => unreachable!(),
    }
}

/// A client that subscribes and then never reads its socket used to block its connection
/// for ever: the node's write waited, so keepalive and token expiry never fired and it
/// stayed online. Now a write the client does not take within `limits.write_timeout` closes
/// the connection (slow consumer), and it is cleaned up like any other: offline for others.
#[tokio::test]
async fn client_that_stops_reading_is_disconnected() {
    let node = Node::builder()
        .toml("[limits]\nwrite_timeout = \"1s\"\n[history]\nservice = false\n")
        .start();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/presence/alice").await, 1);

    // A small receive buffer, so that little fills it (the kernel's default grows to MiBs).
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut alice = socket.connect(node.mqtt).await.unwrap();
    let peer = format!("peer={} ", alice.local_addr().unwrap());
    let connect = Connect::user(V311, "alice", &token("alice")).encode();
    alice.write_all(&connect).await.unwrap();
    let mut connack = [0u8; 4];
    alice.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    // At QoS 0: no inflight window holds the router back, as it would at QoS 1 once 100
    // deliveries wait for alice's PUBACK.
    let mut subscribe = 1u16.to_be_bytes().to_vec();
    subscribe.extend(raw::string(b"im/dm/alice/+"));
    subscribe.push(0);
    alice
        .write_all(&raw::packet(0x82, &subscribe))
        .await
        .unwrap();
    let mut suback = [0u8; 5];
    alice.read_exact(&mut suback).await.unwrap();
    assert_eq!(suback, [0x90, 3, 0, 1, 0]);
    assert_eq!(alice_status(&mut bob).await, "online");
    // From here on alice reads nothing.

    let mut o = options(&node, "carol", "carol", &token("carol"));
    o.set_max_packet_size(64 * 1024, 64 * 1024);
    let carol = Client::connect(o).await.unwrap();
    let body = "x".repeat(30 * 1024);
    let flood = tokio::spawn(async move {
        // Far more than the socket buffers on both ends hold (the router drops much of it
        // for alice, who falls behind).
        for i in 0..4000 {
            let message = chat(&format!("f{i}"), &body);
            if carol
                .client
                .publish(
                    "im/dm/alice/carol",
                    rumqttc::QoS::AtMostOnce,
                    false,
                    message,
                )
                .await
                .is_err()
            {
                return;
            }
        }
    });

    node.wait_for_log(&[&peer, "slow consumer"]).await;
    // Enough: the flood would only slow the router down for everyone else.
    flood.abort();
    loop {
        let status = alice_status(&mut bob).await;
        if status == "offline" {
            break;
        }
    }
    drop(alice);
}
