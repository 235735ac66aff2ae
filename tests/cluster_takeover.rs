//! Client ids are cluster-wide (docs/cluster.md, "Takeover"): a CONNECT on one node takes
//! over the session of that client id on another node. Real `roost serve` processes, a
//! private three-server NATS cluster, one PostgreSQL history, and paho-mqtt besides.

mod common;

use common::cluster_toml;
use common::history::{chat, Peer};
use common::nats::TestCluster;
use common::pg::PgDb;
use common::raw::{Connect, Raw, V311, V5};
use common::tools::paho;
use common::{token, Node};
use rumqttc::v5::mqttbytes::v5::Packet;
use serde_json::Value;
use std::time::Duration;

/// A node of the cluster, named `node_id`, connected to NATS server `server`.
fn node(nats: &TestCluster, server: usize, node_id: &str, db: &PgDb) -> Node {
    node_with(nats, server, node_id, db, "")
}

/// A node as [`node`], with more `[cluster]` keys (`extra`, TOML lines).
fn node_with(nats: &TestCluster, server: usize, node_id: &str, db: &PgDb, extra: &str) -> Node {
    Node::builder()
        .toml(&cluster_toml(nats, server, node_id, db, extra))
        .start()
}

/// The status in the retained presence of `user` a new subscriber on `node` gets.
async fn retained_presence(node: &Node, watcher: &str, user: &str) -> String {
    let mut peer = Peer::connect(node, watcher, &[]).await;
    let topic = format!("im/presence/{user}");
    peer.subscribe(&topic).await;
    let packet = peer
        .expect(
            "the retained presence",
            |p| matches!(p, Packet::Publish(p) if p.topic[..] == *topic.as_bytes()),
        )
        .await;
    let Packet::Publish(publish) = packet else {
        unreachable!()
    };
    let status: Value = serde_json::from_slice(&publish.payload).unwrap();
    status["status"].as_str().unwrap_or_default().to_owned()
}

/// Whether a packet is alice's presence with `status`.
fn alice_is(status: &'static str) -> impl Fn(&Packet) -> bool {
    move |p| match p {
        Packet::Publish(p) if p.topic[..] == *b"im/presence/alice" => {
            serde_json::from_slice::<Value>(&p.payload).is_ok_and(|v| v["status"] == status)
        }
        _ => false,
    }
}

/// The chat bodies `peer` receives up to and including `last`.
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

/// A v5 client connected on node a with a will is taken over by a CONNECT with its client
/// id on node b: the old connection gets DISCONNECT 0x8E, the will is not published, and
/// alice's presence stays online on both nodes; once the new connection goes too, she is
/// offline on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_across_nodes_closes_the_old_connection_without_will_or_offline() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let mut bob = Peer::connect(&b, "bob", &[]).await;
    bob.subscribe("im/dm/bob/+").await;

    let with_will = Connect {
        will: Some(("im/dm/bob/alice".into(), chat("w1", "will").into_bytes())),
        ..Connect::user(V5, "alice", &token("alice"))
    };
    let (mut old, ack) = Raw::connect(&a, &with_will).await;
    assert_eq!(ack.connack_code(), 0);
    // The will reaches bob across the cluster if it is published: his filter is held on b.
    assert_eq!(retained_presence(&a, "carol", "alice").await, "online");

    let (new, ack) = Raw::connect(&b, &Connect::user(V5, "alice", &token("alice"))).await;
    assert_eq!(ack.connack_code(), 0);
    let closed = old.closed().await;
    let last = closed
        .packets
        .last()
        .expect("a DISCONNECT before the close");
    assert_eq!(last.disconnect_reason(), 0x8E, "{closed:?}");
    a.wait_for_log(&["session moved to another node"]).await;

    // Anything node a published at the close (the will, an offline) went out before this
    // marker, which goes the same way: node a's router, its bridge, NATS, node b.
    let dave = Peer::connect(&a, "dave", &[]).await;
    dave.dm("bob", "m1", "marker").await;
    let bodies = bodies_until(&mut bob, "marker").await;
    assert_eq!(
        bodies,
        ["marker"],
        "the old connection's will was published"
    );
    assert_eq!(retained_presence(&a, "erin", "alice").await, "online");
    assert_eq!(retained_presence(&b, "frank", "alice").await, "online");

    // The new connection, alice's last device anywhere, goes: she is offline on both
    // nodes (node a took its name out, node b's name came in before its claim).
    let mut watchers = vec![
        Peer::connect(&a, "gail", &[]).await,
        Peer::connect(&b, "hank", &[]).await,
    ];
    for w in &mut watchers {
        w.subscribe("im/presence/alice").await;
        w.expect("alice online (retained)", alice_is("online"))
            .await;
    }
    drop(new);
    for w in &mut watchers {
        w.expect("alice offline", alice_is("offline")).await;
    }
}

