//! Third-party MQTT clients against a real node: what a user gets with Mosquitto's command
//! line tools and with Python paho-mqtt, tokens as passwords, and the ACL of docs/protocol.md
//! section 3.
mod common;

use common::tools::{describe, paho, run_bounded, Subscriber};
use common::{token, token_with, Node};
use roost_auth::Role;
use std::time::Duration;

fn mosquitto_dm(node: &Node, version: &str) {
    let port = node.mqtt.port().to_string();
    let (alice, bob) = (token("alice"), token("bob"));
    let mut sub = Subscriber::start(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-V",
        version,
        "-u",
        "bob",
        "-P",
        &bob,
        "-i",
        "bob",
        "-q",
        "1",
        "-t",
        "im/dm/bob/+",
        "-C",
        "1",
        "-W",
        "30",
    ]);
    // Subscribed before anything is sent.
    sub.wait_for("received SUBACK");
    let message = r#"{"id":"mq-1","kind":"text","body":"hi from mosquitto"}"#;
    let publish = run_bounded(
        "mosquitto_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            version,
            "-u",
            "alice",
            "-P",
            &alice,
            "-i",
            "alice",
            "-q",
            "1",
            "-t",
            "im/dm/bob/alice",
            "-m",
            message,
        ],
    );
    assert!(
        publish.status.success(),
        "mosquitto_pub: {}",
        describe(&publish)
    );
    let line = sub.wait_for("im/dm/bob/alice ");
    // The stamped copy: the message as sent (its bytes first), then the server's fields.
    let got = line.strip_prefix("im/dm/bob/alice ").unwrap();
    assert!(got.starts_with(message.trim_end_matches('}')), "{line}");
    let got: serde_json::Value = serde_json::from_str(got).unwrap();
    assert_eq!(
        (&got["from"], &got["conv"], &got["seq"]),
        (
            &serde_json::json!("alice"),
            &serde_json::json!("dm:alice:bob"),
            &serde_json::json!(1)
        ),
        "{line}"
    );
    assert!(sub.exit_status().success());
}

#[test]
fn mosquitto_clients_exchange_a_direct_message_v311() {
    let node = Node::start();
    mosquitto_dm(&node, "mqttv311");
}

#[test]
fn mosquitto_clients_exchange_a_direct_message_v5() {
    let node = Node::start();
    mosquitto_dm(&node, "mqttv5");
}

#[test]
fn mosquitto_sign_in_with_a_bad_token_is_refused() {
    let node = Node::start();
    // A password that is not a JWT is checked against the account store (issue 13): let it
    // be reachable, or the answer is "server unavailable".
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(node.wait_for_log(&["history database ready"]));
    let port = node.mqtt.port().to_string();
    let forged = roost_auth::mint_hs256(
        "not-the-node-secret-0123456789abcdef",
        &roost_auth::Claims::new(
            "alice",
            vec![],
            roost_auth::Role::User,
            Duration::from_secs(3600),
        ),
    )
    .unwrap();
    for version in ["mqttv311", "mqttv5"] {
        for password in [forged.as_str(), "garbage"] {
            let out = run_bounded(
                "mosquitto_pub",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-V",
                    version,
                    "-u",
                    "alice",
                    "-P",
                    password,
                    "-i",
                    "alice",
                    "-q",
                    "1",
                    "-t",
                    "im/dm/bob/alice",
                    "-m",
                    "{}",
                ],
            );
            assert!(!out.status.success(), "{version}: {}", describe(&out));
            assert_ne!(
                out.status.code(),
                Some(124),
                "timed out: {}",
                describe(&out)
            );
            let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
            assert!(
                stderr.contains("bad user name or password"),
                "{version}: {}",
                describe(&out)
            );
        }
    }
    // A valid token for someone else's client id: refused too (identifier rejected).
    let out = run_bounded(
        "mosquitto_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            "alice",
            "-P",
            &token("alice"),
            "-i",
            "bob",
            "-t",
            "im/dm/bob/alice",
            "-m",
            "{}",
        ],
    );
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("identifier rejected"), "{}", describe(&out));
}

#[test]
fn paho_v311_direct_message() {
    let node = Node::start();
    let port = node.mqtt.port().to_string();
    paho(
        "dm.py",
        &["127.0.0.1", &port, &token("alice"), &token("bob")],
    );
}

#[test]
fn paho_v5_direct_message_keeps_user_properties() {
    let node = Node::start();
    let port = node.mqtt.port().to_string();
    paho(
        "dm.py",
        &["127.0.0.1", &port, &token("alice"), &token("bob"), "--v5"],
    );
}

/// Stamped delivery with a third-party client (docs/protocol.md section 4, "Delivery"):
/// the copy carries the ack's conv/seq/ts and `from`, reaches the sender's other device,
/// and a retry is acked again but not delivered again.
#[test]
fn paho_v311_stamped_delivery() {
    let node = Node::start();
    let port = node.mqtt.port().to_string();
    paho(
        "stamped.py",
        &["127.0.0.1", &port, &token("alice"), &token("bob")],
    );
}

