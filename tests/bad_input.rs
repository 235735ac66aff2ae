//! Hostile and broken input, byte by byte over raw TCP. Whatever one connection sends, the
//! node closes or refuses that connection (telling a v5 client why, in the protocol's own
//! reason codes), logs which peer did what, and everyone else keeps chatting.
mod common;

use common::client::{Client, Mqtt3};
use common::raw::{self, Closed, Connect, Raw, V311, V5};
use common::{token_from_claims, Node};
use roost_auth::{mint_hs256, Claims, Role};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CHAT: &[u8] = br#"{"id":"x1","kind":"text","body":"should never arrive"}"#;

/// Two users signed in before the bad connection, each listening for DMs.
struct Bystanders {
    bob: Client<Mqtt3>,
    carol: Client<Mqtt3>,
}

async fn bystanders(node: &Node) -> Bystanders {
    let mut bob = Client::<Mqtt3>::user(node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let mut carol = Client::<Mqtt3>::user(node, "carol").await;
    assert_eq!(carol.subscribe("im/dm/carol/+").await, 1);
    Bystanders { bob, carol }
}

impl Bystanders {
    /// The node is alive and bob and carol still exchange DMs. Bob's first message is
    /// carol's, so nothing the bad connection sent to bob was delivered before it.
    async fn still_talk(mut self, node: &mut Node) {
        assert!(
            node.is_running(),
            "the node died; log:\n{}",
            node.log_text()
        );
        self.bob
            .publish(
                "im/dm/carol/bob",
                r#"{"id":"b1","kind":"text","body":"still there?"}"#,
            )
            .await;
        let (topic, payload) = self.carol.next_publish().await;
        assert_eq!(topic, "im/dm/carol/bob");
        assert!(payload.contains("still there?"), "{payload}");
        self.carol
            .publish(
                "im/dm/bob/carol",
                r#"{"id":"c1","kind":"text","body":"yes"}"#,
            )
            .await;
        let (topic, payload) = self.bob.next_publish().await;
        assert_eq!(topic, "im/dm/bob/carol", "bob got {payload}");
        assert!(payload.contains(r#""body":"yes""#), "{payload}");
        assert!(
            node.is_running(),
            "the node died; log:\n{}",
            node.log_text()
        );
    }
}

/// v3.1.1 has no way to say why: the server just closes. v5 gets exactly one DISCONNECT
/// with `reason` and a reason string naming `cause`, then the close.
fn assert_closed_with(closed: &Closed, level: u8, reason: u8, cause: &str) {
    assert!(
        closed.trailing.is_empty(),
        "bytes after the last whole packet: {closed:?}"
    );
    if level == V311 {
        assert!(
            closed.packets.is_empty(),
            "v3.1.1 expected a bare close: {closed:?}"
        );
    } else {
        assert_eq!(closed.packets.len(), 1, "{closed:?}");
        assert_eq!(
            closed.packets[0].disconnect_reason(),
            reason,
            "DISCONNECT reason: {closed:?}"
        );
        let why = closed.packets[0].reason_string();
        assert!(
            why.as_deref().is_some_and(|w| w.contains(cause)),
            "reason string {why:?}, expected one naming {cause:?}"
        );
    }
}

/// The connection closed without the node sending anything (no CONNECT to answer).
fn assert_bare_close(closed: &Closed) {
    assert!(
        closed.packets.is_empty() && closed.trailing.is_empty(),
        "expected a bare close: {closed:?}"
    );
}

/// Refused sign-in: exactly one CONNACK with `code`, then the close.
fn assert_refused_with(closed: &Closed, code: u8) {
    assert!(closed.trailing.is_empty(), "{closed:?}");
    assert_eq!(closed.packets.len(), 1, "expected one CONNACK: {closed:?}");
    assert_eq!(closed.packets[0].connack_code(), code, "{closed:?}");
}

/// Signs in `user` at `level`, sends `bad`, and checks the close, its reason and the log.
async fn after_sign_in(node: &Node, level: u8, user: &str, bad: &[u8], reason: u8, cause: &str) {
    let mut raw = Raw::sign_in(node, level, user).await;
    raw.send(bad).await;
    let closed = raw.closed().await;
    assert_closed_with(&closed, level, reason, cause);
    node.wait_for_log(&[&raw.peer(), cause]).await;
}

#[tokio::test]
async fn bad_remaining_length_closes_the_connection() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    // A remaining length whose fifth byte still has the continuation bit set.
    let bad = [0x30, 0xff, 0xff, 0xff, 0xff, 0x01];
    after_sign_in(&node, V311, "mallory", &bad, 0, "malformed packet").await;
    after_sign_in(&node, V5, "mallory", &bad, 0x81, "malformed packet").await;
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn truncated_publish_closes_the_connection() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    // A whole frame whose topic claims 16 bytes where the frame holds 1.
    let bad = raw::packet(0x30, &[0x00, 0x10, b'a']);
    after_sign_in(&node, V311, "mallory", &bad, 0, "malformed packet").await;
    after_sign_in(&node, V5, "mallory", &bad, 0x81, "malformed packet").await;
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn truncated_connect_is_refused() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    for level in [V311, V5] {
        // The frame ends right after the protocol level: no flags, keepalive or client id.
        let mut body = raw::string(b"MQTT");
        body.push(level);
        let mut raw = Raw::open(node.mqtt).await;
        raw.send(&raw::packet(0x10, &body)).await;
        let closed = raw.closed().await;
        if level == V311 {
            assert_bare_close(&closed);
        } else {
            assert_refused_with(&closed, 0x81);
        }
        node.wait_for_log(&[&raw.peer(), "malformed CONNECT"]).await;
    }
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn a_second_connect_closes_the_connection() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    for level in [V311, V5] {
        let again = Connect::user(level, "mallory", &common::token("mallory")).encode();
        after_sign_in(&node, level, "mallory", &again, 0x82, "second CONNECT").await;
    }
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn publish_before_connect_is_refused() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    for level in [V311, V5] {
        let mut raw = Raw::open(node.mqtt).await;
        raw.send(&raw::publish(level, b"im/dm/bob/mallory", 1, 1, CHAT))
            .await;
        assert_bare_close(&raw.closed().await);
        node.wait_for_log(&[&raw.peer(), "first packet is not a CONNECT"])
            .await;
    }
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn first_packet_not_connect_is_refused() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    let firsts: [&[u8]; 3] = [
        &raw::PINGREQ,
        &raw::subscribe(V311, 1, "im/dm/bob/+"),
        b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ];
    for first in firsts {
        let mut raw = Raw::open(node.mqtt).await;
        raw.send(first).await;
        assert_bare_close(&raw.closed().await);
        node.wait_for_log(&[&raw.peer(), "first packet is not a CONNECT"])
            .await;
    }
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn wildcards_in_a_publish_topic_close_the_connection() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    for topic in [&b"im/dm/bob/+"[..], b"im/dm/bob/#", b"im/#"] {
        for level in [V311, V5] {
            let bad = raw::publish(level, topic, 1, 7, CHAT);
            // v5: 0x90 Topic Name invalid.
            after_sign_in(&node, level, "mallory", &bad, 0x90, "invalid publish topic").await;
        }
    }
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn invalid_utf8_in_a_topic_closes_the_connection() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    for level in [V311, V5] {
        let bad = raw::publish(level, b"im/dm/bob/mal\xff\xfelory", 1, 7, CHAT);
        // Ill-formed UTF-8 makes a Malformed Packet (MQTT 5 section 1.5.4): 0x81.
        after_sign_in(&node, level, "mallory", &bad, 0x81, "invalid UTF-8").await;
    }
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn qos_3_closes_the_connection() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    for level in [V311, V5] {
        let bad = raw::publish(level, b"im/dm/bob/mallory", 3, 7, CHAT);
        // Both QoS bits set makes a Malformed Packet (MQTT 5 section 3.3.1.2): 0x81.
        after_sign_in(&node, level, "mallory", &bad, 0x81, "QoS 3").await;
    }
    others.still_talk(&mut node).await;
}

/// The fixed header of a PUBLISH (or CONNECT) declaring 200 MiB: remaining length
/// 100 * 2^21.
const HEADER_200_MIB: [u8; 4] = [0x80, 0x80, 0x80, 0x64];

#[tokio::test]
async fn a_frame_declaring_200_mib_is_refused_from_its_header() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    let before = raw::rss_kib(node.pid());
    for level in [V311, V5] {
        let mut raw = Raw::sign_in(&node, level, "mallory").await;
        let mut header = vec![0x30];
        header.extend(HEADER_200_MIB);
        raw.send(&header).await;
        // Nothing more is sent: the node decides from those 5 bytes.
        let closed = raw.closed().await;
        assert_closed_with(&closed, level, 0x95, "maximum packet size"); // v5: Packet too large
        node.wait_for_log(&[&raw.peer(), "maximum packet size"])
            .await;
    }
    let after = raw::rss_kib(node.pid());
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn a_connect_declaring_200_mib_is_refused_from_its_header() {
    // A connect timeout far beyond the test's patience: the close must come from the
    // header, not from the timeout.
    let mut node = Node::builder()
        .toml("[limits]\nconnect_timeout = \"60s\"")
        .start();
    let others = bystanders(&node).await;
    let before = raw::rss_kib(node.pid());
    let mut raw = Raw::open(node.mqtt).await;
    let mut header = vec![0x10];
    header.extend(HEADER_200_MIB);
    raw.send(&header).await;
    assert_bare_close(&raw.closed_within(Duration::from_secs(10)).await);
    node.wait_for_log(&[&raw.peer(), "maximum packet size"])
        .await;
    let after = raw::rss_kib(node.pid());
    assert!(
        after < before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    others.still_talk(&mut node).await;
}

#[tokio::test]
async fn an_unsupported_protocol_level_gets_connack_1() {
    let mut node = Node::start();
    let others = bystanders(&node).await;
    let versions: [(&[u8], u8); 3] = [(b"MQIsdp", 3), (b"MQTT", 3), (b"MQTT", 6)];
    for (name, level) in versions {
        let token = common::token("mallory");
        let mut raw = Raw::open(node.mqtt).await;
        let connect = Connect {
            protocol_name: name.to_vec(),
            level,
            ..Connect::user(V311, "mallory", &token)
        };
        raw.send(&connect.encode()).await;
        let closed = raw.closed().await;
        // 0x01: unacceptable protocol version, in the form every version reads.
        assert_refused_with(&closed, 0x01);
        assert_eq!(closed.packets[0].body, [0x00, 0x01]);
        node.wait_for_log(&[
            &raw.peer(),
            "unsupported MQTT protocol level",
            &format!("level={level}"),
        ])
        .await;
    }
    others.still_talk(&mut node).await;
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Every kind of bad token, with the `cause` the node logs for it.
fn bad_tokens(user: &str) -> Vec<(&'static str, String)> {
    let claims = Claims::new(user, vec![], Role::User, Duration::from_secs(3600));
    let mut expired = claims.clone();
    expired.iat = Some(unix_now() - 7200);
    expired.exp = unix_now() - 3600;
    let unsigned = format!(
        "{}.{}.",
        base64url(br#"{"alg":"none","typ":"JWT"}"#),
        base64url(serde_json::to_string(&claims).unwrap().as_bytes())
    );
    vec![
        // Not a JWT, with a username: checked as an account password (issue 13).
        ("bad_password", "this-is-not-a-jwt".to_owned()),
        (
            "bad_signature",
            mint_hs256("some-other-secret-0123456789abcdefghij", &claims).unwrap(),
        ),
        ("expired", token_from_claims(&expired)),
        ("algorithm_not_allowed", unsigned),
    ]
}

#[tokio::test]
async fn bad_tokens_are_refused_with_connack_4_or_0x86() {
    let mut node = Node::start();
    // A password that is not a JWT is checked against the account store (issue 13): let it
    // be reachable, or the answer is "server unavailable".
    node.wait_for_log(&["history database ready"]).await;
    let others = bystanders(&node).await;
    for (cause, token) in bad_tokens("mallory") {
        for (level, code) in [(V311, 4), (V5, 0x86)] {
            let mut raw = Raw::open(node.mqtt).await;
            raw.send(&Connect::user(level, "mallory", &token).encode())
                .await;
            let closed = raw.closed().await;
            assert_refused_with(&closed, code);
            node.wait_for_log(&[
                &raw.peer(),
                "sign-in refused",
                &format!("cause=\"{cause}\""),
            ])
            .await;
        }
    }
    others.still_talk(&mut node).await;
}

#[test]
fn base64url_matches_the_rfc_examples() {
    // RFC 4648 section 10, unpadded.
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}
