//! Retained messages across a cluster (docs/cluster.md, "Retained messages"): every node
//! mirrors the JetStream stream of retained messages, so a subscriber on any node, or on
//! a node that joins or restarts later, gets them as on one node, once, last value first,
//! and a delete holds everywhere. Real `roost serve` processes, a private three-server NATS
//! cluster, one PostgreSQL history, and mosquitto_sub as a third-party client.

mod common;

use common::cluster_toml;
use common::history::Peer;
use common::nats::TestCluster;
use common::pg::PgDb;
use common::tools::Subscriber;
use common::Node;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use std::time::{Duration, Instant};

const STREAM: &str = "roost_retained";

/// Waits for NATS' view of the cluster (leaders, connections, stream contents).
const NATS_WAIT: Duration = Duration::from_secs(30);

/// A node named `node_id` on NATS server `server`; every user may use `test/#`.
fn node(nats: &TestCluster, server: usize, node_id: &str, db: &PgDb) -> Node {
    let test_topics =
        "\n[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"test/#\"\n";
    Node::builder()
        .toml(&cluster_toml(nats, server, node_id, db, test_topics))
        .start()
}

/// Publishes a retained message at QoS 1 and waits for its PUBACK (the node took it).
async fn retain(peer: &mut Peer, topic: &str, payload: &str) {
    peer.mqtt
        .client
        .publish(topic, QoS::AtLeastOnce, true, payload.as_bytes().to_vec())
        .await
        .expect("publish");
    peer.puback().await;
}

/// The next publish `peer` receives on a `test/` topic: (topic, payload, retain flag).
async fn next_test(peer: &mut Peer) -> (String, String, bool) {
    let packet = peer
        .expect(
            "a publish on test/",
            |p| matches!(p, Packet::Publish(p) if p.topic.starts_with(b"test/")),
        )
        .await;
    let Packet::Publish(p) = packet else {
        unreachable!()
    };
    (
        String::from_utf8_lossy(&p.topic).into_owned(),
        String::from_utf8_lossy(&p.payload).into_owned(),
        p.retain,
    )
}

fn got(topic: &str, payload: &str, retain: bool) -> (String, String, bool) {
    (topic.to_owned(), payload.to_owned(), retain)
}

