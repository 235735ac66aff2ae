//! Third-party MQTT clients against a real node: what a user gets with Mosquitto's command
//! line tools and with Python paho-mqtt, tokens as passwords, and the ACL of docs/protocol.md
//! section 3.
mod common;

use common::tools::{describe, paho, run_bounded, Subscriber};
use common::{token, Node};
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
