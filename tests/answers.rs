//! Answers to requests (docs/protocol.md section 5) on a real node with its history service:
//! a `result` reaches only the device that asked (its `im/sys/{me}/{device}`, or the v5
//! Response Topic it named, with its Correlation Data), a Response Topic outside the
//! asker's `im/sys/{me}` is refused, a `result` always fits the asker's v5 Maximum Packet
//! Size (paged by bytes), and the other members' read positions come back (`conversations`
//! `reads`, the `members` request). Acks and receipts still reach every device.
mod common;

use common::history::{ids, send_until_acked, HistNode, Peer, Worker};
use common::tools::paho;
use common::{token_with, Backend};
use roost_auth::Role;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PublishProperties, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{json, Value};
use std::time::Duration;

common::on_both_backends!(
    answers_go_only_to_the_device_that_asked,
    a_response_topic_is_honoured_with_its_correlation_data,
    answers_fit_the_askers_maximum_packet_size,
    conversations_and_members_carry_the_others_read_positions,
);

/// Publishes request `req` to `im/req/{me}` with a v5 Response Topic and Correlation Data.
async fn ask_with(peer: &Peer, req: &str, method: &str, response: &str, correlation: &[u8]) {
    let body = json!({"req": req, "method": method, "params": {}}).to_string();
    let props = PublishProperties {
        response_topic: Some(response.to_owned()),
        correlation_data: Some(correlation.to_vec().into()),
        ..Default::default()
    };
    peer.mqtt
        .client
        .publish_with_properties(
            format!("im/req/{}", peer.user),
            QoS::AtLeastOnce,
            false,
            body,
            props,
        )
        .await
        .unwrap();
}

/// The next publish on `topic`, as (payload JSON, Correlation Data).
async fn on_topic(peer: &mut Peer, topic: &str) -> (Value, Option<Vec<u8>>) {
    let t = topic.to_owned();
    match peer
        .expect(
            &format!("a publish on {topic}"),
            move |p| matches!(p, Packet::Publish(p) if p.topic.as_ref() == t.as_bytes()),
        )
        .await
    {
        Packet::Publish(p) => (
            serde_json::from_slice(&p.payload).unwrap(),
            p.properties
                .and_then(|props| props.correlation_data)
                .map(|c| c.to_vec()),
        ),
        _ => unreachable!(),
    }
}

async fn answers_go_only_to_the_device_that_asked(backend: Backend) {
    let node = HistNode::start(backend);
    let mut phone = Peer::device(&node, "alice", "phone", &[]).await;
    let mut laptop = Peer::device(&node, "alice", "laptop", &[]).await;
    assert_eq!(phone.answers_topic(), "im/sys/alice/phone");

    // The phone's answer comes on the phone's topic.
    phone.call("conversations", json!({})).await;
    // The laptop asks after it: the phone's answer, published first, would be here by the
    // time the laptop's own arrives.
    laptop.call("conversations", json!({})).await;
    let seen: Vec<Value> = laptop.kept_notices();
    assert!(
        !seen.iter().any(|n| n["type"] == "result"),
        "the laptop got another device's answer: {seen:?}"
    );
    let req = laptop.request("conversations", json!({})).await["req"].clone();
    assert!(req.as_str().unwrap().starts_with("alice:laptop#"), "{req}");

    // Acks still reach every device on im/sys/alice.
    phone.dm("bob", "m1", "hi").await;
    let ack = laptop.ack("m1").await;
    assert_eq!(ack["conv"], "dm:alice:bob");
    phone.ack("m1").await;

    // A device may take every answer of the user; never another user's.
    laptop.subscribe("im/sys/alice/#").await;
    subscription_refused(&mut laptop, "im/sys/bob/phone").await;
    phone.call("conversations", json!({})).await;
    let (answer, _) = on_topic(&mut laptop, "im/sys/alice/phone").await;
    assert_eq!(answer["type"], "result", "{answer}");
}

