//! History under bad input and heavy users, end to end (real nodes, real MQTT clients,
//! a real PostgreSQL on 127.0.0.1:5432):
//! - a message the database refuses (a chat `id` with a NUL: PostgreSQL cannot store it)
//!   never stalls anyone else's `ack` or requests, and its sender gets an `error` notice
//!   with its `id` instead of an `ack`; with `roost history-worker` it is acknowledged to
//!   the broker, so it does not come back after a restart;
//! - one user's heavy requests do not delay other users' acks and answers (see the
//!   fairness tests below).
mod common;

use common::history::{send_until_acked, Backend, HistNode, Peer, Worker};
use serde_json::{json, Value};

/// A chat payload whose `id` holds a NUL: valid JSON (`\u0000`), which PostgreSQL text
/// cannot hold. (The node may refuse it at the edge; either way the user hears back, by
/// `id`, and nobody else waits.)
const POISON: &str = r#"{"id":"a\u0000b","kind":"text","body":"poison"}"#;

fn is_poison_error(v: &Value) -> bool {
    v["type"] == "error" && v["id"] == "a\u{0}b"
}

/// Poison, then good messages from another user and the poisoner: the good ones are acked,
/// the poison gets an `invalid_payload` error carrying its id, requests are answered.
async fn poison_does_not_stall(node: &HistNode, alice: &mut Peer, carol: &mut Peer) {
    alice.publish("im/dm/bob/alice", POISON).await;
    carol.dm("bob", "c1", "after the poison").await;
    assert_eq!(carol.ack("c1").await["seq"], 1);
    let error = alice
        .notice("error notice for the poison", is_poison_error)
        .await;
    assert_eq!(error["code"], "invalid_payload", "{error}");
    alice.dm("bob", "a2", "fine").await;
    assert_eq!(alice.ack("a2").await["seq"], 1, "the poison took no seq");
    let page = carol.history("dm:bob:carol", json!({})).await;
    assert_eq!(page["messages"][0]["id"], "c1", "{page}");
    assert_eq!(node.rows("dm:alice:bob"), ["1|alice|a2"]);
}

/// The history service inside the node.
#[tokio::test]
async fn a_message_postgres_refuses_never_stalls_history() {
    let node = HistNode::start(Backend::Postgres);
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    let mut carol = Peer::connect(&node, "carol", &[]).await;
    poison_does_not_stall(&node, &mut alice, &mut carol).await;
}

/// With `roost history-worker`: same, and after the worker restarts the poison is not
/// delivered to it again (its first notice for alice after the restart is the ack of her
/// next message, with no second error before it).
#[tokio::test]
async fn a_worker_drops_a_refused_message_for_good() {
    let node = HistNode::start_with(Backend::Postgres, "service = false", "");
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    let mut carol = Peer::connect(&node, "carol", &[]).await;
    let worker = Worker::start(&node, "w1");
    let mut dave = Peer::connect(&node, "dave", &[]).await;
    send_until_acked(&mut dave, "erin", "probe").await;
    poison_does_not_stall(&node, &mut alice, &mut carol).await;

    drop(worker);
    let _worker = Worker::start(&node, "w1");
    alice.dm("bob", "a3", "after the restart").await;
    assert_eq!(alice.ack("a3").await["seq"], 2);
    let errors: Vec<Value> = alice
        .kept_notices()
        .into_iter()
        .filter(is_poison_error)
        .collect();
    assert!(errors.is_empty(), "the poison came back: {errors:?}");
    assert_eq!(node.rows("dm:alice:bob"), ["1|alice|a2", "2|alice|a3"]);
}
