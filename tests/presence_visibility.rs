//! Presence visibility (docs/protocol.md section 3, "Presence"; `[presence] visibility`):
//! by default a user sees the presence of the users who share a group or a conversation
//! with them, and nobody else's, whether retained or live, through `im/presence/+`, a
//! filter naming the user, or a root wildcard. `visibility = "all"` shows everyone's.
//! With rumqttc (MQTT 5) and paho (MQTT 3.1.1).
mod common;

use common::client::{options, options5, Client, Mqtt3};
use common::history::Peer;
use common::{token_with, Node};
use roost_auth::Role;
use rumqttc::v5::mqttbytes::v5::Packet;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// A node on the default visibility (an empty `[presence]` section: see tests/common).
fn node_with_default_visibility() -> Node {
    Node::builder().toml("[presence]").start()
}

/// Publishes a status of `peer`'s own as a marker and returns, in arrival order, the
/// presence messages `peer` got before it: (user, status). Whatever the node delivered
/// before the marker was published arrives before it.
async fn presence_until_marker(peer: &mut Peer, marker: &str) -> Vec<(String, String)> {
    let own = format!("im/presence/{}", peer.user);
    let body = json!({"status": "away", "text": marker}).to_string();
    peer.publish(&own, body).await;
    let mut got = Vec::new();
    loop {
        let p = peer
            .expect(
                "presence",
                |p| matches!(p, Packet::Publish(p) if p.topic.starts_with(b"im/presence/")),
            )
            .await;
        let Packet::Publish(p) = p else {
            unreachable!()
        };
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let status: Value = serde_json::from_slice(&p.payload).expect("presence is JSON");
        let user = topic.trim_start_matches("im/presence/").to_owned();
        if user == peer.user && status["text"] == marker {
            return got;
        }
        got.push((
            user,
            status["status"].as_str().unwrap_or_default().to_owned(),
        ));
    }
}

/// Returns once `watcher` has seen every (user, status) of `statuses`, in any order.
async fn watcher_waits_for<const N: usize>(
    watcher: &mut Client<Mqtt3>,
    statuses: [(&str, &str); N],
) {
    let mut pending = BTreeSet::from(statuses);
    while !pending.is_empty() {
        let (topic, payload) = watcher.next_publish().await;
        let status: Value = serde_json::from_str(&payload).unwrap();
        let user = topic.trim_start_matches("im/presence/");
        let status = status["status"].as_str().unwrap_or_default();
        pending.retain(|(u, s)| !(*u == user && *s == status));
    }
}

/// A `service` client subscribed to everyone's presence (services see all of it).
async fn service_watcher(node: &Node) -> Client<Mqtt3> {
    let token = token_with("watcher", &[], Role::Service, Duration::from_secs(3600));
    let mut watcher = Client::connect(options(node, "watcher", "watcher", &token))
        .await
        .expect("service sign-in");
    assert_eq!(watcher.subscribe("im/presence/+").await, 1);
    watcher
}

fn users(got: &[(String, String)]) -> BTreeSet<String> {
    got.iter().map(|(u, _)| u.clone()).collect()
}

#[tokio::test]
async fn groups_show_group_mates_and_conversation_partners_only() {
    let node = node_with_default_visibility();
    let bob = Peer::connect(&node, "bob", &["class-a"]).await;
    let carol = Peer::connect(&node, "carol", &["class-b"]).await;
    // dave shares no group with alice, but a conversation: his DM to her, stored.
    let mut dave = Peer::connect(&node, "dave", &[]).await;
    dave.dm("alice", "m-1", "hello alice").await;
    dave.ack("m-1").await;

    let mut alice = Peer::connect(&node, "alice", &["class-a"]).await;
    alice.subscribe("im/presence/+").await;
    // Retained: her own, her class mate's, her correspondent's; not carol's.
    let retained = presence_until_marker(&mut alice, "m1").await;
    assert_eq!(
        users(&retained),
        BTreeSet::from(["alice".into(), "bob".into(), "dave".into()]),
        "{retained:?}"
    );

    // A filter naming carol is granted, and stays silent.
    alice.subscribe("im/presence/carol").await;

    // Live: a class mate signing in is seen at once; carol and a stranger leaving or
    // arriving are not; bob leaving is. A service (which sees everyone) tells when the
    // node has published all of it.
    let mut watcher = service_watcher(&node).await;
    let erin = Peer::connect(&node, "erin", &["class-a"]).await;
    let frank = Peer::connect(&node, "frank", &["class-b"]).await;
    for peer in [&carol, &bob, &frank] {
        peer.mqtt.client.disconnect().await.unwrap();
    }
    let published = [
        ("erin", "online"),
        ("frank", "online"),
        ("carol", "offline"),
        ("bob", "offline"),
        ("frank", "offline"),
    ];
    watcher_waits_for(&mut watcher, published).await;
    let live = presence_until_marker(&mut alice, "m2").await;
    assert_eq!(
        live,
        [
            ("erin".to_owned(), "online".to_owned()),
            ("bob".to_owned(), "offline".to_owned())
        ],
        "{live:?}"
    );
    drop(erin);
}

