//! Presence (docs/protocol.md section 3, `im/presence/{user}`): the server keeps a retained
//! `{"status":"online"|"offline","ts":...}` per user that changes only when the user's first
//! device connects and when the last one leaves, however it leaves.
mod common;

use common::client::{options, Client, Mqtt3, WAIT};
use common::raw::{Connect, Raw};
use common::{token, Node};
use rumqttc::Packet;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

const TOPIC: &str = "im/presence/alice";

/// A client subscribed to alice's presence.
async fn observer(node: &Node, name: &str) -> Client<Mqtt3> {
    let mut c = Client::<Mqtt3>::user(node, name).await;
    assert_eq!(c.subscribe(TOPIC).await, 1);
    c
}

/// The next message on alice's presence topic: (payload as JSON, retain flag).
async fn next_status(c: &mut Client<Mqtt3>) -> (Value, bool) {
    match c
        .next_where(|p| matches!(p, Packet::Publish(p) if p.topic == TOPIC))
        .await
    {
        Packet::Publish(p) => (
            serde_json::from_slice(&p.payload).expect("presence is JSON"),
            p.retain,
        ),
        _ => unreachable!(),
    }
}

/// Asserts a server status: `status` and a `ts` in unix milliseconds close to now.
fn assert_status(got: &Value, status: &str) {
    assert_eq!(got["status"], status, "{got}");
    let ts = got["ts"]
        .as_u64()
        .unwrap_or_else(|| panic!("no ts in {got}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(ts.abs_diff(now) < 60_000, "ts {ts} is not now ({now})");
}

/// Connects one of alice's devices.
async fn device(node: &Node, device: &str) -> Client<Mqtt3> {
    let client_id = format!("alice:{device}");
    Client::connect(options(node, &client_id, "alice", &token("alice")))
        .await
        .expect("sign-in refused")
}

/// Waits (bounded) until the node logs that `client_id`'s connection ended.
async fn wait_closed_in_log(node: &Node, client_id: &str) {
    let who = format!("client_id=\"{client_id}\"");
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let log = node.log_text();
        if log
            .lines()
            .any(|l| l.contains(&who) && (l.contains(" disconnected") || l.contains(" closed")))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the node never logged the end of {client_id}");
}

/// A status only alice can publish (her own topic), used as a marker: whatever the server
/// publishes on the topic before it arrives, arrives before it.
async fn marker(from: &Client<Mqtt3>, name: &str) -> Value {
    let body = serde_json::json!({ "status": "away", "text": name });
    from.publish(TOPIC, &body.to_string()).await;
    body
}

/// §3: the first device to connect makes the user "online", retained: a subscriber that
/// comes later gets it, flagged retained.
#[tokio::test]
async fn first_device_publishes_retained_online() {
    let node = Node::start();
    let mut early = observer(&node, "bob").await;
    let _phone = device(&node, "phone").await;
    let (online, _) = next_status(&mut early).await;
    assert_status(&online, "online");

    let mut late = observer(&node, "carol").await;
    let (current, retained) = next_status(&mut late).await;
    assert!(retained, "a later subscriber gets the retained status");
    assert_eq!(current, online);
}

/// §3: a second device changes nothing; only when the last device leaves (a clean
/// DISCONNECT) does the user go "offline", and that is what a later subscriber gets.
#[tokio::test]
async fn offline_only_when_last_device_disconnects() {
    let node = Node::start();
    let mut bob = observer(&node, "bob").await;
    let phone = device(&node, "phone").await;
    let (online, _) = next_status(&mut bob).await;
    assert_status(&online, "online");

    // Second device: once it has had a SUBACK, the node is done signing it in.
    let mut laptop = device(&node, "laptop").await;
    assert_eq!(laptop.subscribe("im/sys/alice").await, 1);
    let sent = marker(&laptop, "marker-1").await;
    assert_eq!(
        next_status(&mut bob).await.0,
        sent,
        "a second device changed presence"
    );
    let (current, _) = next_status(&mut observer(&node, "carol").await).await;
    assert_eq!(
        current, online,
        "the retained status is still the first online"
    );

    // First device leaves: alice is still online.
    phone.client.disconnect().await.unwrap();
    wait_closed_in_log(&node, "alice:phone").await;
    let sent = marker(&laptop, "marker-2").await;
    assert_eq!(
        next_status(&mut bob).await.0,
        sent,
        "offline while a device is on"
    );

    // Last device leaves: offline.
    laptop.client.disconnect().await.unwrap();
    let (offline, _) = next_status(&mut bob).await;
    assert_status(&offline, "offline");
    assert!(offline["ts"].as_u64() >= online["ts"].as_u64());

    let (current, retained) = next_status(&mut observer(&node, "dave").await).await;
    assert!(retained);
    assert_eq!(current, offline, "a later subscriber gets offline");
}

/// §3 "however it leaves": a device that goes silent is closed at its keepalive timeout,
/// and as it was the last one the user goes offline then, not before.
#[tokio::test]
async fn offline_when_last_device_times_out() {
    let node = Node::start();
    let mut bob = observer(&node, "bob").await;
    let mut connect = Connect::v311("alice:phone", &token("alice"));
    connect.keep_alive = 1;
    let since = Instant::now();
    let (_silent, _) = Raw::connect(&node, &connect).await;
    assert_status(&next_status(&mut bob).await.0, "online");

    let (offline, _) = next_status(&mut bob).await;
    assert_status(&offline, "offline");
    assert!(
        since.elapsed() >= Duration::from_secs(1),
        "offline after {:?}, before the keepalive ran out",
        since.elapsed()
    );
}

/// §3 "however it leaves": a device whose connection just drops (no DISCONNECT) makes the
/// user offline when it is the last one.
#[tokio::test]
async fn offline_when_last_device_connection_drops() {
    let node = Node::start();
    let mut bob = observer(&node, "bob").await;
    let (raw, _) = Raw::connect(&node, &Connect::v311("alice", &token("alice"))).await;
    assert_status(&next_status(&mut bob).await.0, "online");
    drop(raw);
    assert_status(&next_status(&mut bob).await.0, "offline");
}

/// §3: the status a user publishes for themselves is checked: `status` from the documented
/// set, optional `text` (bounded) and `ts`, nothing else. A bad one is refused (v5 PUBACK
/// 0x99, an `invalid_payload` notice) and reaches no reader; a good one reaches them.
#[tokio::test]
async fn own_status_is_validated() {
    use common::client::{options5, Mqtt5};
    use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, PubAckReason};
    use rumqttc::v5::mqttbytes::QoS as QoS5;

    let node = Node::start();
    let mut carol = observer(&node, "carol").await;
    let mut alice = Client::<Mqtt5>::connect(options5(&node, "alice", "alice", &token("alice")))
        .await
        .expect("sign-in refused");
    alice.subscribe("im/sys/alice").await;
    assert_status(&next_status(&mut carol).await.0, "online");

    let long = format!(r#"{{"status":"away","text":"{}"}}"#, "x".repeat(141));
    for bad in [
        r#"{"status":"sleeping"}"#,
        r#"{"status":"away","avatar":"https://x"}"#,
        "away",
        long.as_str(),
    ] {
        alice
            .client
            .publish(TOPIC, QoS5::AtLeastOnce, false, bad.as_bytes().to_vec())
            .await
            .unwrap();
        match alice.next_where(|p| matches!(p, Packet5::PubAck(_))).await {
            Packet5::PubAck(ack) => {
                assert_eq!(ack.reason, PubAckReason::PayloadFormatInvalid, "{bad}")
            }
            _ => unreachable!(),
        }
        match alice.next_where(|p| matches!(p, Packet5::Publish(_))).await {
            Packet5::Publish(p) => {
                let notice: Value = serde_json::from_slice(&p.payload).unwrap();
                assert_eq!(p.topic.as_ref(), b"im/sys/alice");
                assert_eq!(notice["code"], "invalid_payload", "{bad}: {notice}");
            }
            _ => unreachable!(),
        }
    }
    let good = r#"{"status":"busy","text":"in a meeting","ts":1700000000000}"#;
    alice
        .client
        .publish(TOPIC, QoS5::AtLeastOnce, false, good.as_bytes().to_vec())
        .await
        .unwrap();
    // The first status carol sees after "online" is the good one: no bad one came before.
    let (got, _) = next_status(&mut carol).await;
    assert_eq!(got["status"], "busy", "{got}");
    assert_eq!(got["text"], "in a meeting", "{got}");
}

/// The same refusal for a third-party MQTT 5 client (paho).
#[test]
fn paho_v5_own_status_is_validated() {
    let node = Node::start();
    let port = node.mqtt.port().to_string();
    common::tools::paho("presence_v5.py", &["127.0.0.1", &port, &token("alice")]);
}
