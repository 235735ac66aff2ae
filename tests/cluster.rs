//! Two roost nodes joined through a private three-server NATS cluster (docs/cluster.md):
//! chat crosses between nodes once, in order, only where someone subscribes. Real
//! `roost serve` processes, real `nats-server`s, one PostgreSQL history database shared by
//! both nodes, as a cluster must have.

mod common;

use common::cluster_toml;
use common::history::Peer;
use common::http::http_get;
use common::nats::TestCluster;
use common::pg::PgDb;
use common::Node;
use rumqttc::v5::mqttbytes::v5::Packet;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long interest may take to reach NATS after a SUBSCRIBE.
const INTEREST_WAIT: Duration = Duration::from_secs(15);

/// A node of the cluster, named `node_id`, connected to NATS server `server`.
fn node(nats: &TestCluster, server: usize, node_id: &str, db: &PgDb) -> Node {
    Node::builder()
        .toml(&cluster_toml(nats, server, node_id, db, ""))
        .start()
}

/// Waits until the NATS connection of node `node_id` subscribes (`held`) or no longer
/// subscribes `subject`.
fn wait_subject(nats: &TestCluster, node_id: &str, subject: &str, held: bool) {
    let name = format!("roost-{node_id}");
    let deadline = Instant::now() + INTEREST_WAIT;
    loop {
        let subjects = nats.subscriptions(&name);
        if subjects.iter().any(|s| s == subject) == held {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {subject} {} after {INTEREST_WAIT:?}; it holds {subjects:?}",
            if held {
                "not subscribed"
            } else {
                "still subscribed"
            }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The bodies of the chat messages `peer` receives, up to and including `last`.
async fn bodies_until(peer: &mut Peer, last: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let (_topic, payload) = peer.next_chat().await;
        let body = payload["body"].as_str().unwrap_or_default().to_owned();
        bodies.push(body.clone());
        if body == last {
            return bodies;
        }
    }
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_cross_nodes_both_ways_once_and_in_order() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let mut alice = Peer::connect(&a, "alice", &[]).await;
    let mut bob = Peer::connect(&b, "bob", &[]).await;
    alice.subscribe("im/dm/alice/+").await;
    bob.subscribe("im/dm/bob/+").await;
    wait_subject(&nats, "a", "roost.m.im.dm.alice.*", true);
    wait_subject(&nats, "b", "roost.m.im.dm.bob.*", true);

    let sent = numbered("to-bob-", 50);
    for (i, body) in sent.iter().enumerate() {
        alice.dm("bob", &format!("ab{i}"), body).await;
    }
    assert_eq!(bodies_until(&mut bob, "to-bob-50").await, sent);

    let sent = numbered("to-alice-", 50);
    for (i, body) in sent.iter().enumerate() {
        bob.dm("alice", &format!("ba{i}"), body).await;
    }
    assert_eq!(bodies_until(&mut alice, "to-alice-50").await, sent);

    // Each arrived at QoS 1, and nothing more came: one more message is the next one.
    alice.dm("bob", "ab-last", "last").await;
    assert_eq!(bodies_until(&mut bob, "last").await, ["last"]);
    let late = bob.take(
        Duration::from_millis(300),
        |p| matches!(p, Packet::Publish(p) if p.topic.starts_with(b"im/dm/")),
    );
    assert!(late.await.is_none(), "a second copy reached bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_both_nodes_gets_each_message_once_on_each_device() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 2, "b", &db);
    let alice = Peer::connect(&a, "alice", &[]).await;
    let mut phone = Peer::device(&a, "carol", "phone", &[]).await;
    let mut laptop = Peer::device(&b, "carol", "laptop", &[]).await;
    let mut tablet = Peer::device(&b, "carol", "tablet", &[]).await;
    phone.subscribe("im/dm/carol/+").await;
    laptop.subscribe("im/dm/carol/+").await;
    // Another filter on B matching the same topic: node B holds two NATS subjects that
    // both match, and NATS hands it one copy per subject.
    tablet.subscribe("im/dm/carol/alice").await;
    wait_subject(&nats, "b", "roost.m.im.dm.carol.*", true);
    wait_subject(&nats, "b", "roost.m.im.dm.carol.alice", true);

    for i in 1..=5 {
        alice
            .dm("carol", &format!("c{i}"), &format!("hi-{i}"))
            .await;
    }
    let want = numbered("hi-", 5);
    assert_eq!(bodies_until(&mut phone, "hi-5").await, want, "on node a");
    assert_eq!(bodies_until(&mut laptop, "hi-5").await, want, "on node b");
    assert_eq!(bodies_until(&mut tablet, "hi-5").await, want, "on node b");
    alice.dm("carol", "c-last", "last").await;
    for device in [&mut phone, &mut laptop, &mut tablet] {
        assert_eq!(
            bodies_until(device, "last").await,
            ["last"],
            "no copy twice"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_crosses_only_to_a_node_with_a_subscriber() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let alice = Peer::connect(&a, "alice", &[]).await;
    let mut bob = Peer::connect(&b, "bob", &[]).await;
    bob.subscribe("im/dm/bob/+").await;
    wait_subject(&nats, "b", "roost.m.im.dm.bob.*", true);
    let held = nats.subscriptions("roost-b");
    assert!(
        held.iter().all(|s| !s.contains("dave")),
        "nobody on b wants dave's messages: {held:?}"
    );

    // Counted on the live-message subscriptions only: the same connection also carries the
    // presence and heartbeat watches.
    let live = || {
        nats.delivered("roost-b", "roost.m.")
            .expect("roost-b is connected")
    };
    let before = live();
    for i in 1..=20 {
        alice.dm("dave", &format!("d{i}"), "for dave").await;
    }
    alice.dm("bob", "b1", "for bob").await;
    assert_eq!(bodies_until(&mut bob, "for bob").await, ["for bob"]);
    assert_eq!(live() - before, 1, "NATS sent node b only bob's message");
    // The nodes' /metrics count the same: b got one message from the cluster, a put all
    // 21 on NATS (each stamped copy once, whoever wants it).
    b.wait_metric("roost_cluster_received_total", |n| n == 1.0)
        .await;
    a.wait_metric("roost_cluster_sent_total", |n| n >= 21.0)
        .await;
    assert!(b.metric("roost_cluster_subjects").is_some_and(|n| n >= 1.0));

    // The last local unsubscribe takes the node's interest away.
    bob.mqtt
        .client
        .unsubscribe("im/dm/bob/+")
        .await
        .expect("unsubscribe");
    wait_subject(&nats, "b", "roost.m.im.dm.bob.*", false);
}

fn health(node: &Node) -> (u16, String) {
    let answer = http_get(node.http, "/healthz", None, Duration::from_secs(10));
    (answer.status, answer.body.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_unreachable_degrades_healthz_and_the_node_recovers() {
    let mut nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let alice = Peer::connect(&a, "alice", &[]).await;
    let mut erin = Peer::connect(&a, "erin", &[]).await;
    let mut bob = Peer::connect(&b, "bob", &[]).await;
    erin.subscribe("im/dm/erin/+").await;
    bob.subscribe("im/dm/bob/+").await;
    wait_subject(&nats, "b", "roost.m.im.dm.bob.*", true);
    assert_eq!(health(&a), (200, "ok".to_owned()));

    for i in 0..3 {
        nats.kill(i);
    }
    a.wait_for_log(&["NATS unreachable", "degraded"]).await;
    assert_eq!(health(&a), (200, "degraded".to_owned()));
    a.wait_metric("roost_cluster_nats_connected", |v| v == 0.0)
        .await;
    // The node keeps serving its own clients.
    alice.dm("erin", "e1", "while alone").await;
    assert_eq!(
        bodies_until(&mut erin, "while alone").await,
        ["while alone"]
    );

    // Core NATS is all the live path needs: no wait for JetStream to elect a leader.
    for i in 0..3 {
        nats.restart(i);
    }
    a.wait_for_log(&["NATS reachable again"]).await;
    b.wait_for_log(&["NATS reachable again"]).await;
    assert_eq!(health(&a), (200, "ok".to_owned()));
    a.wait_metric("roost_cluster_nats_connected", |v| v == 1.0)
        .await;
    // Node b announced its interest again: chat crosses as before.
    wait_subject(&nats, "b", "roost.m.im.dm.bob.*", true);
    alice.dm("bob", "b1", "back").await;
    assert_eq!(bodies_until(&mut bob, "back").await, ["back"]);
    let log = a.log_text();
    assert_eq!(
        log.matches("NATS unreachable").count(),
        1,
        "logged once: {log}"
    );
}

/// The next presence message on `topic` `peer` receives: (status, retain flag).
async fn presence(peer: &mut Peer, topic: &str) -> (String, bool) {
    let topic = topic.as_bytes().to_vec();
    let packet = peer
        .expect(
            "presence",
            |p| matches!(p, Packet::Publish(p) if p.topic == topic),
        )
        .await;
    let Packet::Publish(p) = packet else {
        unreachable!()
    };
    let status: Value = serde_json::from_slice(&p.payload).expect("presence is JSON");
    (
        status["status"].as_str().unwrap_or_default().to_owned(),
        p.retain,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_and_is_retained_on_a_node_holding_presence_interest() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let mut bob = Peer::connect(&b, "bob", &[]).await;
    bob.subscribe("im/presence/+").await;
    wait_subject(&nats, "b", "roost.m.im.presence.*", true);

    let carol = Peer::connect(&a, "carol", &[]).await;
    assert_eq!(
        presence(&mut bob, "im/presence/carol").await,
        ("online".to_owned(), false),
        "live on node b"
    );
    // Node b keeps it retained: a later subscriber there gets carol's status at once.
    let mut dave = Peer::connect(&b, "dave", &[]).await;
    dave.subscribe("im/presence/carol").await;
    assert_eq!(
        presence(&mut dave, "im/presence/carol").await,
        ("online".to_owned(), true)
    );

    carol.mqtt.client.disconnect().await.expect("disconnect");
    assert_eq!(
        presence(&mut bob, "im/presence/carol").await,
        ("offline".to_owned(), false)
    );
    let mut erin = Peer::connect(&b, "erin", &[]).await;
    erin.subscribe("im/presence/carol").await;
    assert_eq!(
        presence(&mut erin, "im/presence/carol").await,
        ("offline".to_owned(), true)
    );
}
