//! Load balancer support: HAProxy's agent check on `cluster.agent_listen` (`ready up NN%`
//! falling as the node fills up, `drain` once it drains), and real HAProxy running
//! deploy/haproxy.cfg (ports from the environment) in front of two nodes (its third is off).

mod common;

use common::client::{Client, Mqtt5};

type Client5 = Client<Mqtt5>;
use common::history::Peer;
use common::lb::{self, agent_addr, agent_reply, Front, Pi};
use common::{tools, Node};
use std::time::{Duration, Instant};

fn weight(reply: &str) -> u32 {
    reply
        .strip_prefix("ready up ")
        .and_then(|r| r.strip_suffix("%\n"))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("not a ready reply: {reply:?}"))
}

#[tokio::test]
async fn agent_weight_follows_load_and_says_drain() {
    let node = Node::builder()
        .toml("[limits]\nmax_connections = 10\n[cluster]\nagent_listen = \"127.0.0.1:0\"\ndrain_period = \"10m\"\n")
        .start();
    let agent = agent_addr(&node).await;
    let empty = weight(&agent_reply(agent));
    // Empty: 100%, at most halved by a busy CPU.
    assert!(empty >= 50, "empty node weighs {empty}%");

    let mut clients = Vec::new();
    for i in 0..8 {
        clients.push(Client5::user(&node, &format!("user{i}")).await);
    }
    let busy = weight(&agent_reply(agent));
    // 8 of 10 connections: at most 20%.
    assert!((1..=20).contains(&busy), "8/10 connections weigh {busy}%");
    assert!(busy < empty);

    let out = tools::run_bounded("kill", &["-TERM", &node.pid().to_string()]);
    assert!(out.status.success());
    node.wait_for_log(&["draining: listeners closed"]).await;
    assert_eq!(agent_reply(agent), "drain\n");
}

fn lb_node() -> Node {
    Node::builder()
        .ws()
        .toml("[cluster]\nagent_listen = \"127.0.0.1:0\"\ndrain_period = \"1s\"\n")
        .start()
}

/// HAProxy (deploy/haproxy.cfg) in front of two standalone nodes: users connect through it,
/// the first node drains, and its users reconnect through HAProxy to the second and chat.
#[tokio::test]
async fn haproxy_moves_users_off_a_draining_node() {
    let mut pi1 = lb_node();
    let pi2 = lb_node();
    let front = Front::free();
    // pi3 is off: HAProxy finds it down.
    let _haproxy = lb::haproxy(&front, &[Pi::of(&pi1).await, Pi::of(&pi2).await], &[]).await;
    let mqtt = front.mqtt;

    let mut alice = Peer::connect_as(mqtt, "alice", "alice", &[]).await;
    let mut bob = Peer::connect_as(mqtt, "bob", "bob", &[]).await;
    // A sign-in is logged as the node takes it, not before the CONNACK: wait for both
    // lines (on whichever node) before asking where each went.
    let logged = |user: &str| {
        let line = format!("user=\"{user}\"");
        pi1.log_text().contains(&line) || pi2.log_text().contains(&line)
    };
    let deadline = Instant::now() + common::client::WAIT;
    while !(logged("alice") && logged("bob")) {
        assert!(Instant::now() < deadline, "the sign-ins were never logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // leastconn spreads them: one on each node.
    let on_pi1 = if pi1.log_text().contains("user=\"bob\"") {
        "bob"
    } else {
        "alice"
    };
    assert!(
        pi1.log_text().contains(&format!("user=\"{on_pi1}\"")),
        "nobody on pi1:\n{}",
        pi1.log_text()
    );

    let out = tools::run_bounded("kill", &["-TERM", &pi1.pid().to_string()]);
    assert!(out.status.success());
    let drained = if on_pi1 == "alice" {
        &mut alice
    } else {
        &mut bob
    };
    let ended = loop {
        match drained.try_take(Duration::from_secs(15), |_| true).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("{on_pi1} still connected to the draining node"),
            Err(ended) => break ended,
        }
    };
    assert!(ended.contains("ServerShuttingDown"), "{on_pi1}: {ended}");
    let status = pi1.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");

    // Reconnecting through HAProxy lands on the node that is left; the two chat there.
    let back = Peer::connect_as(mqtt, on_pi1, on_pi1, &[]).await;
    if on_pi1 == "alice" {
        alice = back;
    } else {
        bob = back;
    }
    bob.subscribe("im/dm/bob/+").await;
    alice.dm("bob", "after-drain", "still here").await;
    let (topic, body) = bob.next_chat().await;
    assert_eq!(topic, "im/dm/bob/alice");
    assert_eq!(body["id"], "after-drain");
    alice.ack("after-drain").await;
}
