//! The rules that keep users out of what is not theirs beyond the topic ACL (issue 9):
//! the node's own router links and anonymous clients live outside the client-id space, the
//! history service's shared groups are unreachable, retain is refused on chat topics and
//! bounded per user elsewhere, a resumed session loses what its new token no longer allows,
//! and a will on a chat topic passes the chat payload check (PROTOCOL.md sections 1 and 3).
mod common;

use common::client::{options, options5, Client, Mqtt3, Mqtt5};
use common::raw::{Connect, Raw};
use common::{token, token_with, Node};
use roost_auth::Role;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode as V5Code, LastWill as LastWill5, Packet as Packet5, PubAckReason,
    SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{ConnectReturnCode as V3Code, LastWill, QoS};
use std::time::Duration;

fn chat(id: &str, body: &str) -> String {
    format!(r#"{{"id":"{id}","kind":"text","body":"{body}"}}"#)
}

async fn wait_presence(observer: &mut Client<Mqtt3>, user: &str, status: &str) {
    let topic = format!("im/presence/{user}");
    loop {
        let (t, payload) = observer.next_publish().await;
        if t == topic && payload.contains(&format!("\"{status}\"")) {
            return;
        }
    }
}

/// The next `error` notice on a v3.1.1 client subscribed to its `im/sys/{me}`.
async fn next_error(client: &mut Client<Mqtt3>) -> String {
    loop {
        let (topic, payload) = client.next_publish().await;
        if topic.starts_with("im/sys/") && payload.contains("\"error\"") {
            return payload;
        }
    }
}

/// A v5 QoS 1 publish and the reason of its PUBACK.
async fn publish5(
    client: &mut Client<Mqtt5>,
    topic: &str,
    payload: &[u8],
    retain: bool,
) -> PubAckReason {
    client
        .client
        .publish(topic, QoS5::AtLeastOnce, retain, payload.to_vec())
        .await
        .unwrap();
    match client.next_where(|p| matches!(p, Packet5::PubAck(_))).await {
        Packet5::PubAck(ack) => ack.reason,
        _ => unreachable!(),
    }
}

// ---- reserved identities --------------------------------------------------------------------

/// Users named like the node's own links (`roost-system` for presence, notices and wills,
/// `roost-history` for the history service) are just users: signing in as them takes
/// nothing over. Presence still flows and DMs are still stored and acked.
#[tokio::test]
async fn users_named_like_internal_links_take_nothing_over() {
    let node = Node::start();
    let _system = Client::<Mqtt3>::user(&node, "roost-system").await;
    let _history = Client::<Mqtt3>::user(&node, "roost-history").await;

    let mut alice = Client::<Mqtt3>::user(&node, "alice").await;
    assert_eq!(alice.subscribe("im/presence/bob").await, 1);
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);
    let _bob = Client::<Mqtt3>::user(&node, "bob").await;
    wait_presence(&mut alice, "bob", "online").await;

    alice
        .publish("im/dm/bob/alice", &chat("r1", "stored?"))
        .await;
    loop {
        let (topic, payload) = alice.next_publish().await;
        if topic == "im/sys/alice" && payload.contains("\"ack\"") {
            assert!(payload.contains("r1"), "ack of another message: {payload}");
            break;
        }
    }
}

// ---- anonymous clients ----------------------------------------------------------------------

/// With `allow_anonymous` next to tokens, an anonymous client whose client id is a token
/// user's (`alice`) gets a session of its own: it does not resume alice's session, does
/// not kick her connection and does not get her DMs.
#[tokio::test]
async fn anonymous_client_never_shares_a_token_users_session() {
    let node = Node::builder()
        .toml(&format!(
            "[auth]\njwt_secret = \"{}\"\nallow_anonymous = true\n",
            common::SECRET
        ))
        .start();
    let mut o = options(&node, "alice", "alice", &token("alice"));
    o.set_clean_session(false);
    let mut alice = Client::<Mqtt3>::connect(o).await.unwrap();
    let present = alice.connack.session_present;
    assert!(!present);
    assert_eq!(alice.subscribe("im/dm/alice/+").await, 1);
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    bob.publish_acked("im/dm/alice/bob", &chat("b1", "first"))
        .await;
    let (_, first) = alice.next_publish().await;
    assert!(first.contains("b1"), "got {first}");

    let mut anon = rumqttc::MqttOptions::new("alice", node.mqtt.ip().to_string(), node.mqtt.port());
    anon.set_clean_session(false);
    let mut anon = Client::<Mqtt3>::connect(anon).await.unwrap();
    let present = anon.connack.session_present;
    assert!(!present, "the anonymous client resumed alice's session");
    assert_eq!(anon.subscribe("im/presence/+").await, 1);

    // Alice is still connected and still the one who gets her DMs.
    bob.publish_acked("im/dm/alice/bob", &chat("b2", "second"))
        .await;
    let (topic, payload) = alice.next_publish().await;
    assert_eq!(topic, "im/dm/alice/bob");
    assert!(payload.contains("b2"), "got {payload}");
    // The anonymous client's next delivery is presence, not alice's DM.
    let (topic, payload) = anon.next_publish().await;
    assert!(
        topic.starts_with("im/presence/"),
        "anonymous got {topic}: {payload}"
    );
}