/// A persistent session away while presence changed gets, when it resumes, what it may
/// see of what queued up for it: the class mate, not the stranger.
#[tokio::test]
async fn a_resumed_session_gets_only_the_presence_it_sees() {
    let node = node_with_default_visibility();
    let token = token_with("alice", &["class-a"], Role::User, Duration::from_secs(3600));
    let persistent = || {
        let mut o = options5(&node, "alice:phone", "alice", &token);
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(3600));
        o
    };
    let mut watcher = service_watcher(&node).await;
    let mut alice = Client::connect(persistent()).await.expect("alice");
    alice.subscribe("im/presence/+").await;
    alice.client.disconnect().await.unwrap();
    // Her `offline` is published after the router let her connection go: from then on
    // presence queues up for her session instead of going to the closing connection.
    watcher_waits_for(&mut watcher, [("alice", "offline")]).await;
    let _bob = Peer::connect(&node, "bob", &["class-a"]).await;
    let _carol = Peer::connect(&node, "carol", &["class-b"]).await;
    watcher_waits_for(&mut watcher, [("bob", "online"), ("carol", "online")]).await;

    let mut alice = Client::connect(persistent()).await.expect("alice again");
    assert!(alice.connack.session_present, "the session resumed");
    let marker = json!({"status": "away", "text": "m1"}).to_string();
    alice.publish("im/presence/alice", &marker).await;
    let mut seen = BTreeSet::new();
    loop {
        let p = alice.next_publish().await;
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let status: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
        if topic == "im/presence/alice" && status["text"] == "m1" {
            break;
        }
        seen.insert(topic.trim_start_matches("im/presence/").to_owned());
    }
    assert!(seen.contains("bob"), "{seen:?}");
    assert!(!seen.contains("carol"), "{seen:?}");
}

/// Under `visibility = "all"` (the behaviour before issue 10), everyone's presence shows.
#[tokio::test]
async fn all_shows_everyone() {
    let node = Node::builder()
        .toml("[presence]\nvisibility = \"all\"")
        .start();
    let _carol = Peer::connect(&node, "carol", &["class-b"]).await;
    let mut alice = Peer::connect(&node, "alice", &["class-a"]).await;
    alice.subscribe("im/presence/+").await;
    let retained = presence_until_marker(&mut alice, "m1").await;
    assert_eq!(
        users(&retained),
        BTreeSet::from(["alice".into(), "carol".into()]),
        "{retained:?}"
    );
}

/// A third-party MQTT 3.1.1 client (paho) on the default: `im/presence/+` shows the class
/// mate and not the stranger.
#[test]
fn paho_sees_only_group_mates() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let node = node_with_default_visibility();
    let _peers = runtime.block_on(async {
        (
            Peer::connect(&node, "bob", &["class-a"]).await,
            Peer::connect(&node, "carol", &["class-b"]).await,
        )
    });
    let alice = token_with("alice", &["class-a"], Role::User, Duration::from_secs(3600));
    let port = node.mqtt.port().to_string();
    common::tools::paho(
        "presence_visibility.py",
        &["127.0.0.1", &port, &alice, "--sees", "alice,bob"],
    );
}