/// A session taken over by another node takes its will out of the cluster's wills bucket
/// and its user out of the bucket's presence for the old node: when the old node then
/// dies, the survivor cleaning up finds no will of it (nobody publishes it) and leaves the
/// user online on the node that took over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_sessions_will_is_not_published_when_its_old_node_dies() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    // Short, so that node a's death is noticed soon.
    let extra = "node_timeout = \"3s\"\n";
    let a = node_with(&nats, 0, "a", &db, extra);
    let b = node_with(&nats, 1, "b", &db, extra);
    let mut bob = Peer::connect(&b, "bob", &[]).await;
    bob.subscribe("im/dm/bob/+").await;

    let with_will = Connect {
        will: Some(("im/dm/bob/alice".into(), chat("w1", "will").into_bytes())),
        ..Connect::user(V5, "alice", &token("alice"))
    };
    let (mut old, ack) = Raw::connect(&a, &with_will).await;
    assert_eq!(ack.connack_code(), 0);
    // Online across the cluster once the will is stored in the cluster.
    assert_eq!(retained_presence(&b, "carol", "alice").await, "online");

    let (_new, ack) = Raw::connect(&b, &Connect::user(V5, "alice", &token("alice"))).await;
    assert_eq!(ack.connack_code(), 0);
    old.closed().await;
    a.wait_for_log(&["session moved to another node"]).await;
    // Node a writes its changes to the buckets in the order they happened, wills first:
    // once gina, who signs in on a after the move, shows online on b, alice's will and
    // her device on a are out of the buckets.
    let _gina = Peer::connect(&a, "gina", &[]).await;
    assert_eq!(retained_presence(&b, "dave", "gina").await, "online");

    drop(a); // SIGKILL
    b.wait_for_log(&["dead node cleaned up", "users=1", "wills=0"])
        .await;
    // Anything b published cleaning up went out before this marker, which goes the same
    // way: b's router to bob.
    let erin = Peer::connect(&b, "erin", &[]).await;
    erin.dm("bob", "m1", "marker").await;
    let bodies = bodies_until(&mut bob, "marker").await;
    assert_eq!(bodies, ["marker"], "the moved session's will was published");
    assert_eq!(retained_presence(&b, "frank", "alice").await, "online");
}

/// Twenty takeovers back and forth between two nodes never show the user `offline`: the
/// new node's name is in the user's presence entry (acknowledged by the bucket) before it
/// announces its claim, so the old node, which takes its own name out only after reading
/// the claim, never leaves the entry empty (docs/cluster.md, "Takeover"). Without that
/// order 5 to 7 of the 20 flapped (`offline` then `online` on every node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeovers_back_and_forth_never_show_the_user_offline() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let mut obs = Peer::connect(&b, "obs", &[]).await;
    obs.subscribe("im/presence/+").await;
    let connect = Connect::user(V5, "alice", &token("alice"));
    let (mut current, _) = Raw::connect(&a, &connect).await;
    for round in 0..20 {
        let to = if round % 2 == 0 { &b } else { &a };
        let (next, ack) = Raw::connect(to, &connect).await;
        assert_eq!(ack.connack_code(), 0);
        current.closed().await;
        current = next;
    }
    // Every node publishes the bucket's changes in the bucket's one order: alice's come
    // before zed's online.
    let _zed = Peer::connect(&a, "zed", &[]).await;
    let mut seen = Vec::new();
    loop {
        let packet = obs
            .expect("a presence", |p| matches!(p, Packet::Publish(_)))
            .await;
        let Packet::Publish(publish) = packet else {
            unreachable!()
        };
        let topic = String::from_utf8_lossy(&publish.topic).into_owned();
        let status: Value = serde_json::from_slice(&publish.payload).unwrap();
        seen.push(format!("{topic} {}", status["status"]));
        if topic == "im/presence/zed" {
            break;
        }
    }
    let offline = seen
        .iter()
        .filter(|s| s.starts_with("im/presence/alice ") && s.contains("offline"))
        .count();
    assert_eq!(offline, 0, "{seen:?}");
}

