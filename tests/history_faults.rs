//! History when its database goes away (issue 3, "Faults"), on a PostgreSQL server of the
//! test's own (initdb + pg_ctl on a free port) so it can be stopped and restarted without
//! disturbing anything else.
//!
//! The rules: under direct delivery live chat keeps flowing, under stamped delivery it waits
//! for the database; no `ack` is sent for a message not committed; when the database is
//! back, history catches up: every message is acked (and, stamped, delivered), stored
//! exactly once, with gapless seqs; and a client retry of a message it never saw acked is
//! stored once (and, stamped, delivered once).
mod common;

use common::history::{chat, send_until_acked, HistNode, Peer, Worker, HTTP_WAIT};
use common::http::http_get;
use common::pg::{PgDb, PrivatePg};
use common::{token, Backend, Node};
use serde_json::{json, Value};
use std::time::Duration;

/// Bound on each wait across an outage (the service backs off up to 5 s between tries, and
/// the connection pool waits up to 10 s for a connection).
const LONG: Duration = Duration::from_secs(30);
/// How long the test watches for an ack that must not come while the database is down.
const QUIET: Duration = Duration::from_secs(3);

/// A node on `pg` with direct delivery: live chat does not wait for the database.
fn node_on(pg: &PrivatePg) -> Node {
    node_delivering(pg, "direct")
}

fn node_delivering(pg: &PrivatePg, delivery: &str) -> Node {
    Node::builder()
        .toml(&format!(
            "[history]\ndatabase_url = \"{}\"\ndelivery = \"{delivery}\"\n",
            pg.url()
        ))
        .start()
}

/// Alice and bob signed in, waiting up to `LONG` for what they expect, bob on his inbox.
async fn alice_and_bob(node: &Node) -> (Peer, Peer) {
    let mut alice = Peer::connect(node, "alice", &[]).await;
    alice.wait = LONG;
    let mut bob = Peer::connect(node, "bob", &[]).await;
    bob.wait = LONG;
    bob.subscribe("im/dm/bob/+").await;
    (alice, bob)
}

