//! Connecting to a node (docs/protocol.md section 1): who gets in, the exact CONNACK code of
//! every refusal in MQTT 3.1.1 and 5, and what the node does for a connected client over its
//! lifetime (token expiry, keepalive, will, sessions, QoS, retained messages, limits).
mod common;

use common::client::{options, options5, user_properties, Client, Mqtt3, Mqtt5, WAIT};
use common::raw::{self, Connect, Raw, V5};
use common::{token, token_from_claims, Node, SECRET};
use roost_auth::{mint_hs256, Claims, Role};
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode as V5Code, DisconnectReasonCode, LastWill as LastWill5, Packet as Packet5,
    PublishProperties,
};
use rumqttc::v5::{ConnectionError as ConnectionError5, StateError};
use rumqttc::{ConnectReturnCode as V3Code, LastWill, Packet, QoS};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

const ISSUER: &str = "https://id.example";
const AUDIENCE: &str = "roost";

// ---- helpers ------------------------------------------------------------------------------

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A node that checks `iss` and `aud`.
fn node_with_issuer() -> Node {
    Node::builder()
        .toml(&format!(
            "[auth]\njwt_secret = \"{SECRET}\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n"
        ))
        .start()
}

/// Claims `node_with_issuer` accepts.
fn good_claims(user: &str) -> Claims {
    let mut claims = Claims::new(user, Vec::new(), Role::User, Duration::from_secs(3600));
    claims.iss = Some(ISSUER.to_owned());
    claims.aud = Some(AUDIENCE.to_owned());
    claims
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((acc >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

/// A token with header `header` and `claims`, and a signature that is not one.
fn token_with_header(header: &str, claims: &Claims, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        base64url(header.as_bytes()),
        base64url(&serde_json::to_vec(claims).unwrap())
    )
}

/// Every token the node must refuse as "bad token", with what is wrong with it. `None` is no
/// password at all.
fn bad_tokens(user: &str) -> Vec<(&'static str, Option<String>)> {
    let now = now_secs();
    let with = |change: &dyn Fn(&mut Claims)| {
        let mut claims = good_claims(user);
        change(&mut claims);
        Some(token_from_claims(&claims))
    };
    vec![
        (
            "bad signature",
            Some(mint_hs256("some-other-secret-0123456789abcdef", &good_claims(user)).unwrap()),
        ),
        // Beyond the node's clock-skew leeway.
        (
            "expired",
            with(&|c| {
                c.iat = Some(now - 120);
                c.exp = now - 60;
            }),
        ),
        ("not yet valid", with(&|c| c.nbf = Some(now + 3600))),
        (
            "wrong issuer",
            with(&|c| c.iss = Some("https://evil.example".into())),
        ),
        ("no issuer", with(&|c| c.iss = None)),
        ("wrong audience", with(&|c| c.aud = Some("other".into()))),
        ("no audience", with(&|c| c.aud = None)),
        (
            "alg none",
            Some(token_with_header(
                r#"{"alg":"none","typ":"JWT"}"#,
                &good_claims(user),
                "",
            )),
        ),
        (
            "alg RS256, not configured",
            Some(token_with_header(
                r#"{"alg":"RS256","typ":"JWT"}"#,
                &good_claims(user),
                "c2lnbmF0dXJl",
            )),
        ),
        ("garbage", Some("not-a-jwt".to_owned())),
        ("no password", None),
    ]
}

/// v3.1.1 options for user `user` (also the client id) with an optional password (`None`:
/// no credentials at all).
fn v3_options(node: &Node, user: &str, password: Option<&str>) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(user, node.mqtt.ip().to_string(), node.mqtt.port());
    if let Some(password) = password {
        o.set_credentials(user, password);
    }
    o
}

/// The same for MQTT 5.
fn v5_options(node: &Node, user: &str, password: Option<&str>) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(user, node.mqtt.ip().to_string(), node.mqtt.port());
    if let Some(password) = password {
        o.set_credentials(user, password);
    }
    o
}

/// The next PUBLISH a v3.1.1 client receives, whole.
async fn next_publish3(c: &mut Client<Mqtt3>) -> rumqttc::Publish {
    match c.next_where(|p| matches!(p, Packet::Publish(_))).await {
        Packet::Publish(p) => p,
        _ => unreachable!(),
    }
}

/// Payloads of the PUBLISHes `c` receives up to and including the first containing `marker`.
async fn payloads_until(c: &mut Client<Mqtt3>, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let (_, payload) = c.next_publish().await;
        let done = payload.contains(marker);
        seen.push(payload);
        if done {
            return seen;
        }
    }
}

/// Waits until `observer` (subscribed to `im/presence/{user}`) sees `user` go offline: by
/// then the node has finished with the user's connection.
async fn wait_offline(observer: &mut Client<Mqtt3>, user: &str) {
    let topic = format!("im/presence/{user}");
    loop {
        let (t, payload) = observer.next_publish().await;
        if t == topic && payload.contains("\"offline\"") {
            return;
        }
    }
}

