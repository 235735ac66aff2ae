//! The cluster behind HAProxy (deploy/haproxy.cfg) when a node dies or joins: real
//! `roost serve` nodes on a private three-server NATS cluster and one PostgreSQL, real
//! HAProxy in front (CLUSTER.md, "Failure promises").
//!
//! - kill -9 one of three nodes while 30 users chat: its users are back, through HAProxy,
//!   on the others within 10 s; every message that got an `ack` is in history, and a user
//!   who resends what was not acked with the same id (docs/protocol.md) loses nothing and
//!   stores nothing twice. Presence ends right: once pi1's death is cleaned up, a watcher on
//!   a survivor last saw every user (all of them connected again) `online`.
//! - a node started later with the same `[cluster]` config serves as soon as HAProxy's
//!   checks see it: new users land on it and chat with users on the other nodes; no other
//!   node restarts.

mod common;

use common::chatters::{
    chat, cluster_toml, connect, expected, start_cluster, stored, wait_acked, Plan,
};
use common::history::Peer;
use common::lb::{self, node_of, wait_interest, Front, Pi};
use common::nats::TestCluster;
use common::pg::PgDb;
use common::Node;
use rumqttc::v5::mqttbytes::v5::Packet;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_one_of_three_nodes_users_come_back_and_nothing_acked_is_lost() {
    const USERS: usize = 30;
    const MESSAGES: usize = 12;
    let nats = TestCluster::start();
    let db = PgDb::create();
    let pis = [Pi::free(), Pi::free(), Pi::free()];
    let mut nodes = start_cluster(&nats, &db, &pis);
    let front = Front::free();
    let _haproxy = lb::haproxy(&front, &pis, &[]).await;
    // Watches everyone's presence (the harness runs `visibility = "all"`) on pi2, which
    // survives, from before anyone connects.
    let mut watcher = Peer::connect(&nodes[1], "watcher", &[]).await;
    watcher.subscribe("im/presence/+").await;

    let users: Vec<String> = (0..USERS).map(|i| format!("u{i:02}")).collect();
    let mut peers = Vec::new();
    for user in &users {
        peers.push(connect(front.mqtt, user).await);
    }
    // leastconn spreads them over the three nodes.
    let wait = Duration::from_secs(10);
    let refs: Vec<&Node> = nodes.iter().collect();
    let mut on = [0usize; 3];
    let mut on_pi1 = BTreeSet::new();
    for user in &users {
        let i = node_of(&refs, user, wait).await;
        on[i] += 1;
        if i == 0 {
            on_pi1.insert(user.clone());
        }
        // Its node holds its interest on NATS before anyone writes to it.
        let subject = format!("roost.m.im.dm.{user}.*");
        wait_interest(&nats, ["pi1", "pi2", "pi3"][i], &subject).await;
    }
    assert!(on.iter().all(|&n| n >= 5), "users per node: {on:?}");

    let acked = Arc::new(AtomicUsize::new(0));
    let chats: Vec<_> = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            let plan = Plan {
                to: users[(i + 1) % USERS].clone(),
                count: MESSAGES,
                pace: Duration::from_millis(50),
                linger: Duration::ZERO,
            };
            tokio::spawn(chat(front.mqtt, peer, plan, acked.clone()))
        })
        .collect();
    // Kill pi1 mid-chat: once a quarter of the messages are acked.
    wait_acked(&acked, USERS * MESSAGES / 4).await;
    let killed = Instant::now();
    let out = common::tools::run_bounded("kill", &["-KILL", &nodes[0].pid().to_string()]);
    assert!(out.status.success());
    let _ = nodes[0].wait_exit(Duration::from_secs(10));

    let mut back = Vec::new();
    let mut resent = 0;
    // Every user stays connected to the end, for the presence check.
    let mut connected = Vec::new();
    for chat in chats {
        let chatted = chat.await.expect("a chatting user failed");
        resent += chatted.resent;
        connected.push(chatted.peer);
        match chatted.lost {
            Some((lost, again)) => {
                assert!(
                    on_pi1.contains(&chatted.user),
                    "{} was not on pi1 but lost its connection",
                    chatted.user
                );
                assert!(lost >= killed);
                back.push(again - killed);
            }
            None => assert!(
                !on_pi1.contains(&chatted.user),
                "{} on pi1 never noticed it died",
                chatted.user
            ),
        }
    }
    back.sort();
    eprintln!(
        "{} users of pi1 back after kill -9 in {:?} (max), {resent} resends",
        back.len(),
        back.last()
    );
    assert_eq!(back.len(), on_pi1.len());
    assert!(
        back.last().is_some_and(|t| *t <= Duration::from_secs(10)),
        "back after {back:?}"
    );

    // Everything was acked in the end (resent with the same id until it was), so history
    // holds every message, each once.
    assert_eq!(
        stored(&db),
        expected(&users, MESSAGES),
        "history after the failover"
    );

    let statuses = presence_once_settled(&mut watcher, &nodes).await;
    let mut offline_between = Vec::new();
    for user in &users {
        let seen = statuses.get(user).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            seen.last().map(String::as_str),
            Some("online"),
            "{user} (on pi1: {}) is connected, but its presence went {seen:?}",
            on_pi1.contains(user)
        );
        if seen.iter().any(|s| s == "offline") {
            assert!(on_pi1.contains(user), "{user} was not on pi1: {seen:?}");
            offline_between.push(user.clone());
        }
    }
    eprintln!(
        "presence: all {USERS} users online in the end; {} of pi1's {} went offline between: \
         {offline_between:?}",
        offline_between.len(),
        on_pi1.len()
    );
    drop(connected);
}

