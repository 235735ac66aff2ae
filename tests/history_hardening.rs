//! History under bad input and heavy users, end to end (real nodes, real MQTT clients,
//! a real PostgreSQL on 127.0.0.1:5432):
//! - a message the database refuses (a chat `id` with a NUL: PostgreSQL cannot store it)
//!   never stalls anyone else's `ack` or requests, and its sender gets an `error` notice
//!   with its `id` instead of an `ack`; with `roost history-worker` it is acknowledged to
//!   the broker, so it does not come back after a restart;
//! - one user's heavy requests do not delay other users' acks and answers: `conversations`
//!   comes in bounded pages, requests over a user's rate are refused at once, and stores
//!   and other users go before a heavy user's waiting requests.
mod common;

use common::client::{options, Client};
use common::history::{send_until_acked, HistNode, Peer, Worker};
use common::{token_with, Backend};
use roost_auth::Role;
use serde_json::{json, Value};
use std::time::Duration;

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

// ---- fairness -------------------------------------------------------------------------------

/// Gives `heavy` 20,000 DM conversations, each with a last message of about 400 bytes
/// (7.7 MB listed at once), straight in the database; gids from 1,001 on (the node's own
/// messages so far have fewer).
fn seed_heavy(node: &HistNode) {
    node.sql(
        "INSERT INTO history_messages (gid, conv, seq, sender, msg_id, ts, payload) \
         SELECT 1000 + g, 'dm:heavy:u' || lpad(g::text, 5, '0'), 1, 'heavy', 'm' || g, 0, \
         '{\"id\":\"m' || g || '\",\"kind\":\"text\",\"body\":\"' || repeat('x', 330) || '\"}' \
         FROM generate_series(1, 20000) g; \
         INSERT INTO history_conversations (conv, dm_a, dm_b, last_seq, last_gid, last_ts) \
         SELECT 'dm:heavy:u' || lpad(g::text, 5, '0'), 'heavy', 'u' || lpad(g::text, 5, '0'), \
         1, 1000 + g, 0 FROM generate_series(1, 20000) g; \
         UPDATE history_head SET last_gid = 21000 WHERE id = 1;",
    );
}

/// A user with 20,000 conversations gets them a page at a time (100 by default, at most
/// 200: a larger `limit` is refused), with `more` and a `cursor` beside the list;
/// following the cursor continues where the page stopped.
#[tokio::test]
async fn conversations_come_in_bounded_pages() {
    let node = HistNode::start(Backend::Postgres);
    let mut heavy = Peer::connect(&node, "heavy", &[]).await;
    send_until_acked(&mut heavy, "probe", "p1").await;
    seed_heavy(&node);

    let first = heavy.request("conversations", json!({})).await;
    let list = first["result"].as_array().expect("a list");
    assert_eq!(list.len(), 100, "default page");
    assert_eq!(first["more"], true, "{}", first["more"]);
    assert_eq!(list[0]["conv"], "dm:heavy:u20000", "newest first");
    let cursor = first["cursor"].as_str().expect("a cursor").to_owned();

    let refused = heavy
        .refused("conversations", json!({"cursor": cursor, "limit": 1000}))
        .await;
    assert_eq!(refused, "invalid_request", "a limit over 200 is refused");
    let next = heavy
        .request("conversations", json!({"cursor": cursor, "limit": 200}))
        .await;
    let list = next["result"].as_array().expect("a list");
    assert_eq!(list.len(), 200, "the largest page");
    assert_eq!(
        list[0]["conv"], "dm:heavy:u19900",
        "continues after the first page"
    );
    assert_eq!(next["more"], true);
}