fn chat(id: &str, body: &str) -> String {
    format!(r#"{{"id":"{id}","kind":"text","body":"{body}"}}"#)
}

// ---- refusals -----------------------------------------------------------------------------

/// §1 refusals, v3.1.1: a bad signature, an expired or not-yet-valid token, a wrong or
/// missing iss/aud, alg none or not configured, garbage, and no password all get CONNACK 4.
#[tokio::test]
async fn bad_tokens_are_refused_with_code_4_v311() {
    let node = node_with_issuer();
    // A password that is not a JWT is checked against the account store (issue 13): let it
    // be reachable, or the answer is "server unavailable".
    node.wait_for_log(&["history database ready"]).await;
    for (why, password) in bad_tokens("alice") {
        let refused = Client::connect(v3_options(&node, "alice", password.as_deref())).await;
        assert_eq!(
            refused.err(),
            Some(V3Code::BadUserNamePassword),
            "{why}: expected CONNACK 4"
        );
    }
    // The same node lets a good token in: the refusals above are about the tokens.
    let good = token_from_claims(&good_claims("alice"));
    Client::connect(v3_options(&node, "alice", Some(&good)))
        .await
        .expect("a good token is accepted");
}

/// §1 refusals, MQTT 5: the same bad tokens get CONNACK reason 0x86.
#[tokio::test]
async fn bad_tokens_are_refused_with_0x86_v5() {
    let node = node_with_issuer();
    // A password that is not a JWT is checked against the account store (issue 13): let it
    // be reachable, or the answer is "server unavailable".
    node.wait_for_log(&["history database ready"]).await;
    for (why, password) in bad_tokens("alice") {
        let refused =
            Client::<Mqtt5>::connect(v5_options(&node, "alice", password.as_deref())).await;
        assert_eq!(
            refused.err(),
            Some(V5Code::BadUserNamePassword),
            "{why}: expected CONNACK 0x86"
        );
    }
    let good = token_from_claims(&good_claims("alice"));
    Client::<Mqtt5>::connect(v5_options(&node, "alice", Some(&good)))
        .await
        .expect("a good token is accepted");
}

const FOREIGN_CLIENT_IDS: [&str; 7] = [
    "bob",
    "bob:alice",
    "alicex",
    "alice:",
    "alice:a/b",
    "alice:phone:2",
    "x:alice",
];

/// §1: a client id other than `{sub}` or `{sub}:{device}` is refused with 2 (v3.1.1), so one
/// user can never take over another's session; `{sub}` and `{sub}:{device}` get in.
#[tokio::test]
async fn client_id_not_bound_to_sub_is_refused_with_code_2_v311() {
    let node = Node::start();
    let alice = token("alice");
    for client_id in FOREIGN_CLIENT_IDS {
        let refused = Client::connect(options(&node, client_id, "alice", &alice)).await;
        assert_eq!(
            refused.err(),
            Some(V3Code::BadClientId),
            "client id {client_id:?}"
        );
    }
    for client_id in ["alice", "alice:phone"] {
        Client::connect(options(&node, client_id, "alice", &alice))
            .await
            .unwrap_or_else(|code| panic!("{client_id:?} refused with {code:?}"));
    }
}

/// §1: the same in MQTT 5, reason 0x85.
#[tokio::test]
async fn client_id_not_bound_to_sub_is_refused_with_0x85_v5() {
    let node = Node::start();
    let alice = token("alice");
    for client_id in FOREIGN_CLIENT_IDS {
        let refused = Client::<Mqtt5>::connect(options5(&node, client_id, "alice", &alice)).await;
        assert_eq!(
            refused.err(),
            Some(V5Code::ClientIdentifierNotValid),
            "client id {client_id:?}"
        );
    }
    for client_id in ["alice", "alice:phone"] {
        Client::<Mqtt5>::connect(options5(&node, client_id, "alice", &alice))
            .await
            .unwrap_or_else(|code| panic!("{client_id:?} refused with {code:?}"));
    }
}

/// §1: a username that is not the token's `sub` is refused with 5 (v3.1.1) / 0x87 (v5).
#[tokio::test]
async fn username_other_than_sub_is_refused_with_5_and_0x87() {
    let node = Node::start();
    let alice = token("alice");
    let refused = Client::connect(options(&node, "alice", "bob", &alice)).await;
    assert_eq!(refused.err(), Some(V3Code::NotAuthorized));
    let refused = Client::<Mqtt5>::connect(options5(&node, "alice", "bob", &alice)).await;
    assert_eq!(refused.err(), Some(V5Code::NotAuthorized));
}

/// §1: when `[limits] max_connections` are in use, a new client gets 3 (v3.1.1) / 0x97
/// (v5); once a connection ends its slot is free again.
#[tokio::test]
async fn max_connections_refused_with_3_and_0x97_until_a_slot_frees() {
    let node = Node::builder()
        .toml("[limits]\nmax_connections = 1\n")
        .start();
    let alice = Client::<Mqtt3>::user(&node, "alice").await;
    let bob = token("bob");
    let refused = Client::connect(options(&node, "bob", "bob", &bob)).await;
    assert_eq!(refused.err(), Some(V3Code::ServiceUnavailable));
    let refused = Client::<Mqtt5>::connect(options5(&node, "bob", "bob", &bob)).await;
    assert_eq!(refused.err(), Some(V5Code::QuotaExceeded));

    alice.client.disconnect().await.unwrap();
    // The slot frees when the node has finished with alice's connection: retry until then.
    let deadline = Instant::now() + WAIT;
    loop {
        match Client::connect(options(&node, "bob", "bob", &bob)).await {
            Ok(_) => break,
            Err(V3Code::ServiceUnavailable) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(code) => panic!("slot never freed: {code:?}"),
        }
    }
}

// ---- client ids ---------------------------------------------------------------------------

/// §1: an MQTT 5 client with an empty client id gets an Assigned Client<Mqtt3> Identifier
/// `{sub}:{random}` and is a working client.
#[tokio::test]
async fn empty_client_id_gets_assigned_sub_device_v5() {
    let node = Node::start();
    let mut alice = Client::<Mqtt5>::connect(options5(&node, "", "alice", &token("alice")))
        .await
        .expect("empty client id accepted");
    let assigned = alice
        .connack
        .properties
        .as_ref()
        .and_then(|p| p.assigned_client_identifier.clone())
        .expect("CONNACK has an Assigned Client<Mqtt3> Identifier");
    let device = assigned
        .strip_prefix("alice:")
        .unwrap_or_else(|| panic!("{assigned:?} is not alice:{{device}}"));
    assert!(
        !device.is_empty()
            && device.len() <= 64
            && device
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
        "device part {device:?} is not an id"
    );

    assert!(matches!(
        alice.subscribe("im/dm/alice/+").await,
        rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
    ));
    let bob = Client::<Mqtt3>::user(&node, "bob").await;
    bob.publish("im/dm/alice/bob", &chat("m1", "hi")).await;
    let got = alice.next_publish().await;
    assert_eq!(&got.topic[..], b"im/dm/alice/bob");
}

/// §1: a v3.1.1 client with an empty client id and a clean session is accepted and works;
/// with a persistent session it is refused with 2, as MQTT 3.1.1 says.
#[tokio::test]
async fn empty_client_id_v311_only_with_clean_session() {
    let node = Node::start();
    let alice = token("alice");
    let mut anon = Client::connect(options(&node, "", "alice", &alice))
        .await
        .expect("empty client id with clean session accepted");
    assert_eq!(anon.subscribe("im/dm/alice/+").await, 1);
    let bob = Client::<Mqtt3>::user(&node, "bob").await;
    bob.publish("im/dm/alice/bob", &chat("m1", "hi")).await;
    assert_eq!(anon.next_publish().await.0, "im/dm/alice/bob");

    // rumqttc will not build this CONNECT, so it goes out by hand.
    let mut connect = Connect::v311("", &alice);
    connect.clean = false;
    let (mut raw, ack) = Raw::connect(&node, &connect).await;
    assert_eq!(ack.body, [0, 2], "CONNACK return code 2");
    raw.closed().await;
}

/// §1: two devices of one user (`{sub}:{device}`) are connected at once and both receive a
/// direct message to that user.
#[tokio::test]
async fn two_devices_of_one_user_both_receive_a_dm() {
    let node = Node::start();
    let alice = token("alice");
    let mut phone = Client::connect(options(&node, "alice:phone", "alice", &alice))
        .await
        .unwrap();
    let mut laptop = Client::connect(options(&node, "alice:laptop", "alice", &alice))
        .await
        .unwrap();
    assert_eq!(phone.subscribe("im/dm/alice/+").await, 1);
    assert_eq!(laptop.subscribe("im/dm/alice/+").await, 1);
    let bob = Client::<Mqtt3>::user(&node, "bob").await;
    bob.publish("im/dm/alice/bob", &chat("m1", "to both")).await;
    for device in [&mut phone, &mut laptop] {
        let (topic, payload) = device.next_publish().await;
        assert_eq!(topic, "im/dm/alice/bob");
        assert!(payload.contains("to both"));
    }
}

// ---- token expiry -------------------------------------------------------------------------

/// A short-lived token, and its `exp`.
fn short_token(user: &str, ttl_secs: u64) -> (String, u64) {
    let claims = Claims::new(user, Vec::new(), Role::User, Duration::from_secs(ttl_secs));
    (token_from_claims(&claims), claims.exp)
}

/// §1: a token that expires while connected ends the connection; an MQTT 5 client is told
/// with DISCONNECT 0xA0 (maximum connect time) and a reason string. Not before `exp`.
#[tokio::test]
async fn token_expiry_disconnects_v5_with_0xa0() {
    let node = Node::start();
    let (token, exp) = short_token("alice", 3);
    let mut alice = Client::<Mqtt5>::connect(options5(&node, "alice", "alice", &token))
        .await
        .unwrap();
    match alice.ended().await {
        ConnectionError5::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => {
            assert_eq!(reason_code, DisconnectReasonCode::MaximumConnectTime);
            assert!(
                reason_string.is_some_and(|s| !s.is_empty()),
                "DISCONNECT carries a reason string"
            );
        }
        other => panic!("expected a DISCONNECT from the server, got {other:?}"),
    }
    let at = now_secs_f64();
    assert!(
        at >= exp as f64 - 0.2,
        "closed {:.1}s before exp",
        exp as f64 - at
    );
}

/// §1-2: sign-in and the expiry timer use the same clock skew. A token whose `exp` passed
/// two seconds ago is within the 5 s skew, so it is accepted, and then the connection is
/// not closed at once: it works, and ends (DISCONNECT 0xA0) when the skew is used up.
/// Meanwhile alice's presence goes online once and offline once.
#[tokio::test]
async fn a_token_accepted_within_the_clock_skew_is_not_closed_at_once() {
    let node = Node::start();
    let mut watcher = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(watcher.subscribe("im/presence/alice").await, 1);
    let mut claims = Claims::new("alice", Vec::new(), Role::User, Duration::from_secs(60));
    claims.exp -= 62;
    let exp = claims.exp;
    let mut alice = Client::<Mqtt5>::connect(options5(
        &node,
        "alice",
        "alice",
        &token_from_claims(&claims),
    ))
    .await
    .expect("a token within the clock skew is accepted");
    assert!(matches!(
        alice.subscribe("im/sys/alice").await,
        rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
    ));
    alice.publish_acked("x/y", "still connected").await;
    match alice.ended().await {
        ConnectionError5::MqttState(StateError::ServerDisconnect { reason_code, .. }) => {
            assert_eq!(reason_code, DisconnectReasonCode::MaximumConnectTime)
        }
        other => panic!("expected DISCONNECT 0xA0, got {other:?}"),
    }
    let at = now_secs_f64();
    assert!(
        at >= exp as f64 + 4.8,
        "closed {:.1}s after exp, inside the 5 s skew sign-in allowed",
        at - exp as f64
    );
    let statuses: Vec<String> = {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            match watcher
                .next_where(|p| matches!(p, Packet::Publish(p) if p.topic == "im/presence/alice"))
                .await
            {
                Packet::Publish(p) => {
                    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                    seen.push(v["status"].as_str().unwrap_or("?").to_owned());
                }
                _ => unreachable!(),
            }
        }
        seen
    };
    assert_eq!(statuses, ["online", "offline"]);
}

