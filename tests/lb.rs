//! Load balancer support on one node: HAProxy's agent check on `cluster.agent_listen`
//! (`ready up NN%` falling as the node fills up, `drain` once it drains).

mod common;

use common::client5::Client5;
use common::{tools, Node};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The agent listener's address, from the node's `listening kind="agent"` log line.
fn agent_addr(node: &Node) -> SocketAddr {
    node.wait_for_log("kind=\"agent\"");
    let log = node.log_text();
    let line = log.lines().find(|l| l.contains("kind=\"agent\"")).unwrap();
    line.split("addr=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// What the agent answers one check with.
fn agent_reply(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

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
    let agent = agent_addr(&node);
    let empty = weight(&agent_reply(agent));
    // Empty: 100%, at most halved by a busy CPU.
    assert!(empty >= 50, "empty node weighs {empty}%");

    let mut clients = Vec::new();
    for i in 0..8 {
        clients.push(Client5::user(&node, &format!("user{i}")).await);
    }
    let busy = weight(&agent_reply(agent));
    // 8 of 10 connections: at most 20%.
    assert!(busy <= 20 && busy >= 1, "8/10 connections weigh {busy}%");
    assert!(busy < empty);

    let out = tools::run_bounded("kill", &["-TERM", &node.pid().to_string()]);
    assert!(out.status.success());
    node.wait_for_log("draining: listeners closed");
    assert_eq!(agent_reply(agent), "drain\n");
}