/// Subscribes to `filter` and checks the SUBACK refuses it.
async fn subscription_refused(peer: &mut Peer, filter: &str) {
    peer.mqtt
        .client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .unwrap();
    match peer
        .expect("SUBACK", |p| matches!(p, Packet::SubAck(_)))
        .await
    {
        Packet::SubAck(ack) => assert!(
            ack.return_codes
                .iter()
                .all(|c| !matches!(c, SubscribeReasonCode::Success(_))),
            "{filter} granted: {:?}",
            ack.return_codes
        ),
        _ => unreachable!(),
    }
}

async fn a_response_topic_is_honoured_with_its_correlation_data(backend: Backend) {
    let node = HistNode::start(backend);
    let mut phone = Peer::device(&node, "alice", "phone", &[]).await;
    let mut bob = Peer::connect(&node, "bob", &[]).await;
    phone.subscribe("im/sys/alice/phone/rpc").await;

    ask_with(
        &phone,
        "r1",
        "conversations",
        "im/sys/alice/phone/rpc",
        b"\x00corr-1",
    )
    .await;
    let (answer, correlation) = on_topic(&mut phone, "im/sys/alice/phone/rpc").await;
    assert_eq!(answer["type"], "result", "{answer}");
    assert_eq!(answer["req"], "r1", "{answer}");
    assert_eq!(correlation.as_deref(), Some(&b"\x00corr-1"[..]));

    // Somewhere alice may not read: refused (v5 0x87) with an error on her device topic,
    // and nothing reaches bob.
    ask_with(&phone, "r2", "conversations", "im/sys/bob", b"x").await;
    assert_eq!(phone.puback().await.reason, PubAckReason::Success); // r1
    assert_eq!(phone.puback().await.reason, PubAckReason::NotAuthorized);
    let (error, _) = on_topic(&mut phone, "im/sys/alice/phone").await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "forbidden", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("im/sys/bob"),
        "{error}"
    );
    bob.call("conversations", json!({})).await;
    let leaked: Vec<Value> = bob.kept_notices();
    assert!(leaked.is_empty(), "bob got {leaked:?}");

    // A wildcard in a Response Topic is a protocol error (MQTT 5 section 3.3.2.3.5).
    ask_with(&phone, "r3", "conversations", "im/sys/alice/+", b"x").await;
    let ended = phone
        .try_take(Duration::from_secs(10), |_| false)
        .await
        .expect_err("the connection should end");
    assert!(ended.contains("ProtocolError"), "{ended}");
}

async fn answers_fit_the_askers_maximum_packet_size(backend: Backend) {
    let node = HistNode::start(backend);
    let mut bob = Peer::connect(&node, "bob", &[]).await;
    let sent: Vec<String> = (0..12).map(|i| format!("big-{i:02}")).collect();
    let body = "x".repeat(1500);
    for id in &sent {
        bob.dm("alice", id, &body).await;
        bob.ack(id).await;
    }
    // Pages of three or four such messages at most fit in 8 KiB.
    let mut small = Peer::connect_limited(node.mqtt, "alice", "alice:small", &[], 8192).await;

    let mut got = Vec::new();
    let mut before: Option<i64> = None;
    let mut pages = 0;
    loop {
        let page = small
            .history("dm:alice:bob", json!({"before_seq": before, "limit": 50}))
            .await;
        pages += 1;
        let messages = page["messages"].as_array().unwrap();
        assert!(!messages.is_empty(), "{page}");
        let mut these = ids(&page["messages"]);
        these.extend(got);
        got = these;
        before = messages[0]["seq"].as_i64();
        if page["more"] != true {
            break;
        }
        assert!(pages < 20, "history never ends");
    }
    assert_eq!(got, sent);
    assert!(pages >= 3, "{pages} pages of 8 KiB for 18 KiB of messages");

    let (all, _, pages) = small.sync_all(None, 500).await;
    assert_eq!(ids(&Value::Array(all)), sent);
    assert!(pages >= 3, "{pages} sync pages");

    // One message alone larger than the asker takes: answered anyway, with an error.
    bob.dm("alice", "huge", &"y".repeat(9000)).await;
    bob.ack("huge").await;
    let answer = small
        .request("history", json!({"conv": "dm:alice:bob", "limit": 1}))
        .await;
    assert_eq!(answer["error"]["code"], "too_large", "{answer}");
    // The same device still gets answers that fit.
    small.call("members", json!({"conv": "dm:alice:bob"})).await;
}