/// §1: the same for v3.1.1, which has no server DISCONNECT: the connection is closed.
#[tokio::test]
async fn token_expiry_closes_v311_connection() {
    let node = Node::start();
    let (token, exp) = short_token("alice", 3);
    let mut alice = Client::connect(options(&node, "alice", "alice", &token))
        .await
        .unwrap();
    // Still working before expiry.
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);
    alice.closed().await;
    let at = now_secs_f64();
    assert!(
        at >= exp as f64 - 0.2,
        "closed {:.1}s before exp",
        exp as f64 - at
    );
}

// ---- keepalive and connect timeout --------------------------------------------------------

/// MQTT keepalive: a v3.1.1 client that goes silent after CONNECT with keepalive 1 s is
/// closed after one and a half keepalives, and not before one.
#[tokio::test]
async fn silent_client_closed_after_one_and_a_half_keepalives_v311() {
    let node = Node::start();
    let mut connect = Connect::v311("alice", &token("alice"));
    connect.keep_alive = 1;
    // Timed from before the CONNECT: the node's clock starts when it has read it.
    let since = Instant::now();
    let (mut raw, ack) = Raw::connect(&node, &connect).await;
    assert_eq!(ack.body, [0, 0]);
    let (after, _) = raw.closed_after(since).await;
    assert!(after >= Duration::from_secs(1), "closed after {after:?}");
    assert!(
        after <= Duration::from_secs(4),
        "closed only after {after:?}"
    );
}

