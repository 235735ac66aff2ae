//! The first thing a user does: two people sign in and exchange a direct message.
mod common;

use common::client::{Client, Mqtt3};
use common::Node;

#[tokio::test]
async fn alice_sends_bob_a_direct_message() {
    let node = Node::start();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let alice = Client::<Mqtt3>::user(&node, "alice").await;
    alice
        .publish(
            "im/dm/bob/alice",
            r#"{"id":"m1","kind":"text","body":"hi"}"#,
        )
        .await;
    let (topic, payload) = bob.next_publish().await;
    assert_eq!(topic, "im/dm/bob/alice");
    assert!(payload.contains("\"body\":\"hi\""));
}