async fn conversations_and_members_carry_the_others_read_positions(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    for id in ["d1", "d2", "d3"] {
        bob.dm("alice", id, "hi").await;
        bob.ack(id).await;
    }
    alice
        .call("read", json!({"conv": "dm:alice:bob", "seq": 2}))
        .await;
    alice.grp("team", "g1", "to the team").await;
    alice.ack("g1").await;
    bob.call("read", json!({"conv": "grp:team", "seq": 1}))
        .await;

    // bob was away for alice's receipt: his list carries alice's position.
    let list = bob.call("conversations", json!({})).await;
    let dm = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conv"] == "dm:alice:bob")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(dm["reads"], json!({"alice": 2}), "{dm}");
    assert_eq!(dm["read_seq"], 3, "{dm}");
    let grp = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["conv"] == "grp:team")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(grp["reads"], json!({"alice": 1}), "{grp}");

    // `members`: everyone's position in one conversation.
    let members = bob.call("members", json!({"conv": "dm:alice:bob"})).await;
    assert_eq!(
        members,
        json!({"conv": "dm:alice:bob", "reads": {"alice": 2, "bob": 3}})
    );
    let members = alice.call("members", json!({"conv": "grp:team"})).await;
    assert_eq!(members["reads"], json!({"alice": 1, "bob": 1}), "{members}");

    // Only members may ask.
    let mut carol = Peer::connect(&node, "carol", &[]).await;
    assert_eq!(
        carol.refused("members", json!({"conv": "grp:team"})).await,
        "forbidden"
    );
    assert_eq!(
        carol
            .refused("members", json!({"conv": "dm:alice:bob"}))
            .await,
        "forbidden"
    );
    assert_eq!(carol.refused("members", json!({})).await, "invalid_request");
}

/// A `roost history-worker` (the service over MQTT) answers the same way: on the device
/// topic, or on the Response Topic with the Correlation Data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_worker_answers_the_asking_device_too() {
    let node = HistNode::start_with(Backend::Postgres, "service = false", "");
    let mut phone = Peer::device(&node, "alice", "phone", &[]).await;
    let mut laptop = Peer::device(&node, "alice", "laptop", &[]).await;
    let _worker = Worker::start(&node, "w1");
    send_until_acked(&mut phone, "bob", "probe").await;

    phone.call("conversations", json!({})).await;
    laptop.call("conversations", json!({})).await;
    let seen = laptop.kept_notices();
    assert!(
        !seen.iter().any(|n| n["type"] == "result"),
        "the laptop got another device's answer: {seen:?}"
    );

    phone.subscribe("im/sys/alice/phone/rpc").await;
    ask_with(
        &phone,
        "w1",
        "conversations",
        "im/sys/alice/phone/rpc",
        b"corr-w",
    )
    .await;
    let (answer, correlation) = on_topic(&mut phone, "im/sys/alice/phone/rpc").await;
    assert_eq!(answer["req"], "w1", "{answer}");
    assert_eq!(correlation.as_deref(), Some(&b"corr-w"[..]));
}

/// The same with a third-party client: paho-mqtt v5 on two devices, a Response Topic with
/// Correlation Data, and a foreign Response Topic refused.
#[test]
fn paho_v5_answers_reach_the_asking_device() {
    let node = HistNode::start(Backend::Sqlite);
    let port = node.mqtt.port().to_string();
    let token = token_with("alice", &[], Role::User, Duration::from_secs(3600));
    paho("answers_v5.py", &["127.0.0.1", &port, &token]);
}