/// The same for MQTT 5, which hears why: DISCONNECT 0x8D (keep alive timeout).
#[tokio::test]
async fn silent_client_gets_disconnect_0x8d_v5() {
    let node = Node::start();
    let mut connect = Connect::v5("alice", &token("alice"));
    connect.keep_alive = 1;
    let since = Instant::now();
    let (mut raw, ack) = Raw::connect(&node, &connect).await;
    assert_eq!(ack.body[..2], [0, 0]);
    let (after, closed) = raw.closed_after(since).await;
    assert!(after >= Duration::from_secs(1), "closed after {after:?}");
    assert!(
        after <= Duration::from_secs(4),
        "closed only after {after:?}"
    );
    let frames = closed.packets;
    let disconnect = frames
        .iter()
        .find(|f| f.kind() == raw::DISCONNECT)
        .expect("a DISCONNECT before the close");
    assert_eq!(disconnect.body.first(), Some(&0x8D), "{frames:?}");
}

/// Keepalive counts any traffic: PINGREQs every half second keep a 1 s keepalive connection
/// open well past 1.5 s, each answered with a PINGRESP.
#[tokio::test]
async fn pinging_client_stays_connected() {
    let node = Node::start();
    let mut connect = Connect::v311("alice", &token("alice"));
    connect.keep_alive = 1;
    let (mut raw, _) = Raw::connect(&node, &connect).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        raw.send(&raw::PINGREQ).await;
        let pong = raw
            .next_frame()
            .await
            .expect("connection closed while pinging");
        assert_eq!(pong.kind(), raw::PINGRESP);
    }
}

