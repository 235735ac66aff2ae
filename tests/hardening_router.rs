//! Issue 9 against a real node: packets only a server sends (and AUTH) close the connection
//! that sent them with a protocol error, and the connection is cleaned up like any other
//! (presence offline, connections gauge back).
mod common;

use common::client::{Client, WAIT};
use common::http::http_get;
use common::raw::{self, Raw, V311, V5};
use common::Node;
use rumqttc::Packet;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

const PRESENCE: &str = "im/presence/mallory";

/// The `roost_connections` gauge.
fn connections(node: &Node) -> f64 {
    let answer = http_get(node.http, "/metrics", None, WAIT);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .body
        .lines()
        .find_map(|l| l.strip_prefix("roost_connections "))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// Waits (bounded by WAIT) for the gauge to read `want`.
async fn connections_back_to(node: &Node, want: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = connections(node);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "roost_connections is {now}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next status on mallory's presence topic.
async fn next_status(watcher: &mut Client) -> String {
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
async fn still_talk(node: &mut Node, bob: &mut Client, carol: &mut Client) {
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
    let mut bob = Client::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let mut carol = Client::user(&node, "carol").await;
    assert_eq!(carol.subscribe("im/dm/carol/+").await, 1);
    let mut watcher = Client::user(&node, "watcher").await;
    assert_eq!(watcher.subscribe(PRESENCE).await, 1);
    let baseline = connections(&node);

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
            raw::log_line(&node, &[&mallory.peer(), cause]).await;

            // The cleanup ran: mallory is offline and the gauge is back.
            assert_eq!(
                next_status(&mut watcher).await,
                "offline",
                "level {level} {name}"
            );
            connections_back_to(&node, baseline).await;
        }
    }
    still_talk(&mut node, &mut bob, &mut carol).await;
}
