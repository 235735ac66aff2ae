//! An elastic standby behind HAProxy (docs/operating.md, "Elastic standby"): two active
//! nodes and a standby on a private NATS cluster with one PostgreSQL, the real HAProxy on
//! deploy/haproxy.cfg in front. The standby rests (agent `drain`) while the load is low,
//! takes new users once the connections per active node reach `scale_up_at`, and gives
//! them back (DISCONNECT 0x8B, they come back in on the others) once the load has stayed
//! under `scale_down_at` for `scale_down_after`; the log and the metrics say so.

mod common;

use common::chatters::{cluster_toml, connect};
use common::history::Peer;
use common::lb::{self, agent_reply, node_of, wait_interest, Front, Pi, Proxy};
use common::nats::TestCluster;
use common::pg::PgDb;
use common::Node;
use std::time::{Duration, Instant};

/// Short enough for a test: heartbeats every 2/3 s.
const TIMING: &str = "node_timeout = \"2s\"\ndrain_period = \"1s\"\n";

/// Waits (bounded) until HAProxy's log holds `times` lines with every one of `needles`.
async fn wait_log_times(proxy: &Proxy, needles: &[&str], times: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = proxy
            .log_text()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count();
        if seen >= times {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "HAProxy logged {seen} of {times} lines with {needles:?}:\n{}",
            proxy.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn disconnect(peer: Peer) {
    peer.mqtt.client.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_users_when_the_load_rises_and_gives_them_back_when_it_falls() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let pis = [Pi::free(), Pi::free(), Pi::free()];
    let pi1 = pis[0].start(&cluster_toml(&nats, 0, "pi1", &pis[0], &db, TIMING));
    let pi2 = pis[1].start(&cluster_toml(&nats, 1, "pi2", &pis[1], &db, TIMING));
    let standby = format!(
        "{TIMING}standby = true\nscale_up_at = 2\nscale_down_at = 1\nscale_down_after = \"2s\"\n"
    );
    let pi3 = pis[2].start(&cluster_toml(&nats, 2, "pi3", &pis[2], &db, &standby));
    let front = Front::free();
    let haproxy = lb::haproxy(&front, &pis, &[]).await;

    // At rest: healthy, but the agent says drain and HAProxy sends it nobody.
    pi3.wait_for_log(&["standby: at rest"]).await;
    assert_eq!(agent_reply(pis[2].agent), "drain\n");
    wait_log_times(&haproxy, &["roost_mqtt/pi3 enters drain state"], 1).await;
    assert_eq!(pi3.metric("roost_standby_active"), Some(0.0));
    let nodes = [&pi1, &pi2, &pi3];
    let wait = Duration::from_secs(10);
    let mut early = Vec::new();
    for user in ["a1", "a2", "a3", "a4"] {
        early.push(connect(front.mqtt, user).await);
        assert_ne!(
            node_of(&nodes, user, wait).await,
            2,
            "{user} went to the standby"
        );
    }

    // Two per active node = scale_up_at: the standby takes users.
    let line = pi3.wait_for_log(&["standby: taking users"]).await;
    assert!(line.contains("load=\"2.0\""), "{line}");
    wait_log_times(&haproxy, &["roost_mqtt/pi3", "leaving forced drain"], 1).await;
    assert_eq!(pi3.metric("roost_standby_active"), Some(1.0));
    // leastconn: the standby has nobody, so the next user lands there, and chats.
    let mut newcomer = connect(front.mqtt, "n1").await;
    assert_eq!(node_of(&nodes, "n1", wait).await, 2);
    let a1 = early.remove(0);
    wait_interest(&nats, "pi3", "roost.m.im.dm.n1.*").await;
    a1.dm("n1", "hello-standby", "welcome").await;
    let (_, body) = newcomer.next_chat().await;
    assert_eq!(body["id"], "hello-standby");

    // Everyone else leaves: without the standby the load would be 1/2 < 1 for 2 s, so it
    // gives its user back, who comes back in on an active node.
    disconnect(a1).await;
    for peer in early {
        disconnect(peer).await;
    }
    let line = pi3.wait_for_log(&["standby: giving users back"]).await;
    assert!(line.contains("load=\"0.5\""), "{line}");
    let ended = loop {
        match newcomer.try_take(Duration::from_secs(15), |_| true).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("n1 still on the standby"),
            Err(ended) => break ended,
        }
    };
    assert!(ended.contains("ServerShuttingDown"), "{ended}");
    pi3.wait_for_log(&["standby: at rest again"]).await;
    assert_eq!(agent_reply(pis[2].agent), "drain\n");
    assert_eq!(pi3.metric("roost_standby_active"), Some(0.0));
    wait_log_times(&haproxy, &["roost_mqtt/pi3 enters drain state"], 2).await;
    let _back = connect(front.mqtt, "n1").await;
    // n1's second sign-in is on an active node (its first was on pi3).
    let signed_in = |n: &Node| n.log_text().matches("user=\"n1\"").count();
    let deadline = Instant::now() + wait;
    while signed_in(&pi1) + signed_in(&pi2) == 0 {
        assert!(
            Instant::now() < deadline,
            "n1 did not come back on pi1 or pi2"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