/// `[limits] connect_timeout`: a TCP connection that never sends CONNECT is closed after it,
/// without a word.
#[tokio::test]
async fn connection_without_connect_closed_after_connect_timeout() {
    let node = Node::builder()
        .toml("[limits]\nconnect_timeout = \"1s\"\n")
        .start();
    let since = Instant::now();
    let mut raw = Raw::open(node.mqtt).await;
    let (after, closed) = raw.closed_after(since).await;
    let frames = closed.packets;
    assert!(frames.is_empty(), "sent {frames:?}");
    assert!(after >= Duration::from_secs(1), "closed after {after:?}");
    assert!(
        after <= Duration::from_secs(4),
        "closed only after {after:?}"
    );
}

// ---- last will ----------------------------------------------------------------------------

/// MQTT last will: published when the connection ends without DISCONNECT (socket dropped).
#[tokio::test]
async fn will_published_when_socket_drops() {
    let node = Node::start();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let mut connect = Connect::v311("alice", &token("alice"));
    connect.will = Some(("im/dm/bob/alice".into(), chat("w1", "gone").into_bytes()));
    let (raw, ack) = Raw::connect(&node, &connect).await;
    assert_eq!(ack.body, [0, 0]);
    drop(raw);
    let (topic, payload) = bob.next_publish().await;
    assert_eq!(topic, "im/dm/bob/alice");
    assert!(payload.contains("\"w1\""), "{payload}");
}

/// MQTT last will: not published on a normal DISCONNECT.
#[tokio::test]
async fn will_not_published_on_normal_disconnect() {
    let node = Node::start();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    assert_eq!(bob.subscribe("im/presence/alice").await, 1);
    let mut o = options(&node, "alice", "alice", &token("alice"));
    o.set_last_will(LastWill::new(
        "im/dm/bob/alice",
        chat("w1", "gone"),
        QoS::AtLeastOnce,
        false,
    ));
    let alice = Client::connect(o).await.unwrap();
    alice.client.disconnect().await.unwrap();
    wait_offline(&mut bob, "alice").await;

    let carol = Client::<Mqtt3>::user(&node, "carol").await;
    carol.publish("im/dm/bob/carol", &chat("marker", "m")).await;
    let seen = payloads_until(&mut bob, "marker").await;
    assert!(
        !seen.iter().any(|p| p.contains("\"w1\"")),
        "will published after a normal DISCONNECT: {seen:?}"
    );
}

/// §3 applied at CONNECT: a will on a topic the user may not publish to is refused with
/// 5 (v3.1.1) / 0x87 (v5).
#[tokio::test]
async fn will_on_forbidden_topic_refused_at_connect() {
    let node = Node::start();
    let alice = token("alice");
    let mut o = options(&node, "alice", "alice", &alice);
    o.set_last_will(LastWill::new(
        "im/dm/bob/carol",
        "spoof",
        QoS::AtMostOnce,
        false,
    ));
    assert_eq!(Client::connect(o).await.err(), Some(V3Code::NotAuthorized));

    let mut o = options5(&node, "alice", "alice", &alice);
    o.set_last_will(LastWill5::new(
        "im/dm/bob/carol",
        "spoof",
        rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        false,
        None,
    ));
    assert_eq!(
        Client::<Mqtt5>::connect(o).await.err(),
        Some(V5Code::NotAuthorized)
    );
}

// ---- sessions -----------------------------------------------------------------------------

/// Alice, watching bob's presence (to see him leave), and the options of bob's persistent
/// v3.1.1 session.
async fn alice_and_persistent_bob(node: &Node) -> (Client<Mqtt3>, rumqttc::MqttOptions) {
    let mut alice = Client::<Mqtt3>::user(node, "alice").await;
    assert_eq!(alice.subscribe("im/presence/bob").await, 1);
    let mut o = options(node, "bob:phone", "bob", &token("bob"));
    o.set_clean_session(false);
    (alice, o)
}

/// MQTT persistent session (v3.1.1 clean session = false): QoS 1 messages sent while the
/// client was away arrive when it comes back, with session present set, without
/// subscribing again.
#[tokio::test]
async fn persistent_session_gets_offline_messages_v311() {
    let node = Node::start();
    let (mut alice, o) = alice_and_persistent_bob(&node).await;
    let mut bob = Client::connect(o.clone()).await.unwrap();
    let present = bob.connack.session_present;
    assert!(!present, "a new session is not present");
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    bob.client.disconnect().await.unwrap();
    wait_offline(&mut alice, "bob").await;

    alice
        .publish_acked("im/dm/bob/alice", &chat("away1", "while away"))
        .await;

    let mut bob = Client::connect(o).await.unwrap();
    let present = bob.connack.session_present;
    assert!(present, "session present on resume");
    let (topic, payload) = bob.next_publish().await;
    assert_eq!(topic, "im/dm/bob/alice");
    assert!(payload.contains("away1"));
}

