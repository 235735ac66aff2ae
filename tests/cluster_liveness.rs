//! Presence across nodes and node death (docs/cluster.md "Presence across nodes"): a user
//! with devices on two nodes stays online until the last one leaves, a killed node's users
//! go offline within `node_timeout` (unless they are on another node too) and its clients'
//! wills are published, and a drained node leaves without being judged dead. Real
//! `roost serve` processes, a private three-server NATS cluster, one PostgreSQL database.

mod common;

use common::client::{options, Client};
use common::cluster_toml;
use common::history::{chat, Peer};
use common::nats::TestCluster;
use common::pg::PgDb;
use common::{token, Node};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::{LastWill, QoS};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Short, so that the tests do not wait long for a death: nodes heartbeat every second
/// and judge a node dead after two silent seconds.
const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// A node of the cluster, named `node_id`, connected to NATS server `server`.
fn node(nats: &TestCluster, server: usize, node_id: &str, db: &PgDb) -> Node {
    let timeout = NODE_TIMEOUT.as_secs();
    let extra = format!("node_timeout = \"{timeout}s\"\ndrain_period = \"1s\"\n");
    Node::builder()
        .toml(&cluster_toml(nats, server, node_id, db, &extra))
        .start()
}

fn is_presence_of(p: &Packet, user: &str, status: Option<&str>) -> bool {
    let Packet::Publish(p) = p else { return false };
    if p.topic != format!("im/presence/{user}").as_bytes() {
        return false;
    }
    let payload: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
    status.is_none_or(|s| payload["status"] == s)
}

/// The next status of `user` that `peer` receives.
async fn status(peer: &mut Peer, user: &str) -> String {
    let packet = peer
        .expect(&format!("presence of {user}"), |p| {
            is_presence_of(p, user, None)
        })
        .await;
    let Packet::Publish(p) = packet else {
        unreachable!()
    };
    let payload: Value = serde_json::from_slice(&p.payload).expect("presence is JSON");
    payload["status"].as_str().unwrap_or_default().to_owned()
}

/// Fails if `peer` has received any status of `user` so far (kept, not waited for).
async fn no_status_yet(peer: &mut Peer, user: &str) {
    let seen = peer
        .take(Duration::ZERO, |p| is_presence_of(p, user, None))
        .await;
    assert!(
        seen.is_none(),
        "{}: unexpected presence of {user}: {seen:?}",
        peer.client_id
    );
}