#[test]
fn paho_v5_stamped_delivery() {
    let node = Node::start();
    let port = node.mqtt.port().to_string();
    paho(
        "stamped.py",
        &["127.0.0.1", &port, &token("alice"), &token("bob"), "--v5"],
    );
}

#[test]
fn paho_v5_denied_publish_gets_0x87_and_an_error_notice() {
    let node = Node::start();
    let port = node.mqtt.port().to_string();
    paho("denied_v5.py", &["127.0.0.1", &port, &token("alice")]);
}

/// A unique topic prefix, so runs against a shared broker do not see each other.
fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test/std-{}-{nanos}", std::process::id())
}

/// docs/protocol.md "Standard MQTT": a generic MQTT 5 client (paho, anonymous, topics
/// outside `im/`) gets delivery at min(publish, subscription) QoS, No Local, Retain As
/// Published and Retain Handling 2.
#[test]
fn paho_v5_standard_delivery_and_subscription_options() {
    let node = Node::builder()
        .toml(&format!(
            "[auth]\njwt_secret = \"{}\"\nallow_anonymous = true\n\
             [[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"test/#\"\n",
            common::SECRET
        ))
        .start();
    let port = node.mqtt.port().to_string();
    paho("standard_v5.py", &["127.0.0.1", &port, &unique_prefix()]);
}

/// The same script against the reference broker (the Mosquitto at 127.0.0.1:1883), so the
/// expectations above are MQTT's, not roost's.
#[test]
fn paho_v5_standard_delivery_reference_mosquitto() {
    paho("standard_v5.py", &["127.0.0.1", "1883", &unique_prefix()]);
}

/// Open mode as issue 15 tried it: anonymous clients, one rule allowing `#` outside `im/`.
fn open_node(rules: &str) -> Node {
    // Direct delivery: the wildcard scripts end each round with a marker outside `im/`,
    // which must come after the chat messages sent before it (a stamped copy would wait
    // for its commit). Who may read what is the same under both deliveries.
    Node::builder()
        .toml(&format!(
            "[auth]\njwt_secret = \"{}\"\nallow_anonymous = true\n\
             [history]\ndelivery = \"direct\"\n{rules}",
            common::SECRET
        ))
        .start()
}

const ALLOW_ALL: &str = "[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"#\"\n";

/// Runs one case of tests/python/wildcards.py on a node in open mode (one rule allowing
/// `#`) and on the reference broker (the Mosquitto at 127.0.0.1:1883), so the expectations
/// are MQTT's, not roost's. v3.1.1 and v5 each.
fn root_wildcards_case(case: &str) {
    let node = open_node(ALLOW_ALL);
    let port = node.mqtt.port().to_string();
    paho(
        "wildcards.py",
        &["127.0.0.1", &port, &unique_prefix(), case],
    );
    paho(
        "wildcards.py",
        &["127.0.0.1", "1883", &unique_prefix(), case],
    );
}

/// docs/protocol.md "Standard MQTT": `#` and `+/+/+` are granted and deliver what they match.
#[test]
fn paho_root_wildcards_deliver() {
    root_wildcards_case("root");
}

/// Retained messages come through `#` and `+/+/+` on subscribe, with the retain flag.
#[test]
fn paho_root_wildcards_get_retained_messages() {
    root_wildcards_case("ret");
}

/// A persistent session subscribed with `+/+/oq/+` gets what was published while it was away.
#[test]
fn paho_root_wildcards_offline_queueing() {
    root_wildcards_case("oq");
}

/// After UNSUBSCRIBE `#` nothing more comes through it.
#[test]
fn paho_root_wildcards_unsubscribe() {
    root_wildcards_case("unsub");
}

/// Overlapping `+/+/ov/#` (QoS 2) and `#` (QoS 1): the message arrives at QoS 2, at most
/// one copy per subscription.
#[test]
fn paho_root_wildcards_overlapping_subscriptions() {
    root_wildcards_case("over");
}

/// docs/protocol.md section 3: `#`, `+/+/+/+`, `im/#` and `$share/g/#` (v3.1.1 and v5, token
/// users and anonymous ones) deliver what the user may read, live and retained, and nothing
/// else: no other user's DMs, signals, groups, notices or requests, nothing a config rule
/// keeps from them. Per delivery, with a receive maximum of 2 for the dropped QoS 1 ones,
/// and for a persistent session resumed with `#` (its queue is checked too).
#[test]
fn paho_root_wildcards_never_leak() {
    let rules = "\
        [[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"devices/{user}/#\"\n\
        [[acl.rules]]\npermission = \"deny\"\naction = \"all\"\ntopic = \"devices/#\"\n\
        [[acl.rules]]\npermission = \"deny\"\naction = \"subscribe\"\ntopic = \"private/#\"\n";
    let node = open_node(&format!("{rules}{ALLOW_ALL}"));
    let port = node.mqtt.port().to_string();
    let hour = Duration::from_secs(3600);
    let alice = token_with("alice", &["team"], Role::User, hour);
    let bob = token_with("bob", &["team"], Role::User, hour);
    let carol = token_with("carol", &[], Role::User, hour);
    paho(
        "wildcards_acl.py",
        &["127.0.0.1", &port, &alice, &bob, &carol],
    );
}

