//! Nginx in front of a two-node cluster: the real `nginx` (with Debian's stream module)
//! running deploy/nginx.conf, its placeholders filled with test ports, spreads users over
//! both nodes, and they chat through it over plain MQTT (`stream {}`) and over WebSocket
//! (`http {}`, paho-mqtt), the cluster carrying each message to the other node.

mod common;

use common::cluster_toml;
use common::history::Peer;
use common::lb::{self, node_of, wait_interest, Front, Pi};
use common::nats::TestCluster;
use common::pg::PgDb;
use common::{token, Node};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn cluster_node(nats: &TestCluster, server: usize, id: &str, db: &PgDb) -> Node {
    let agent = "agent_listen = \"127.0.0.1:0\"\n";
    Node::builder()
        .ws()
        .toml(&cluster_toml(nats, server, id, db, agent))
        .start()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_spreads_users_over_two_nodes_and_they_chat_over_tcp_and_websocket() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = cluster_node(&nats, 0, "a", &db);
    let b = cluster_node(&nats, 1, "b", &db);
    let front = Front::free();
    let nginx = lb::nginx(&front, [Pi::of(&a).await, Pi::of(&b).await]);
    let nodes = [&a, &b];
    let ids = ["a", "b"];

    // Plain MQTT through stream {}: least_conn puts the second user on the other node.
    let mut bob = Peer::connect_as(front.mqtt, "bob", "bob", &[]).await;
    bob.subscribe("im/dm/bob/+").await;
    let mut alice = Peer::connect_as(front.mqtt, "alice", "alice", &[]).await;
    alice.subscribe("im/dm/alice/+").await;
    let wait = Duration::from_secs(10);
    let (on_bob, on_alice) = (
        node_of(&nodes, "bob", wait).await,
        node_of(&nodes, "alice", wait).await,
    );
    assert_ne!(on_bob, on_alice, "least_conn left a node empty");
    wait_interest(&nats, ids[on_bob], "roost.m.im.dm.bob.*").await;
    wait_interest(&nats, ids[on_alice], "roost.m.im.dm.alice.*").await;
    alice.dm("bob", "tcp-1", "through nginx").await;
    let (topic, body) = bob.next_chat().await;
    assert_eq!(
        (topic.as_str(), &body["id"]),
        ("im/dm/bob/alice", &"tcp-1".into())
    );
    alice.ack("tcp-1").await;
    bob.dm("alice", "tcp-2", "and back").await;
    let (topic, body) = alice.next_chat().await;
    assert_eq!(
        (topic.as_str(), &body["id"]),
        ("im/dm/alice/bob", &"tcp-2".into())
    );
    bob.ack("tcp-2").await;

    // MQTT over WebSocket through http {}: paho-mqtt, one user on each node.
    let python = std::env::var("ROOST_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ws_chat.py");
    let port = front.ws.port().to_string();
    let mut chat = Command::new("timeout")
        .args(["60", &python, "-B", script, "127.0.0.1", &port])
        .args([token("wsbob"), token("wsalice")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with paho-mqtt (scripts/test makes a venv)");
    let mut said = String::new();
    BufReader::new(chat.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said.trim(), "subscribed", "{:?}", chat.wait_with_output());
    let on_wsbob = node_of(&nodes, "wsbob", wait).await;
    wait_interest(&nats, ids[on_wsbob], "roost.m.im.dm.wsbob.*").await;
    chat.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while chat.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ws_chat.py runs on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = chat.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ws_chat.py: {}\nnginx:\n{}",
        String::from_utf8_lossy(&out.stderr),
        nginx.log_text()
    );
    let on_wsalice = node_of(&nodes, "wsalice", wait).await;
    assert_ne!(
        on_wsbob, on_wsalice,
        "least_conn left a node without a WebSocket user"
    );
}
