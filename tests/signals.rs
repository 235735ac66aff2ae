//! Signals (docs/protocol.md section 3, "Signals"): `im/sig/dm/{to}/{from}` and
//! `im/sig/grp/{group}/{from}` carry small ephemeral notes, typing first. The payload is
//! checked (roost_proto::signal): a good one reaches the other members as sent and is never
//! stored; a bad one is refused with the reason code (v5 PUBACK 0x99, v3.1.1 dropped) and
//! an `invalid_payload` notice, and reaches nobody. With rumqttc (both versions) and paho.
mod common;

use common::client::{Client, Mqtt3};
use common::history::Peer;
use common::{token, Node};
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use serde_json::{json, Value};

const START: &str = r#"{"type":"typing","state":"start"}"#;
const STOP: &str = r#"{"type":"typing","state":"stop","ts":1700000000000}"#;

/// The next signal `peer` receives: (topic, payload as sent).
async fn next_signal(peer: &mut Peer) -> (String, String) {
    match peer
        .expect(
            "signal",
            |p| matches!(p, Packet::Publish(p) if p.topic.starts_with(b"im/sig/")),
        )
        .await
    {
        Packet::Publish(p) => (
            String::from_utf8_lossy(&p.topic).into_owned(),
            String::from_utf8_lossy(&p.payload).into_owned(),
        ),
        _ => unreachable!(),
    }
}

/// Typing reaches the other member of a DM and of a group byte for byte, and none of it is
/// stored: the conversations hold only the chat message sent beside it.
#[tokio::test]
async fn typing_reaches_the_other_member_and_is_not_stored() {
    let node = Node::start();
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    bob.subscribe("im/sig/dm/bob/+").await;
    bob.subscribe("im/sig/grp/team/+").await;

    alice.publish("im/sig/dm/bob/alice", START).await;
    assert_eq!(alice.puback().await.reason, PubAckReason::Success);
    assert_eq!(
        next_signal(&mut bob).await,
        ("im/sig/dm/bob/alice".to_owned(), START.to_owned())
    );
    alice.publish("im/sig/grp/team/alice", STOP).await;
    assert_eq!(alice.puback().await.reason, PubAckReason::Success);
    assert_eq!(
        next_signal(&mut bob).await,
        ("im/sig/grp/team/alice".to_owned(), STOP.to_owned())
    );

    // One chat message in each conversation, stored (its ack); the history has it alone.
    alice.dm("bob", "m-1", "hi").await;
    alice.ack("m-1").await;
    alice.grp("team", "m-2", "hi all").await;
    alice.ack("m-2").await;
    for conv in ["dm:alice:bob", "grp:team"] {
        let page = bob.call("history", json!({ "conv": conv })).await;
        let messages = page["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 1, "{conv}: {page}");
        assert_eq!(messages[0]["payload"]["kind"], "text", "{conv}: {page}");
    }
    let sync = bob.call("sync", json!({})).await;
    assert_eq!(sync["messages"].as_array().map(Vec::len), Some(2), "{sync}");
}

/// A bad signal is refused with PUBACK 0x99 and an `invalid_payload` notice saying why, and
/// nobody gets it: the next signal bob sees is the good one sent after them all.
#[tokio::test]
async fn invalid_signals_are_refused_with_the_reason_code() {
    let node = Node::start();
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    let mut bob = Peer::connect(&node, "bob", &[]).await;
    bob.subscribe("im/sig/dm/bob/+").await;

    let big = json!({"type": "x-draft", "data": "y".repeat(1100)}).to_string();
    for (bad, says) in [
        ("typing", "JSON object"),
        (r#"{"type":"typing","state":"maybe"}"#, "start"),
        (r#"{"type":"typing","state":"start","text":"hi"}"#, "text"),
        (r#"{"type":"call"}"#, "signal type"),
        (big.as_str(), "byte limit"),
    ] {
        alice.publish("im/sig/dm/bob/alice", bad).await;
        let ack = alice.puback().await;
        assert_eq!(ack.reason, PubAckReason::PayloadFormatInvalid, "{bad}");
        let notice = alice.error_notice().await;
        assert_eq!(notice["code"], "invalid_payload", "{bad}: {notice}");
        let message = notice["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{bad}: {notice}");
    }
    let app = r#"{"type":"x-poll.vote","data":{"choice":2}}"#;
    alice.publish("im/sig/dm/bob/alice", app).await;
    assert_eq!(alice.puback().await.reason, PubAckReason::Success);
    assert_eq!(next_signal(&mut bob).await.1, app);
}

/// MQTT 3.1.1 has no way to say no: the bad signal is acknowledged and dropped, with the
/// notice; the good one after it arrives.
#[tokio::test]
async fn v311_bad_signal_is_dropped_with_a_notice() {
    let node = Node::start();
    let mut alice = Client::<Mqtt3>::user(&node, "alice").await;
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/sig/dm/bob/+").await, 1);

    alice
        .publish_acked("im/sig/dm/bob/alice", r#"{"type":"typing"}"#)
        .await;
    let (topic, notice) = alice.next_publish().await;
    assert_eq!(topic, "im/sys/alice");
    let notice: Value = serde_json::from_str(&notice).unwrap();
    assert_eq!(notice["code"], "invalid_payload", "{notice}");

    alice.publish_acked("im/sig/dm/bob/alice", START).await;
    let (topic, payload) = bob.next_publish().await;
    assert_eq!(
        (topic.as_str(), payload.as_str()),
        ("im/sig/dm/bob/alice", START)
    );
}

/// The same for a third-party MQTT 5 client (paho): typing reaches bob, a bad signal gets
/// 0x99 and the notice.
#[test]
fn paho_v5_signals() {
    let node = Node::start();
    let port = node.mqtt.port().to_string();
    common::tools::paho(
        "signals_v5.py",
        &["127.0.0.1", &port, &token("alice"), &token("bob")],
    );
}