/// Every presence status the `watcher` saw, per user, in order, once the statuses after
/// pi1's death are all out: pi2, the cleaner (the first live node by name), has removed
/// pi1 from every entry, and then a fence user connects; its `online` comes from a later
/// write to the presence bucket, and every node publishes the bucket's changes in order,
/// so once the watcher has it no earlier change is still to come.
async fn presence_once_settled(
    watcher: &mut Peer,
    nodes: &[Node],
) -> BTreeMap<String, Vec<String>> {
    nodes[1]
        .wait_for_log_where(Duration::from_secs(60), "pi1 cleaned up", |l| {
            l.contains("dead node cleaned up") && l.contains("pi1")
        })
        .await;
    let _fence = Peer::connect(&nodes[2], "fence", &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut statuses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(Packet::Publish(p)) = watcher
            .take(
                left,
                |p| matches!(p, Packet::Publish(p) if p.topic.starts_with(b"im/presence/")),
            )
            .await
        else {
            panic!("the fence's presence never came; seen so far: {statuses:?}");
        };
        let user = String::from_utf8_lossy(&p.topic["im/presence/".len()..]).into_owned();
        let payload: Value = serde_json::from_slice(&p.payload).expect("presence is JSON");
        let status = payload["status"].as_str().unwrap_or_default().to_owned();
        if user == "fence" && status == "online" {
            return statuses;
        }
        statuses.entry(user).or_default().push(status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_takes_new_users_once_haproxy_sees_it() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let pis = [Pi::free(), Pi::free(), Pi::free()];
    let mut pi1 = pis[0].start(&cluster_toml(&nats, 0, "pi1", &pis[0], &db, ""));
    let mut pi2 = pis[1].start(&cluster_toml(&nats, 1, "pi2", &pis[1], &db, ""));
    let (pid1, pid2) = (pi1.pid(), pi2.pid());
    let front = Front::free();
    // pi3's addresses are in the config, but it is not started: HAProxy has it down.
    let haproxy = lb::haproxy(&front, &pis, &[3]).await;
    let mut early = Vec::new();
    for user in ["e1", "e2", "e3", "e4"] {
        early.push(connect(front.mqtt, user).await);
    }

    let started = Instant::now();
    let pi3 = pis[2].start(&cluster_toml(&nats, 2, "pi3", &pis[2], &db, ""));
    haproxy
        .wait_for_log(&["roost_mqtt/pi3 is UP"], Duration::from_secs(30))
        .await;
    eprintln!("pi3 up in HAProxy {:?} after it started", started.elapsed());

    // leastconn: pi3 has nobody, so the next users land on it.
    let mut newcomer = connect(front.mqtt, "n1").await;
    let nodes = [&pi1, &pi2, &pi3];
    assert_eq!(node_of(&nodes, "n1", Duration::from_secs(10)).await, 2);
    // It serves in the cluster: a user of pi1 and the newcomer on pi3 chat both ways.
    let mut e1 = early.remove(0);
    let e1_node = ["pi1", "pi2"][node_of(&nodes, "e1", Duration::ZERO).await];
    wait_interest(&nats, "pi3", "roost.m.im.dm.n1.*").await;
    wait_interest(&nats, e1_node, "roost.m.im.dm.e1.*").await;
    e1.dm("n1", "to-new", "welcome").await;
    let (topic, body) = newcomer.next_chat().await;
    assert_eq!(
        (topic.as_str(), &body["id"]),
        ("im/dm/n1/e1", &"to-new".into())
    );
    newcomer.dm("e1", "from-new", "thanks").await;
    let (topic, body) = e1.next_chat().await;
    assert_eq!(
        (topic.as_str(), &body["id"]),
        ("im/dm/e1/n1", &"from-new".into())
    );
    newcomer.ack("from-new").await;

    // Nobody else restarted.
    assert!(pi1.is_running() && pi2.is_running());
    assert_eq!((pi1.pid(), pi2.pid()), (pid1, pid2));
}