/// Polls NATS (bounded) until `ready` holds.
fn wait_nats(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + NATS_WAIT;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not after {NATS_WAIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh subscriber to `filter` on `node` has no retained message there: the first
/// publish it gets is its own live one, sent after the SUBSCRIBE (a node sends the
/// retained messages of a subscription before any live one).
async fn nothing_retained(node: &Node, user: &str, filter: &str, sync_topic: &str) {
    let mut peer = Peer::connect(node, user, &[]).await;
    peer.subscribe(filter).await;
    peer.publish(sync_topic, "sync").await;
    assert_eq!(next_test(&mut peer).await, got(sync_topic, "sync", false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_crosses_once_last_value_wins_and_a_delete_holds_on_every_node() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    // A subscriber on the node where the messages enter: it must get each once too.
    let mut frank = Peer::connect(&a, "frank", &[]).await;
    frank.subscribe("test/r/+").await;
    let mut alice = Peer::connect(&a, "alice", &[]).await;
    retain(&mut alice, "test/r/1", "v1").await;
    assert_eq!(next_test(&mut frank).await, got("test/r/1", "v1", false));

    // Nobody on b subscribed when it was published; bob gets it once, from b's store or
    // live if b's mirror applies it after his SUBSCRIBE.
    let mut bob = Peer::connect(&b, "bob", &[]).await;
    bob.subscribe("test/r/+").await;
    let (topic, payload, _retain) = next_test(&mut bob).await;
    assert_eq!((topic.as_str(), payload.as_str()), ("test/r/1", "v1"));

    retain(&mut alice, "test/r/1", "v2").await;
    retain(&mut alice, "test/r/1", "v3").await;
    for peer in [&mut bob, &mut frank] {
        let id = peer.client_id.clone();
        assert_eq!(next_test(peer).await, got("test/r/1", "v2", false), "{id}");
        assert_eq!(next_test(peer).await, got("test/r/1", "v3", false), "{id}");
    }
    // b applied v3 (bob has it): a new subscriber there gets the last value, retained.
    let mut carol = Peer::connect(&b, "carol", &[]).await;
    carol.subscribe("test/r/1").await;
    assert_eq!(next_test(&mut carol).await, got("test/r/1", "v3", true));

    // An empty retained payload deletes, on both nodes.
    retain(&mut alice, "test/r/1", "").await;
    for peer in [&mut bob, &mut frank] {
        assert_eq!(next_test(peer).await, got("test/r/1", "", false));
    }
    // (The sync topics are not under bob's and frank's filter.)
    nothing_retained(&a, "dave", "test/r/#", "test/r/sync/a").await;
    nothing_retained(&b, "erin", "test/r/#", "test/r/sync/b").await;

    // Nothing arrived twice: the next message either has is a live one sent now.
    alice.publish("test/r/end", "end").await;
    for peer in [&mut bob, &mut frank] {
        assert_eq!(next_test(peer).await, got("test/r/end", "end", false));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_or_restarted_has_the_retained_messages() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let mut alice = Peer::connect(&a, "alice", &[]).await;
    retain(&mut alice, "test/late", "x").await;
    // In the stream: alice's retained message (her presence never is: every node publishes
    // it itself from the presence bucket).
    wait_nats("alice's retained message in the stream", || {
        nats.stream_messages(STREAM) >= 1
    });

    // Node c did not exist then: a third-party client there gets it at once, retained.
    let c = node(&nats, 1, "c", &db);
    let token = common::token("zoe");
    let port = c.mqtt.port().to_string();
    let mut sub = Subscriber::start(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-i",
        "zoe",
        "-u",
        "zoe",
        "-P",
        &token,
        "-t",
        "test/late",
        "-C",
        "1",
        "-F",
        "%r %t %p",
    ]);
    sub.wait_for("1 test/late x");
    assert!(sub.exit_status().success());
    // Presence is retained on c too, from the presence bucket, not from the stream.
    let mut bob = Peer::connect(&c, "bob", &[]).await;
    bob.subscribe("im/presence/alice").await;
    let presence = bob
        .expect(
            "alice's presence",
            |p| matches!(p, Packet::Publish(p) if p.topic == "im/presence/alice"),
        )
        .await;
    let Packet::Publish(presence) = presence else {
        unreachable!()
    };
    assert!(presence.retain);
    let status: serde_json::Value = serde_json::from_slice(&presence.payload).expect("JSON");
    assert_eq!(status["status"], "online");
    assert_eq!(
        nats.stream_messages(STREAM),
        1,
        "presence statuses never enter the retained stream"
    );

    // Node a restarts (on another NATS server): it reads back what entered through it.
    drop(alice);
    drop(a);
    let a = node(&nats, 2, "a", &db);
    let mut eve = Peer::connect(&a, "eve", &[]).await;
    eve.subscribe("test/late").await;
    assert_eq!(next_test(&mut eve).await, got("test/late", "x", true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_survive_the_stream_leader_being_killed() {
    let mut nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let mut alice = Peer::connect(&a, "alice", &[]).await;
    let mut bob = Peer::connect(&b, "bob", &[]).await;
    bob.subscribe("test/k").await;
    retain(&mut alice, "test/k", "before").await;
    assert_eq!(next_test(&mut bob).await, got("test/k", "before", false));

    let mut leader = None;
    wait_nats("a leader of the retained stream", || {
        leader = nats.stream_leader(STREAM);
        leader.is_some()
    });
    let leader = leader.expect("a leader");
    nats.kill(leader);
    // Two of three servers elect a new leader of every stream (the retained one and the
    // buckets' and claims' streams, whose elections otherwise hold up a node's JetStream
    // requests at start); the nodes are (again) connected.
    wait_nats("a new JetStream meta leader and stream leaders", || {
        nats.meta_leader().is_some()
            && [
                STREAM,
                "KV_roost_nodes",
                "KV_roost_presence",
                "KV_roost_wills",
                "roost_claims",
            ]
            .iter()
            .all(|stream| nats.stream_leader(stream).is_some())
    });
    wait_nats("both nodes connected", || {
        nats.connection("roost-a").is_some() && nats.connection("roost-b").is_some()
    });

    retain(&mut alice, "test/k", "after").await;
    // If the killed server held b's mirror consumer, b notices by its missing heartbeats
    // (10 s) and reads on from where it stopped.
    bob.wait = NATS_WAIT;
    assert_eq!(next_test(&mut bob).await, got("test/k", "after", false));
    // A node joining now reads the replicated stream from the two survivors.
    let survivor = (0..3).find(|&i| i != leader).expect("a survivor");
    let c = node(&nats, survivor, "c", &db);
    let mut carol = Peer::connect(&c, "carol", &[]).await;
    carol.subscribe("test/k").await;
    assert_eq!(
        next_test(&mut carol).await,
        got("test/k", "after", true),
        "{}",
        c.log_text()
    );
}