// ---- internal shared groups -----------------------------------------------------------------

/// `$share/roost-...` groups belong to the node's services: a user refused with SUBACK 0x87
/// (v5) and 0x80 (v3.1.1) and an error notice, even where the ACL allows the filter; other
/// group names work as before.
#[tokio::test]
async fn internal_shared_groups_are_refused_to_users() {
    let node = Node::builder()
        .toml("[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"devices/{user}/#\"\n")
        .start();
    let mut alice = Client::<Mqtt5>::user(&node, "alice").await;
    let codes = alice
        .subscribe_many(&[
            "$share/roost-history-dm/devices/alice/#",
            "$share/roost-anything/devices/alice/x",
            "$share/mine/devices/alice/#",
        ])
        .await;
    assert_eq!(
        codes,
        vec![
            SubscribeReasonCode::NotAuthorized,
            SubscribeReasonCode::NotAuthorized,
            SubscribeReasonCode::Success(QoS5::AtLeastOnce),
        ]
    );

    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/sys/bob").await, 1);
    assert_eq!(
        bob.subscribe("$share/roost-history-dm/devices/bob/#").await,
        0x80
    );
    let notice = next_error(&mut bob).await;
    assert!(notice.contains("forbidden"), "{notice}");
}

// ---- retain ---------------------------------------------------------------------------------

/// Retain is refused on chat, signal, request and notice topics: v5 PUBACK 0x83 with a
/// `retain_not_allowed` notice, and nothing is stored for later subscribers. Presence stays
/// retained.
#[tokio::test]
async fn retain_is_refused_on_chat_topics() {
    let node = Node::start();
    let mut alice = Client::<Mqtt5>::user(&node, "alice").await;
    assert!(matches!(
        alice.subscribe("im/sys/alice").await,
        SubscribeReasonCode::Success(_)
    ));
    let typing = r#"{"type":"typing","state":"start"}"#.to_owned();
    for (topic, payload) in [
        ("im/dm/bob/alice", chat("k1", "kept?")),
        ("im/sig/dm/bob/alice", typing),
        ("im/req/alice", chat("k1", "kept?")),
    ] {
        let reason = publish5(&mut alice, topic, payload.as_bytes(), true).await;
        assert_eq!(reason, PubAckReason::ImplementationSpecificError, "{topic}");
        let notice = alice.next_publish().await;
        let notice = String::from_utf8_lossy(&notice.payload).into_owned();
        assert!(notice.contains("retain_not_allowed"), "{notice}");
    }
    let own = br#"{"status":"away"}"#;
    assert_eq!(
        publish5(&mut alice, "im/presence/alice", own, true).await,
        PubAckReason::Success
    );

    // A later subscriber gets no retained DM: the first thing it sees is a live one.
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    alice.publish("im/dm/bob/alice", &chat("live", "now")).await;
    let (_, payload) = bob.next_publish().await;
    assert!(payload.contains("live"), "bob got {payload}");

    // v3.1.1: acked (it has no way to say no), dropped, and told.
    let mut carol = Client::<Mqtt3>::user(&node, "carol").await;
    assert_eq!(carol.subscribe("im/sys/carol").await, 1);
    carol
        .client
        .publish("im/dm/bob/carol", QoS::AtLeastOnce, true, chat("c1", "x"))
        .await
        .unwrap();
    let notice = next_error(&mut carol).await;
    assert!(notice.contains("retain_not_allowed"), "{notice}");
}

/// Outside `im/`, each user keeps at most `limits.max_retained_per_user` retained topics:
/// one more is refused (v5 PUBACK 0x97); replacing or deleting one (empty payload) always
/// works and frees its place.
#[tokio::test]
async fn retained_messages_are_bounded_per_user() {
    let node = Node::builder()
        .toml("[limits]\nmax_retained_per_user = 2\n")
        .toml("[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"devices/{user}/#\"\n")
        .start();
    let mut alice = Client::<Mqtt5>::user(&node, "alice").await;
    assert_eq!(
        publish5(&mut alice, "devices/alice/1", b"a", true).await,
        PubAckReason::Success
    );
    assert_eq!(
        publish5(&mut alice, "devices/alice/2", b"b", true).await,
        PubAckReason::Success
    );
    assert_eq!(
        publish5(&mut alice, "devices/alice/3", b"c", true).await,
        PubAckReason::QuotaExceeded
    );
    // Not retained: not counted.
    assert_eq!(
        publish5(&mut alice, "devices/alice/3", b"c", false).await,
        PubAckReason::Success
    );
    assert_eq!(
        publish5(&mut alice, "devices/alice/1", b"a2", true).await,
        PubAckReason::Success
    );
    assert_eq!(
        publish5(&mut alice, "devices/alice/2", b"", true).await,
        PubAckReason::Success
    );
    assert_eq!(
        publish5(&mut alice, "devices/alice/3", b"c", true).await,
        PubAckReason::Success
    );

    // What is stored is what was accepted.
    let mut reader = Client::<Mqtt5>::user(&node, "alice").await;
    assert!(matches!(
        reader.subscribe("devices/alice/+").await,
        SubscribeReasonCode::Success(_)
    ));
    let mut got = Vec::new();
    for _ in 0..2 {
        let p = reader.next_publish().await;
        got.push(format!(
            "{}={}",
            String::from_utf8_lossy(&p.topic),
            String::from_utf8_lossy(&p.payload)
        ));
    }
    got.sort();
    assert_eq!(got, ["devices/alice/1=a2", "devices/alice/3=c"]);

    let metrics = common::http::http_get(node.http, "/metrics", None, Duration::from_secs(10)).body;
    assert!(
        metrics.contains("roost_limit_refusals_total{limit=\"retained\"} 1"),
        "{metrics}"
    );
}

// ---- resumed sessions -----------------------------------------------------------------------

/// A persistent session subscribed to a group, resumed with a token without that group,
/// gets none of the group's messages: neither those queued while it was away nor new ones.
#[tokio::test]
async fn resumed_session_loses_a_group_the_new_token_lacks() {
    let node = Node::start();
    let mut alice = Client::<Mqtt3>::user(&node, "alice").await;
    assert_eq!(alice.subscribe("im/presence/bob").await, 1);
    let carol_token = token_with("carol", &["g"], Role::User, Duration::from_secs(3600));
    let mut carol = Client::connect(options(&node, "carol", "carol", &carol_token))
        .await
        .unwrap();

    let with_g = token_with("bob", &["g"], Role::User, Duration::from_secs(3600));
    let mut o = options(&node, "bob:phone", "bob", &with_g);
    o.set_clean_session(false);
    let mut bob = Client::<Mqtt3>::connect(o).await.unwrap();
    assert_eq!(bob.subscribe("im/grp/g/+").await, 1);
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    carol
        .publish_acked("im/grp/g/carol", &chat("g0", "member"))
        .await;
    let (topic, _) = bob.next_publish().await;
    assert_eq!(topic, "im/grp/g/carol");
    bob.client.disconnect().await.unwrap();
    wait_presence(&mut alice, "bob", "offline").await;

    carol
        .publish_acked("im/grp/g/carol", &chat("g1", "queued"))
        .await;

    let without_g = token("bob");
    let mut o = options(&node, "bob:phone", "bob", &without_g);
    o.set_clean_session(false);
    let mut bob = Client::<Mqtt3>::connect(o).await.unwrap();
    let present = bob.connack.session_present;
    assert!(present);
    carol
        .publish_acked("im/grp/g/carol", &chat("g2", "live"))
        .await;
    alice
        .publish_acked("im/dm/bob/alice", &chat("marker", "dm"))
        .await;
    let (topic, payload) = bob.next_publish().await;
    assert_eq!(topic, "im/dm/bob/alice", "bob got {payload}");
}

// ---- wills ----------------------------------------------------------------------------------

/// A will on a stored chat topic must be a chat message: anything else is refused at CONNECT
/// (v5 0x99, v3.1.1 5); a valid one is accepted. A retained will on a chat topic is refused
/// (v5 0x83).
#[tokio::test]
async fn will_on_a_chat_topic_passes_the_payload_check() {
    let node = Node::start();
    let alice_token = token("alice");

    let mut o = options5(&node, "alice", "alice", &alice_token);
    o.set_last_will(LastWill5::new(
        "im/dm/bob/alice",
        "not json",
        QoS5::AtMostOnce,
        false,
        None,
    ));
    assert_eq!(
        Client::<Mqtt5>::connect(o).await.err(),
        Some(V5Code::PayloadFormatInvalid)
    );

    let mut o = options5(&node, "alice", "alice", &alice_token);
    let will = chat("w1", "bye");
    o.set_last_will(LastWill5::new(
        "im/dm/bob/alice",
        will.clone(),
        QoS5::AtMostOnce,
        true,
        None,
    ));
    assert_eq!(
        Client::<Mqtt5>::connect(o).await.err(),
        Some(V5Code::ImplementationSpecificError)
    );

    let mut o = options(&node, "alice", "alice", &alice_token);
    o.set_last_will(LastWill::new(
        "im/dm/bob/alice",
        "not json",
        QoS::AtMostOnce,
        false,
    ));
    assert_eq!(Client::connect(o).await.err(), Some(V3Code::NotAuthorized));

    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let mut connect = Connect::v311("alice", &alice_token);
    connect.will = Some(("im/dm/bob/alice".into(), will.into_bytes()));
    let (raw, ack) = Raw::connect(&node, &connect).await;
    assert_eq!(ack.body, [0, 0]);
    // Gone without a DISCONNECT: the will goes out.
    drop(raw);
    let (_, payload) = bob.next_publish().await;
    assert!(payload.contains("w1"), "got {payload}");
}