/// docs/operating.md `limits.max_queued_messages`: a persistent session away while 10
/// messages (3 at QoS 0) queue up gets the newest 5 QoS 1 ones on resume (v3.1.1 and v5);
/// the drop is logged with user, client id and count, and counted in /metrics.
#[tokio::test]
async fn paho_offline_queue_is_bounded_oldest_qos0_first() {
    let node = open_node(&format!("[limits]\nmax_queued_messages = 5\n{ALLOW_ALL}"));
    let port = node.mqtt.port().to_string();
    let prefix = unique_prefix();
    paho("offline_bound.py", &["127.0.0.1", &port, &prefix]);
    let unique = &prefix[prefix.len() - 16..];
    for version in ["v3", "v5"] {
        let client = format!("@anon:b{unique}-{version}-away");
        let user = format!("user=anon-b{unique}-{version}-away");
        node.wait_for_log(&[
            "offline queue over limits.max_queued_messages",
            &client,
            &user,
            "dropped=5",
            "dropped_qos0=3",
        ])
        .await;
    }
    let metrics = common::http::http_get(node.http, "/metrics", None, Duration::from_secs(10));
    assert!(
        metrics
            .body
            .contains("roost_offline_queue_dropped_total{qos=\"0\"} 6"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("roost_offline_queue_dropped_total{qos=\"1-2\"} 4"),
        "{}",
        metrics.body
    );
}

/// docs/protocol.md section 1 and "Standard MQTT" (issue 15): a generic MQTT 5 client (paho,
/// anonymous) gets v5 sessions kept by their Session Expiry Interval whatever Clean Start
/// says, assigned client ids, UNSUBACK 0x11, QoS 1 acknowledged on a `$app/...` topic, topic
/// aliases, the QoS 2 flow (unknown PUBREL, PUBREC with an error), a refusing CONNACK within
/// the client's Maximum Packet Size, a will's user properties in order, and a repeated
/// SUBSCRIBE replacing the subscription.
#[test]
fn paho_v5_sessions_handshake_and_packets() {
    let node = Node::builder()
        .toml(&format!(
            "[auth]\njwt_secret = \"{}\"\nallow_anonymous = true\n\
             [[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"test/#\"\n\
             [[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"$app/#\"\n",
            common::SECRET
        ))
        .start();
    let port = node.mqtt.port().to_string();
    paho("conformance_v5.py", &["127.0.0.1", &port, &unique_prefix()]);
}

/// The same script against the reference broker (the Mosquitto at 127.0.0.1:1883).
#[test]
fn paho_v5_sessions_handshake_and_packets_reference_mosquitto() {
    paho(
        "conformance_v5.py",
        &["127.0.0.1", "1883", &unique_prefix()],
    );
}

/// docs/protocol.md "Standard MQTT" (issue 15, rumqttd patch 25): a v5 client with Receive
/// Maximum 2 subscribing at QoS 1 to a filter matching 6 retained topics gets all 6, with
/// the retain flag, as it acknowledges them, then the live messages. On a node in open mode
/// and on the reference broker (the Mosquitto at 127.0.0.1:1883).
#[test]
fn paho_v5_retained_messages_beyond_the_receive_maximum_all_arrive() {
    let node =
        open_node("[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"test/#\"\n");
    let port = node.mqtt.port().to_string();
    paho("retained_v5.py", &["127.0.0.1", &port, &unique_prefix()]);
    paho("retained_v5.py", &["127.0.0.1", "1883", &unique_prefix()]);
}

/// docs/protocol.md section 1 (issue 15): a will whose v5 Response Topic has a wildcard is
/// a Protocol Error (MQTT 5 3.1.3.2.6): CONNACK 0x82, logged with its cause; a plain one is
/// accepted. The reference Mosquitto accepts the wildcard (CONNACK 0): run against it too,
/// so the documented difference stays true.
#[tokio::test]
async fn paho_v5_a_will_response_topic_with_a_wildcard_is_refused() {
    let node =
        open_node("[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"test/#\"\n");
    let port = node.mqtt.port().to_string();
    paho(
        "will_response_v5.py",
        &["127.0.0.1", &port, &unique_prefix(), "0x82"],
    );
    node.wait_for_log(&["sign-in refused", "cause=\"will_response_topic\""])
        .await;
    paho(
        "will_response_v5.py",
        &["127.0.0.1", "1883", &unique_prefix(), "0"],
    );
}