/// `user`, client id = user, on `node`, with a will: a DM to `to` with body `body`.
async fn with_will(node: &Node, user: &str, to: &str, body: &str) -> Client<common::client::Mqtt3> {
    let mut o = options(node, user, user, &token(user));
    o.set_last_will(LastWill::new(
        format!("im/dm/{to}/{user}"),
        chat(&format!("will-{user}"), body),
        QoS::AtLeastOnce,
        false,
    ));
    Client::connect(o).await.expect("signed in")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_go_offline_within_node_timeout_and_its_wills_are_published() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let mut obs = Peer::connect(&b, "obs", &[]).await;
    obs.subscribe("im/presence/+").await;
    obs.subscribe("im/dm/obs/+").await;

    // carol only on a, with a will; dave on both nodes.
    let _carol = with_will(&a, "carol", "obs", "carol is gone").await;
    let _dave_phone = Peer::device(&a, "dave", "phone", &[]).await;
    let _dave_laptop = Peer::device(&b, "dave", "laptop", &[]).await;
    // Online shows once a user's will is stored in the cluster.
    assert_eq!(status(&mut obs, "carol").await, "online");
    assert_eq!(status(&mut obs, "dave").await, "online");

    let killed = Instant::now();
    drop(a); // SIGKILL
    assert_eq!(status(&mut obs, "carol").await, "offline");
    let took = killed.elapsed();
    assert!(
        took <= NODE_TIMEOUT,
        "carol offline {took:?} after the kill, node_timeout is {NODE_TIMEOUT:?}"
    );
    let (topic, will) = obs.next_chat().await;
    assert_eq!(topic, "im/dm/obs/carol");
    assert_eq!(will["body"], "carol is gone");
    b.wait_for_log(&["dead node cleaned up", "users=2", "wills=1"])
        .await;

    // Everything b wrote while cleaning up comes before erin's online: dave never went
    // offline, he still has his laptop on b.
    let _erin = Peer::connect(&b, "erin", &[]).await;
    assert_eq!(status(&mut obs, "erin").await, "online");
    no_status_yet(&mut obs, "dave").await;
    let log = b.log_text();
    assert!(log.contains("node is dead"), "{log}");
    eprintln!("carol offline {took:?} after the kill of node a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_does_not_flap_with_devices_on_two_nodes() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 2, "b", &db);
    let mut on_a = Peer::connect(&a, "obs1", &[]).await;
    let mut on_b = Peer::connect(&b, "obs2", &[]).await;
    on_a.subscribe("im/presence/+").await;
    on_b.subscribe("im/presence/+").await;

    let phone = Peer::device(&a, "fay", "phone", &[]).await;
    let laptop = Peer::device(&b, "fay", "laptop", &[]).await;
    for obs in [&mut on_a, &mut on_b] {
        assert_eq!(status(obs, "fay").await, "online");
    }
    phone.mqtt.client.disconnect().await.expect("disconnect");
    a.wait_metric("roost_connections", |v| v == 1.0).await;
    // gus arrives on a after fay's phone left it: every node sees the cluster's changes in
    // one order, so a flap of fay would come before gus's online.
    let _gus = Peer::connect(&a, "gus", &[]).await;
    for obs in [&mut on_a, &mut on_b] {
        assert_eq!(status(obs, "gus").await, "online");
        no_status_yet(obs, "fay").await;
    }
    laptop.mqtt.client.disconnect().await.expect("disconnect");
    for obs in [&mut on_a, &mut on_b] {
        assert_eq!(status(obs, "fay").await, "offline", "the last device left");
    }
    // A later subscriber on either node gets the retained status.
    for node in [&a, &b] {
        let mut late = Peer::connect(node, "hal", &[]).await;
        late.subscribe("im/presence/fay").await;
        assert_eq!(status(&mut late, "fay").await, "offline");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_leaves_the_cluster_and_is_not_judged_dead() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let mut a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let mut obs = Peer::connect(&b, "obs", &[]).await;
    obs.subscribe("im/presence/+").await;
    obs.subscribe("im/dm/obs/+").await;
    let mut ivy = with_will(&a, "ivy", "obs", "ivy's will").await;
    assert_eq!(status(&mut obs, "ivy").await, "online");

    let term = std::process::Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    // Drained (3.1.1: the connection closes), ivy reconnects through another node.
    ivy.ended().await;
    let _ivy = Peer::connect(&b, "ivy", &[]).await;
    assert!(a.wait_exit(Duration::from_secs(30)).success());
    b.wait_for_log(&["node left the cluster", "a"]).await;

    // Whatever ivy's status did while she moved, she ends online, and stays so past the
    // time a dead node would have been judged.
    let mut last = String::new();
    while let Some(p) = obs
        .take(NODE_TIMEOUT, |p| is_presence_of(p, "ivy", None))
        .await
    {
        let Packet::Publish(p) = p else {
            unreachable!()
        };
        let payload: Value = serde_json::from_slice(&p.payload).expect("JSON");
        last = payload["status"].as_str().unwrap_or_default().to_owned();
    }
    assert_eq!(last, "online");
    let log = b.log_text();
    assert!(!log.contains("node is dead"), "{log}");
    // No will: the drain closed ivy normally, and nobody judged a dead.
    let jay = Peer::connect(&b, "jay", &[]).await;
    jay.dm("obs", "m1", "marker").await;
    let (_, first) = obs.next_chat().await;
    assert_eq!(first["body"], "marker", "a will was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_shows_its_users_locally_and_tells_the_cluster_when_back() {
    let mut nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let mut on_a = Peer::connect(&a, "obs1", &[]).await;
    let mut on_b = Peer::connect(&b, "obs2", &[]).await;
    on_a.subscribe("im/presence/+").await;
    on_b.subscribe("im/presence/+").await;

    for i in 0..3 {
        nats.kill(i);
    }
    a.wait_for_log(&["NATS unreachable"]).await;
    let _kim = Peer::connect(&a, "kim", &[]).await;
    assert_eq!(
        status(&mut on_a, "kim").await,
        "online",
        "shown while cut off"
    );

    for i in 0..3 {
        nats.restart(i);
    }
    // JetStream elects its leaders again first: seconds on a busy machine.
    let written = "presence and wills written to the cluster again";
    a.wait_for_log_where(Duration::from_secs(60), written, |l| l.contains(written))
        .await;
    assert_eq!(status(&mut on_b, "kim").await, "online", "told once back");
    // Both nodes were cut off together: neither judged the other dead.
    for node in [&a, &b] {
        let log = node.log_text();
        assert!(!log.contains("node is dead"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_survivors_one_cleans_up_and_a_will_is_published_once() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let c = node(&nats, 2, "c", &db);
    let mut obs = Peer::connect(&c, "obs", &[]).await;
    obs.subscribe("im/presence/+").await;
    obs.subscribe("im/dm/obs/+").await;
    let _liv = with_will(&a, "liv", "obs", "liv is gone").await;
    assert_eq!(status(&mut obs, "liv").await, "online");

    drop(a); // SIGKILL
    assert_eq!(status(&mut obs, "liv").await, "offline");
    let (_, will) = obs.next_chat().await;
    assert_eq!(will["body"], "liv is gone");
    // b, the first live node by name, cleans up; c leaves it to b.
    b.wait_for_log(&["dead node cleaned up", "wills=1"]).await;
    c.wait_for_log(&["node is dead", "cleaner=\"b\""]).await;
    assert!(!c.log_text().contains("dead node cleaned up"));
    // The will came once: the next chat message obs gets is this marker.
    let max = Peer::connect(&b, "max", &[]).await;
    max.dm("obs", "m1", "marker").await;
    let (_, next) = obs.next_chat().await;
    assert_eq!(next["body"], "marker", "a will was published twice");
}