/// The same for MQTT 5 (Clean Start = false with a Session Expiry Interval).
#[tokio::test]
async fn persistent_session_gets_offline_messages_v5() {
    let node = Node::start();
    let mut alice = Client::<Mqtt3>::user(&node, "alice").await;
    assert_eq!(alice.subscribe("im/presence/bob").await, 1);

    let bob_token = token("bob");
    let mut o = options5(&node, "bob:phone", "bob", &bob_token);
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(300));
    let mut bob = Client::<Mqtt5>::connect(o.clone()).await.unwrap();
    assert!(!bob.connack.session_present);
    assert!(matches!(
        bob.subscribe("im/dm/bob/+").await,
        rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
    ));
    bob.client.disconnect().await.unwrap();
    wait_offline(&mut alice, "bob").await;

    alice
        .publish_acked("im/dm/bob/alice", &chat("away1", "while away"))
        .await;

    let mut bob = Client::<Mqtt5>::connect(o).await.unwrap();
    assert!(bob.connack.session_present, "session present on resume");
    let got = bob.next_publish().await;
    assert_eq!(&got.topic[..], b"im/dm/bob/alice");
    assert!(String::from_utf8_lossy(&got.payload).contains("away1"));
}

/// A persistent session gets again, after resuming, the QoS 1 deliveries it had not
/// acknowledged when it left (MQTT 4.4), then what was sent while it was away; the one it
/// had acknowledged does not come back. The node drops messages from memory once every
/// reader has them, so this pins that an unacknowledged delivery still counts as unread.
#[tokio::test]
async fn persistent_session_gets_unacknowledged_deliveries_again_on_resume() {
    let node = Node::start();
    let (mut alice, mut o) = alice_and_persistent_bob(&node).await;
    o.set_manual_acks(true);
    let mut bob = Client::connect(o.clone()).await.unwrap();
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);

    alice.publish("im/dm/bob/alice", &chat("m1", "acked")).await;
    let m1 = match bob.next_where(|p| matches!(p, Packet::Publish(_))).await {
        Packet::Publish(p) => p,
        _ => unreachable!(),
    };
    assert!(String::from_utf8_lossy(&m1.payload).contains("m1"));
    bob.client.ack(&m1).await.unwrap();

    alice
        .publish("im/dm/bob/alice", &chat("m2", "not acked"))
        .await;
    let (_, m2) = bob.next_publish().await;
    assert!(m2.contains("m2"), "got {m2}");
    bob.client.disconnect().await.unwrap();
    wait_offline(&mut alice, "bob").await;

    alice
        .publish_acked("im/dm/bob/alice", &chat("m3", "while away"))
        .await;

    let mut bob = Client::connect(o).await.unwrap();
    let present = bob.connack.session_present;
    assert!(present);
    let (_, first) = bob.next_publish().await;
    assert!(first.contains("m2"), "first after resume: {first}");
    let (_, second) = bob.next_publish().await;
    assert!(second.contains("m3"), "second after resume: {second}");
}

/// UNSUBSCRIBE works on a resumed persistent session: the subscriptions it got back are its
/// own (rumqttd forgot them for UNSUBSCRIBE; patched in vendor/rumqttd).
#[tokio::test]
async fn resumed_session_can_unsubscribe() {
    let node = Node::start();
    let (mut alice, o) = alice_and_persistent_bob(&node).await;
    let mut bob = Client::connect(o.clone()).await.unwrap();
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    assert_eq!(bob.subscribe("im/dm/+/bob").await, 1);
    bob.client.disconnect().await.unwrap();
    wait_offline(&mut alice, "bob").await;

    let mut bob = Client::connect(o).await.unwrap();
    let present = bob.connack.session_present;
    assert!(present);
    bob.client.unsubscribe("im/dm/bob/+").await.unwrap();
    bob.next_where(|p| matches!(p, Packet::UnsubAck(_))).await;

    alice
        .publish_acked("im/dm/bob/alice", &chat("gone", "unsubscribed"))
        .await;
    // Bob's own sent copy comes back on the subscription he kept.
    bob.publish("im/dm/carol/bob", &chat("marker", "kept"))
        .await;
    let (topic, payload) = bob.next_publish().await;
    assert_eq!(topic, "im/dm/carol/bob", "got {payload}");
}