/// MQTT 3.1.1 has no DISCONNECT from the server: the old connection is just closed, with
/// nothing sent before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_across_nodes_closes_a_v311_connection() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let (mut old, ack) = Raw::connect(&a, &Connect::user(V311, "alice", &token("alice"))).await;
    assert_eq!(ack.connack_code(), 0);
    let (_new, ack) = Raw::connect(&b, &Connect::user(V311, "alice", &token("alice"))).await;
    assert_eq!(ack.connack_code(), 0);
    let closed = old.closed().await;
    assert!(closed.packets.is_empty(), "{closed:?}");
}

/// Two CONNECTs with one client id on two nodes at once: the claims stream orders them,
/// and the later claim wins on both nodes, so exactly one connection survives, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connects_on_two_nodes_leave_exactly_one() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let mut bob = Peer::connect(&b, "bob", &[]).await;
    bob.subscribe("im/dm/bob/+").await;
    for round in 0..5 {
        let connect = Connect::user(V5, "alice", &token("alice"));
        let ((mut on_a, ack_a), (mut on_b, ack_b)) =
            tokio::join!(Raw::connect(&a, &connect), Raw::connect(&b, &connect));
        assert_eq!((ack_a.connack_code(), ack_b.connack_code()), (0, 0));
        // One of them is closed as taken over (bounded: `closed_within` panics after)...
        let within = Duration::from_secs(30);
        let which = tokio::time::timeout(within, async {
            tokio::select! {
                closed = on_a.closed_within(within * 2) => (closed, true),
                closed = on_b.closed_within(within * 2) => (closed, false),
            }
        })
        .await;
        let Ok((closed, a_closed)) = which else {
            panic!(
                "round {round}: both connections still open after {within:?}\n\
                 node a:\n{}\nnode b:\n{}",
                a.log_text(),
                b.log_text()
            );
        };
        let mut survivor = if a_closed { on_b } else { on_a };
        let last = closed.packets.last().expect("a DISCONNECT");
        assert_eq!(last.disconnect_reason(), 0x8E, "round {round}: {closed:?}");
        // ... and the other still works: its DM reaches bob, and it is still open after.
        let body = format!("round {round}");
        let dm = common::raw::publish(
            V5,
            b"im/dm/bob/alice",
            1,
            1,
            chat(&format!("r{round}"), &body).as_bytes(),
        );
        survivor.send(&dm).await;
        assert_eq!(bodies_until(&mut bob, &body).await.last(), Some(&body));
        let puback = survivor.next_frame().await;
        assert!(
            puback.as_ref().is_some_and(|f| f.kind() == 4),
            "round {round}: the survivor was closed too: {puback:?}"
        );
    }
}

/// paho-mqtt, MQTT 3.1.1 and 5: the client on node a is disconnected (v5: reason 0x8E)
/// when its client id connects on node b, and the new connection stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_clients_are_taken_over_across_nodes() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let (port_a, port_b) = (a.mqtt.port().to_string(), b.mqtt.port().to_string());
    let token = token("alice");
    paho("takeover.py", &["127.0.0.1", &port_a, &port_b, &token]);
    paho(
        "takeover.py",
        &["127.0.0.1", &port_a, &port_b, &token, "--v5"],
    );
}