/// The stored rows as `seq|sender|msg_id`, in seq order.
fn rows(pg: &PrivatePg, conv: &str) -> Vec<String> {
    pg.query(&format!(
        "SELECT seq, sender, msg_id FROM history_messages WHERE conv = '{conv}' ORDER BY seq"
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Postgres stops in the middle of a conversation: chat goes on, nothing is acked, HTTP says
/// 503; Postgres returns: every message is acked with its seq, a retry is stored once, a
/// request sent during the outage is answered with everything, and the database holds each
/// message exactly once with seqs 1..n.
#[tokio::test]
async fn database_outage_chat_flows_and_history_catches_up() {
    let mut pg = PrivatePg::start();
    let node = node_on(&pg);
    let (mut alice, mut bob) = alice_and_bob(&node).await;

    alice.dm("bob", "m0", "before").await;
    assert_eq!(alice.ack("m0").await["seq"], 1);
    assert_eq!(bob.next_chat().await.1["id"], "m0");

    // ---- the outage
    pg.stop();
    // The HTTP API answers 503 while the database is away (after its pool gives up).
    let http = node.http;
    let bob_token = token("bob");
    let during = std::thread::spawn(move || {
        let answer = http_get(
            http,
            "/api/v1/conversations/dm:alice:bob/messages",
            Some(&format!("Bearer {bob_token}")),
            HTTP_WAIT,
        );
        (answer.status, answer.json())
    });

    let sent: Vec<String> = (1..=5).map(|n| format!("m{n}")).collect();
    for id in &sent {
        alice.dm("bob", id, "during the outage").await;
    }
    // Chat flows: bob gets each message live, in order.
    for id in &sent {
        let (topic, m) = bob.next_chat().await;
        assert_eq!((topic.as_str(), &m["id"]), ("im/dm/bob/alice", &json!(id)));
    }
    // A request sent now waits for the database too.
    bob.publish(
        "im/req/bob",
        json!({"req": "during", "method": "history", "params": {"conv": "dm:alice:bob"}})
            .to_string(),
    )
    .await;
    // No ack (nor answer) while the database is down: nothing arrives in this window.
    let early = alice.notice_within(QUIET, |n| n["type"] == "ack").await;
    assert!(
        early.is_none(),
        "acked while the database was down: {early:?}"
    );
    assert!(
        bob.kept_notices().iter().all(|n| n["type"] != "result"),
        "answered from a stopped database: {:?}",
        bob.kept_notices()
    );
    let (status, body) = during.join().unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        alice.kept_notices().iter().all(|n| n["type"] != "ack"),
        "acked while the database was down: {:?}",
        alice.kept_notices()
    );

    // ---- the database returns
    pg.start_again();
    // The client never saw m3 acked and sends it again.
    alice.dm("bob", "m3", "the retry").await;
    let acks = alice.acks(&sent).await;
    for (n, ack) in acks.iter().enumerate() {
        assert_eq!(ack["conv"], "dm:alice:bob", "{ack}");
        assert_eq!(ack["seq"], n as i64 + 2, "{ack}");
    }
    let retry_ack = alice.ack("m3").await;
    assert_eq!(retry_ack, acks[2], "the retry is acked as the stored m3");
    // The request from the outage is answered, with everything sent before it.
    let answer = bob
        .notice("the answer to the request sent during the outage", |n| {
            n["type"] == "result" && n["req"] == "during"
        })
        .await;
    let ids: Vec<&str> = answer["result"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m0", "m1", "m2", "m3", "m4", "m5"], "{answer}");

    // Back to normal.
    alice.dm("bob", "m6", "after").await;
    assert_eq!(alice.ack("m6").await["seq"], 7);
    let answer = http_get(
        node.http,
        "/api/v1/conversations/dm:alice:bob/messages",
        Some(&format!("Bearer {}", token("bob"))),
        HTTP_WAIT,
    );
    let (status, body) = (answer.status, answer.json());
    assert_eq!(status, 200, "{body}");
    let m3 = &body["messages"][3];
    assert_eq!(
        (&m3["id"], &m3["payload"]["body"]),
        (&json!("m3"), &json!("during the outage")),
        "the first copy is the message: {body}"
    );

    // Each message exactly once, seqs 1..7.
    let want: Vec<String> = (0..=6).map(|n| format!("{}|alice|m{n}", n + 1)).collect();
    assert_eq!(rows(&pg, "dm:alice:bob"), want);
    assert_eq!(pg.query("SELECT count(*) FROM history_messages"), "7");
}

/// Stamped delivery (the default) while Postgres is down: nothing is delivered nor acked;
/// when it is back every message is delivered once, stamped, in seq order, the retry of
/// one of them included.
#[tokio::test]
async fn database_outage_stamped_delivery_waits_for_the_database() {
    let mut pg = PrivatePg::start();
    let node = node_delivering(&pg, "stamped");
    let (mut alice, mut bob) = alice_and_bob(&node).await;
    alice.dm("bob", "s0", "before").await;
    let first = alice.ack("s0").await;
    let (_, copy) = bob.next_chat().await;
    assert_eq!((&copy["id"], &copy["seq"]), (&json!("s0"), &first["seq"]));

    pg.stop();
    let sent: Vec<String> = (1..=3).map(|n| format!("s{n}")).collect();
    for id in &sent {
        alice.dm("bob", id, "during the outage").await;
    }
    let early = bob
        .take(QUIET, |p| {
            matches!(p, rumqttc::v5::mqttbytes::v5::Packet::Publish(p) if p.topic.starts_with(b"im/dm/"))
        })
        .await;
    assert!(
        early.is_none(),
        "delivered while the database was down: {early:?}"
    );
    assert!(
        alice.kept_notices().iter().all(|n| n["type"] != "ack"),
        "acked while the database was down"
    );

    pg.start_again();
    alice.dm("bob", "s2", "the retry").await;
    let acks = alice.acks(&sent).await;
    for (n, ack) in acks.iter().enumerate() {
        let (topic, copy) = bob.next_chat().await;
        assert_eq!(topic, "im/dm/bob/alice");
        assert_eq!(
            (
                &copy["id"],
                &copy["seq"],
                &copy["conv"],
                &copy["ts"],
                &copy["from"]
            ),
            (
                &ack["id"],
                &json!(n + 2),
                &ack["conv"],
                &ack["ts"],
                &json!("alice")
            ),
            "{copy}"
        );
        assert_eq!(copy["body"], "during the outage");
    }
    assert_eq!(
        alice.ack("s2").await,
        acks[1],
        "the retry is acked as the stored s2"
    );
    alice.dm("bob", "s4", "after").await;
    assert_eq!(bob.next_chat().await.1["id"], "s4", "s2 came twice");
    assert_eq!(
        rows(&pg, "dm:alice:bob"),
        [
            "1|alice|s0",
            "2|alice|s1",
            "3|alice|s2",
            "4|alice|s3",
            "5|alice|s4"
        ]
    );
}

/// A node whose database is down when it starts: it serves chat anyway, acks nothing, and
/// once the database is up it stores and acks what was sent meanwhile.
#[tokio::test]
async fn node_starts_and_chats_while_the_database_is_down() {
    let mut pg = PrivatePg::start();
    pg.stop();
    let node = node_on(&pg);
    let (mut alice, mut bob) = alice_and_bob(&node).await;

    let sent: Vec<String> = (1..=3).map(|n| format!("e{n}")).collect();
    for id in &sent {
        alice.publish("im/dm/bob/alice", chat(id, "early")).await;
    }
    for id in &sent {
        assert_eq!(bob.next_chat().await.1["id"], json!(id));
    }
    let early: Option<Value> = alice.notice_within(QUIET, |n| n["type"] == "ack").await;
    assert!(early.is_none(), "acked with no database: {early:?}");

    pg.start_again();
    let acks = alice.acks(&sent).await;
    for (n, ack) in acks.iter().enumerate() {
        assert_eq!(ack["seq"], n as i64 + 1, "{ack}");
    }
    assert_eq!(
        rows(&pg, "dm:alice:bob"),
        ["1|alice|e1", "2|alice|e2", "3|alice|e3"]
    );
}

/// The node logs which database it is waiting for, but never a password in it: neither the
/// user info's nor a `password` query parameter's.
#[tokio::test]
async fn database_passwords_never_reach_the_log() {
    // A port that cannot be: the node fails to connect at once, keeps retrying and says so
    // in its log (a closed port would take the pool's whole connect timeout to report).
    let url = "postgres://roost:hunter1@127.0.0.1:99999/db?user=roost&password=hunter2";
    let node = Node::builder()
        .toml(&format!("[history]\ndatabase_url = \"{url}\"\n"))
        .start();
    node.wait_for_log(&["history database not reachable"]).await;
    let log = node.log_text();
    assert!(!log.contains("hunter"), "a password was logged:\n{log}");
    assert!(
        log.contains("postgres://roost:***@127.0.0.1:99999/db?user=roost&password=***"),
        "{log}"
    );
}

// ---- history workers that die mid-batch ---------------------------------------------------

/// Waits (bounded) until the node has logged the end of `client_id`'s connection.
async fn wait_until_gone(node: &Node, client_id: &str) {
    let needle = format!("client_id=\"{client_id}\"");
    node.wait_for_log_where(LONG, &format!("about {client_id} leaving"), |l| {
        l.contains(&needle) && (l.contains(" closed") || l.contains("disconnected"))
    })
    .await;
}

/// The node still routes after a client left: `from` sends `id` to `to`, who must receive
/// it, and the router must not have panicked.
async fn assert_node_still_routes(node: &Node, from: &Peer, to: &mut Peer, id: &str, after: &str) {
    from.dm(&to.user, id, "still routing?").await;
    let got = to
        .try_take(LONG, |p| {
            matches!(p, rumqttc::v5::mqttbytes::v5::Packet::Publish(p)
                if serde_json::from_slice::<Value>(&p.payload).is_ok_and(|v| v["id"] == id))
        })
        .await;
    let log = node.log_text();
    match got {
        Ok(Some(_)) => {}
        Ok(None) => panic!("{id} was not delivered after {after}; node log:\n{log}"),
        Err(e) => panic!(
            "{}'s connection ended ({e}) after {after}: the node's router is gone; node log:\n{log}",
            to.user
        ),
    }
    assert!(
        !log.contains("panicked"),
        "the node panicked after {after}; log:\n{log}"
    );
}

/// Waits (bounded) until at least `n` sessions of `db` wait for a lock: the workers are
/// stuck writing, holding what they were delivered unacknowledged.
async fn wait_for_lock_waiters(db: &PgDb, n: u32) {
    let deadline = tokio::time::Instant::now() + LONG;
    while db.lock_waiters() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} writers ever waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Receives chat messages until `last` (by id); returns the ids seen.
async fn live_until(peer: &mut Peer, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let (_, m) = peer.next_chat().await;
        let id = m["id"].as_str().unwrap_or_default().to_owned();
        seen.push(id.clone());
        if id == last {
            return seen;
        }
    }
}

/// The only `roost history-worker` of a node is killed while it holds deliveries it has
/// not acknowledged (its write waits behind a lock on the database). The node must carry on
/// (live chat, sign-ins), and when the worker returns under the same name (its persistent
/// session) it gets those messages again, plus what was sent while it was away: all acked,
/// each stored once, seqs gapless.
#[tokio::test]
async fn the_only_worker_dies_mid_batch_and_gets_its_messages_again() {
    let node = HistNode::start_with(Backend::Postgres, "service = false", "");
    let db = node.db.as_ref().unwrap();
    let (mut alice, mut bob) = alice_and_bob(&node).await;

    let worker = Worker::start(&node, "w1");
    assert_eq!(send_until_acked(&mut alice, "bob", "probe").await["seq"], 1);

    let lock = db.lock_table("history_head").await;
    alice.dm("bob", "m1", "x").await;
    alice.dm("bob", "m2", "x").await;
    live_until(&mut bob, "m2").await;
    wait_for_lock_waiters(db, 1).await;
    assert!(
        alice
            .kept_notices()
            .iter()
            .all(|n| !(n["type"] == "ack" && n["id"] != "probe")),
        "acked before commit: {:?}",
        alice.kept_notices()
    );

    drop(worker);
    wait_until_gone(&node, "roost-history:w1").await;
    // Chat goes on, and people can still sign in.
    assert_node_still_routes(
        &node,
        &alice,
        &mut bob,
        "m3",
        "the only worker left with unacknowledged deliveries",
    )
    .await;
    let _carol = Peer::connect(&node, "carol", &[]).await;

    drop(lock);
    let _worker = Worker::start(&node, "w1");
    for (n, id) in ["m1", "m2", "m3"].into_iter().enumerate() {
        let ack = alice.ack(id).await;
        assert_eq!(
            (&ack["conv"], &ack["seq"]),
            (&json!("dm:alice:bob"), &json!(n + 2)),
            "{ack}"
        );
    }
    assert_eq!(
        node.rows("dm:alice:bob"),
        ["1|alice|probe", "2|alice|m1", "3|alice|m2", "4|alice|m3"]
    );
}

/// One of two workers is killed while both hold unacknowledged deliveries: the other one
/// stores the dead one's messages too; every message is acked and stored once.
#[tokio::test]
async fn one_of_two_workers_dies_mid_batch_and_the_other_stores_its_messages() {
    let node = HistNode::start_with(Backend::Postgres, "service = false", "");
    let db = node.db.as_ref().unwrap();
    let (mut alice, mut bob) = alice_and_bob(&node).await;

    let w1 = Worker::start(&node, "w1");
    send_until_acked(&mut alice, "bob", "probe-1").await;
    let w2 = Worker::start(&node, "w2");
    let mut probes = 1;
    while w2.stored() == 0 {
        assert!(probes < 60, "w2 never stored anything:\n{}", w2.log_text());
        probes += 1;
        send_until_acked(&mut alice, "bob", &format!("probe-{probes}")).await;
    }

    let lock = db.lock_table("history_head").await;
    let sent: Vec<String> = (1..=6).map(|n| format!("n{n}")).collect();
    for id in &sent {
        alice.dm("bob", id, "x").await;
    }
    live_until(&mut bob, "n6").await;
    wait_for_lock_waiters(db, 2).await;

    drop(w1);
    wait_until_gone(&node, "roost-history:w1").await;
    assert_node_still_routes(&node, &alice, &mut bob, "n7", "one of two workers left").await;
    drop(lock);
    // The survivor stores its share; the dead worker's share waits for it (MQTT lets a
    // server keep a shared-subscription message for the session it was sent to) and is
    // stored when it comes back under its name.
    let _w1 = Worker::start(&node, "w1");

    let sent: Vec<String> = (1..=7).map(|n| format!("n{n}")).collect();
    let acks = alice.acks(&sent).await;
    let mut seqs: Vec<i64> = acks.iter().map(|a| a["seq"].as_i64().unwrap()).collect();
    seqs.sort();
    let first = probes as i64 + 1;
    assert_eq!(seqs, (first..first + 7).collect::<Vec<_>>());
    let total = probes + 7;
    assert_eq!(
        node.sql(
            "SELECT count(*), count(DISTINCT msg_id), min(seq), max(seq) FROM history_messages"
        ),
        format!("{total}|{total}|1|{total}")
    );
    drop(w2);
}