/// MQTT clean session: nothing is kept; session present is false and messages sent while
/// away are not delivered after reconnecting (the first message is one sent afterwards).
#[tokio::test]
async fn clean_session_keeps_nothing() {
    let node = Node::start();
    let mut alice = Client::<Mqtt3>::user(&node, "alice").await;
    assert_eq!(alice.subscribe("im/presence/bob").await, 1);
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);

    let o = options(&node, "bob:phone", "bob", &token("bob"));
    let mut bob = Client::connect(o.clone()).await.unwrap();
    let present = bob.connack.session_present;
    assert!(!present);
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    bob.client.disconnect().await.unwrap();
    wait_offline(&mut alice, "bob").await;

    alice
        .publish_acked("im/dm/bob/alice", &chat("away1", "while away"))
        .await;
    // Stored (and so, under stamped delivery, published) before bob is back.
    loop {
        let (topic, payload) = alice.next_publish().await;
        if topic == "im/sys/alice" && payload.contains(r#""id":"away1""#) {
            break;
        }
    }

    let mut bob = Client::connect(o).await.unwrap();
    let present = bob.connack.session_present;
    assert!(!present, "a clean session is never present");
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    alice
        .publish("im/dm/bob/alice", &chat("marker", "after"))
        .await;
    let (_, payload) = bob.next_publish().await;
    assert!(payload.contains("marker"), "got {payload}");
}

// ---- QoS, retained, properties ------------------------------------------------------------

/// MQTT QoS 0, 1 and 2, v3.1.1, both ways: what a publisher sends at QoS n reaches a QoS n
/// subscriber at QoS n, and each handshake completes (PUBACK; PUBREC/PUBCOMP to the
/// publisher and PUBREL to the subscriber for QoS 2).
#[tokio::test]
async fn qos_0_1_2_end_to_end_v311() {
    let node = Node::start();
    let mut alice = Client::<Mqtt3>::user(&node, "alice").await;
    for (n, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let user = format!("bob{n}");
        let mut bob = Client::<Mqtt3>::user(&node, &user).await;
        bob.client
            .subscribe(format!("im/dm/{user}/+"), qos)
            .await
            .unwrap();
        match bob.next_where(|p| matches!(p, Packet::SubAck(_))).await {
            Packet::SubAck(ack) => assert_eq!(
                ack.return_codes,
                [rumqttc::SubscribeReasonCode::Success(qos)]
            ),
            _ => unreachable!(),
        }
        alice
            .client
            .publish(
                format!("im/dm/{user}/alice"),
                qos,
                false,
                // One id per message: a retried id is not delivered again.
                chat(&format!("q{n}"), "x"),
            )
            .await
            .unwrap();
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                alice.next_where(|p| matches!(p, Packet::PubAck(_))).await;
            }
            QoS::ExactlyOnce => {
                alice.next_where(|p| matches!(p, Packet::PubRec(_))).await;
                alice.next_where(|p| matches!(p, Packet::PubComp(_))).await;
            }
        }
        let got = next_publish3(&mut bob).await;
        assert_eq!(got.qos, qos, "delivered at the subscription's QoS");
        if qos == QoS::ExactlyOnce {
            bob.next_where(|p| matches!(p, Packet::PubRel(_))).await;
        }
    }
}

/// The same for MQTT 5.
#[tokio::test]
async fn qos_0_1_2_end_to_end_v5() {
    use rumqttc::v5::mqttbytes::v5::{Filter, SubscribeReasonCode};
    use rumqttc::v5::mqttbytes::QoS as Q5;
    let node = Node::start();
    let mut alice = Client::<Mqtt5>::user(&node, "alice").await;
    for (n, qos) in [Q5::AtMostOnce, Q5::AtLeastOnce, Q5::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let user = format!("bob{n}");
        let mut bob = Client::<Mqtt5>::user(&node, &user).await;
        bob.client
            .subscribe_many([Filter::new(format!("im/dm/{user}/+"), qos)])
            .await
            .unwrap();
        match bob.next_where(|p| matches!(p, Packet5::SubAck(_))).await {
            Packet5::SubAck(ack) => {
                assert_eq!(ack.return_codes, [SubscribeReasonCode::Success(qos)])
            }
            _ => unreachable!(),
        }
        alice
            .client
            .publish(
                format!("im/dm/{user}/alice"),
                qos,
                false,
                // One id per message: a retried id is not delivered again.
                chat(&format!("q{n}"), "x"),
            )
            .await
            .unwrap();
        match qos {
            Q5::AtMostOnce => {}
            Q5::AtLeastOnce => {
                alice.next_where(|p| matches!(p, Packet5::PubAck(_))).await;
            }
            Q5::ExactlyOnce => {
                alice.next_where(|p| matches!(p, Packet5::PubRec(_))).await;
                alice.next_where(|p| matches!(p, Packet5::PubComp(_))).await;
            }
        }
        let got = bob.next_publish().await;
        assert_eq!(got.qos, qos, "delivered at the subscription's QoS");
        if qos == Q5::ExactlyOnce {
            bob.next_where(|p| matches!(p, Packet5::PubRel(_))).await;
        }
    }
}