/// Requests over a user's rate (`max_requests_per_second = 5` here) are answered at once
/// with `rate_limited`; every request gets exactly one answer, and other users are served.
#[tokio::test]
async fn a_flood_of_requests_is_rate_limited() {
    let node = HistNode::start_with(Backend::Postgres, "max_requests_per_second = 5", "");
    let mut heavy = Peer::connect(&node, "heavy", &[]).await;
    let mut light = Peer::connect(&node, "light", &[]).await;
    send_until_acked(&mut light, "probe", "p1").await;

    let reqs: Vec<String> = (0..30).map(|n| format!("flood-{n}")).collect();
    for req in &reqs {
        let body = json!({"req": req, "method": "conversations", "params": {}});
        heavy.publish("im/req/heavy", body.to_string()).await;
    }
    let mut limited = 0;
    for req in &reqs {
        let answer = heavy
            .notice(&format!("answer to {req}"), |v| {
                v["type"] == "result" && v["req"] == req.as_str()
            })
            .await;
        match answer.get("error") {
            Some(e) => {
                assert_eq!(e["code"], "rate_limited", "{answer}");
                limited += 1;
            }
            None => assert!(answer["result"].is_array(), "{answer}"),
        }
    }
    assert!(limited >= 1, "30 requests at once, none limited");
    assert!(
        limited <= 25,
        "at least the burst of 5 is served, {limited} limited"
    );
    assert!(
        heavy
            .kept_notices()
            .iter()
            .all(|v| v["type"] != "result" || !reqs.iter().any(|r| v["req"] == r.as_str())),
        "a request answered twice"
    );
    let page = light.history("dm:light:probe", json!({})).await;
    assert_eq!(page["messages"][0]["id"], "p1");
}

/// While a user with 20,000 conversations has 15 `conversations` requests waiting, another
/// user's message is acked and their request answered before the heavy user's requests
/// are all done: stores go first, and users take turns. The order is seen by one service
/// client subscribed to every `im/sys/+`, which gets the notices in the order the history
/// service publishes them.
#[tokio::test]
async fn a_heavy_user_does_not_hold_up_others() {
    let node = HistNode::start(Backend::Postgres);
    let heavy = Peer::connect(&node, "heavy", &[]).await;
    let mut light = Peer::connect(&node, "light", &[]).await;
    send_until_acked(&mut light, "probe", "p1").await;
    seed_heavy(&node);

    let token = token_with("monitor", &[], Role::Service, Duration::from_secs(3600));
    let mut opts = options(&node, "monitor", "monitor", &token);
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let mut monitor = Client::connect(opts).await.expect("monitor signs in");
    assert_eq!(monitor.subscribe("im/sys/+").await, 1);

    let heavy_reqs = 15;
    for n in 0..heavy_reqs {
        let body =
            json!({"req": format!("h{n}"), "method": "conversations", "params": {"limit": 200}});
        heavy.publish("im/req/heavy", body.to_string()).await;
    }
    // Once the service is busy with heavy's requests, light sends a message and asks.
    let mut order = Vec::new();
    loop {
        let (topic, payload) = monitor.next_publish().await;
        let v: Value = serde_json::from_str(&payload).unwrap();
        if topic == "im/sys/heavy" && v["type"] == "result" {
            order.push(format!("heavy {}", v["req"]));
            break;
        }
    }
    light.dm("probe", "l1", "hello").await;
    let body = json!({"req": "l-req", "method": "history", "params": {"conv": "dm:light:probe"}});
    light.publish("im/req/light", body.to_string()).await;
    let mut heavy_done = 1;
    let mut light_done = 0;
    while heavy_done < heavy_reqs || light_done < 2 {
        let (topic, payload) = monitor.next_publish().await;
        let v: Value = serde_json::from_str(&payload).unwrap();
        if topic == "im/sys/heavy" && v["type"] == "result" {
            heavy_done += 1;
            order.push(format!("heavy {}", v["req"]));
        } else if topic == "im/sys/light" && (v["type"] == "ack" || v["req"] == "l-req") {
            light_done += 1;
            order.push(format!("light {}", v["type"]));
        }
    }
    let last_light = order.iter().rposition(|o| o.starts_with("light")).unwrap();
    let heavy_after = order[last_light..]
        .iter()
        .filter(|o| o.starts_with("heavy"))
        .count();
    assert!(
        heavy_after >= 5,
        "light waited for (nearly) all of heavy's requests: {order:?}"
    );
    light.ack("l1").await;
}