/// MQTT retained messages: a retained publish is delivered, flagged retained, to a client
/// that subscribes afterwards (outside `im/`, where retain is allowed; see tests/rules.rs).
#[tokio::test]
async fn retained_message_reaches_later_subscriber() {
    let node = Node::builder()
        .toml("[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"public/#\"\n")
        .start();
    let mut alice = Client::<Mqtt3>::user(&node, "alice").await;
    alice
        .client
        .publish("public/news", QoS::AtLeastOnce, true, chat("r1", "kept"))
        .await
        .unwrap();
    alice.next_where(|p| matches!(p, Packet::PubAck(_))).await;

    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("public/#").await, 1);
    let got = next_publish3(&mut bob).await;
    assert_eq!(got.topic, "public/news");
    assert!(got.retain, "delivered as retained");
    assert!(String::from_utf8_lossy(&got.payload).contains("r1"));
}

/// MQTT 5 user properties of a publish reach an MQTT 5 subscriber; a v3.1.1 subscriber of
/// the same topic gets the message without them, and the node goes on working.
#[tokio::test]
async fn user_properties_reach_v5_and_are_dropped_for_v311() {
    let node = Node::start();
    let bob_token = token("bob");
    let mut bob5 = Client::<Mqtt5>::connect(options5(&node, "bob:v5", "bob", &bob_token))
        .await
        .unwrap();
    let mut bob3 = Client::connect(options(&node, "bob:v3", "bob", &bob_token))
        .await
        .unwrap();
    assert!(matches!(
        bob5.subscribe("im/dm/bob/+").await,
        rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
    ));
    assert_eq!(bob3.subscribe("im/dm/bob/+").await, 1);

    let alice = Client::<Mqtt5>::user(&node, "alice").await;
    let props = PublishProperties {
        user_properties: vec![("trace".into(), "abc".into())],
        ..Default::default()
    };
    alice
        .client
        .publish_with_properties(
            "im/dm/bob/alice",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            chat("p1", "with props"),
            props,
        )
        .await
        .unwrap();

    let got = bob5.next_publish().await;
    assert!(String::from_utf8_lossy(&got.payload).contains("p1"));
    assert_eq!(
        user_properties(&got),
        [("trace".to_owned(), "abc".to_owned())]
    );
    let (_, payload) = bob3.next_publish().await;
    assert!(payload.contains("p1"));

    alice.publish("im/dm/bob/alice", &chat("p2", "plain")).await;
    assert!(String::from_utf8_lossy(&bob5.next_publish().await.payload).contains("p2"));
    assert!(bob3.next_publish().await.1.contains("p2"));
}

// ---- limits -------------------------------------------------------------------------------

/// MQTT 5 flow control: the CONNACK advertises `[limits] receive_maximum` and
/// `max_packet_size`.
#[tokio::test]
async fn connack_advertises_receive_maximum_and_packet_size_v5() {
    let node = Node::builder()
        .toml("[limits]\nreceive_maximum = 10\nmax_packet_size = 4096\n")
        .start();
    let alice = Client::<Mqtt5>::user(&node, "alice").await;
    let props = alice.connack.properties.expect("CONNACK properties");
    assert_eq!(props.receive_max, Some(10));
    assert_eq!(props.max_packet_size, Some(4096));
}

/// `[limits] max_packet_size`: a v3.1.1 publish bigger than it closes that connection (it is
/// not delivered); other clients keep working.
#[tokio::test]
async fn oversize_publish_closes_only_that_connection_v311() {
    let node = Node::builder()
        .toml("[limits]\nmax_packet_size = 2048\n")
        .start();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);

    let mut o = options(&node, "alice", "alice", &token("alice"));
    o.set_max_packet_size(100_000, 100_000);
    let mut alice = Client::connect(o).await.unwrap();
    let big = chat("big", &"x".repeat(4096));
    alice.publish("im/dm/bob/alice", &big).await;
    alice.closed().await;

    let carol = Client::<Mqtt3>::user(&node, "carol").await;
    carol
        .publish("im/dm/bob/carol", &chat("marker", "small"))
        .await;
    let (topic, payload) = bob.next_publish().await;
    assert_eq!(
        topic, "im/dm/bob/carol",
        "the oversize publish was delivered"
    );
    assert!(payload.contains("marker"));
}

/// The same for MQTT 5, which is told why: DISCONNECT 0x95 (packet too large).
#[tokio::test]
async fn oversize_publish_gets_disconnect_0x95_v5() {
    let node = Node::builder()
        .toml("[limits]\nmax_packet_size = 2048\n")
        .start();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);

    let (mut raw, _) = Raw::connect(&node, &Connect::v5("alice", &token("alice"))).await;
    let big = chat("big", &"x".repeat(4096));
    raw.send(&raw::publish(V5, b"im/dm/bob/alice", 1, 1, big.as_bytes()))
        .await;
    let frames = raw.closed().await.packets;
    let disconnect = frames
        .iter()
        .find(|f| f.kind() == raw::DISCONNECT)
        .expect("a DISCONNECT before the close");
    assert_eq!(disconnect.body.first(), Some(&0x95), "{frames:?}");

    let carol = Client::<Mqtt3>::user(&node, "carol").await;
    carol
        .publish("im/dm/bob/carol", &chat("marker", "small"))
        .await;
    assert_eq!(bob.next_publish().await.0, "im/dm/bob/carol");
}
