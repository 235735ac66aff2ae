//! Users chatting through a load balancer while nodes die, drain or join: each sends its
//! messages one at a time until each is acked, and when its connection goes it comes back
//! in through the balancer and sends again what was not acked, with the same id, as
//! docs/protocol.md tells clients to. What each went through is kept for the assertions
//! (tests/failover.rs) and the figures (tests/lb_bench.rs).

use super::history::Peer;
use super::lb::Pi;
use super::nats::TestCluster;
use super::pg::{psql, PgDb};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one message may take to be acked, retries included, before the test fails.
const MESSAGE_LIMIT: Duration = Duration::from_secs(120);

/// The `[cluster]` (and shared history) config of node `id` on NATS server `server`,
/// answering the agent check on `pi.agent`; `extra` goes into `[cluster]`.
pub fn cluster_toml(
    nats: &TestCluster,
    server: usize,
    id: &str,
    pi: &Pi,
    db: &PgDb,
    extra: &str,
) -> String {
    let agent = format!("agent_listen = \"{}\"\n{extra}", pi.agent);
    super::cluster_toml(nats, server, id, db, &agent)
}

/// Starts one cluster node per Pi, `pi1`, `pi2`, ..., node i on NATS server i, all with the
/// history in `db`.
pub fn start_cluster(nats: &TestCluster, db: &PgDb, pis: &[Pi]) -> Vec<super::Node> {
    pis.iter()
        .enumerate()
        .map(|(i, pi)| pi.start(&cluster_toml(nats, i, &format!("pi{}", i + 1), pi, db, "")))
        .collect()
}

/// Connects `user` through the balancer at `front` and subscribes to its DMs, trying again
/// while the connection fails (the balancer may still pick a dead node until its checks
/// notice), for at most a minute.
pub async fn connect(front: SocketAddr, user: &str) -> Peer {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match Peer::try_connect_as(front, user, user).await {
            Ok(mut peer) => {
                peer.subscribe(&format!("im/dm/{user}/+")).await;
                return peer;
            }
            Err(why) => {
                assert!(
                    Instant::now() < deadline,
                    "{user} could not get in through the balancer: {why}"
                );
                // Backing off, as a client app does: no storm of retries.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn is_ack(user: &str, id: &str) -> impl Fn(&Packet) -> bool {
    let sys = format!("im/sys/{user}");
    let id = id.to_owned();
    move |p| match p {
        Packet::Publish(p) if p.topic.as_ref() == sys.as_bytes() => {
            serde_json::from_slice::<Value>(&p.payload)
                .is_ok_and(|n| n["type"] == "ack" && n["id"] == id.as_str())
        }
        _ => false,
    }
}

/// What one chatting user went through.
pub struct Chatted {
    pub user: String,
    /// When its connection was lost, and when it was back in (signed in, subscribed).
    pub lost: Option<(Instant, Instant)>,
    /// How many sends were retries of a message not acked.
    pub resent: usize,
    /// Its connection at the end, still open, for the test to keep or end.
    pub peer: Peer,
}

/// How a user chats: `count` messages to `to`, a pause of `pace` after each ack; then it
/// stays connected for up to `linger` unless it was moved already (coming back in if its
/// connection goes meanwhile).
pub struct Plan {
    pub to: String,
    pub count: usize,
    pub pace: Duration,
    pub linger: Duration,
}

/// `peer` sends the planned direct messages, one at a time, each until its `ack` comes: a
/// message whose ack does not come (connection lost, or 5 s gone by) is sent again with the
/// same id, after reconnecting through `front` if the connection went. `acked` counts the
/// acks, for the test to time its fault.
pub async fn chat(
    front: SocketAddr,
    mut peer: Peer,
    plan: Plan,
    acked: Arc<AtomicUsize>,
) -> Chatted {
    let user = peer.user.clone();
    let mut lost_at = None;
    let mut resent = 0;
    let topic = format!("im/dm/{}/{user}", plan.to);
    for k in 0..plan.count {
        let id = format!("{user}-{k}");
        let body = format!(r#"{{"id":"{id}","kind":"text","body":"message {k}"}}"#);
        let limit = Instant::now() + MESSAGE_LIMIT;
        loop {
            assert!(Instant::now() < limit, "{id} never acked");
            let sent = peer
                .mqtt
                .client
                .publish(topic.as_str(), QoS::AtLeastOnce, false, body.clone())
                .await;
            let waited = match sent {
                Ok(()) => {
                    peer.try_take(Duration::from_secs(5), is_ack(&user, &id))
                        .await
                }
                Err(e) => Err(format!("{e:?}")),
            };
            match waited {
                Ok(Some(_)) => break,
                Ok(None) => resent += 1,
                Err(_ended) => {
                    let lost = Instant::now();
                    assert!(lost_at.is_none(), "{user} lost its connection twice");
                    peer = connect(front, &user).await;
                    lost_at = Some((lost, Instant::now()));
                    resent += 1;
                }
            }
        }
        acked.fetch_add(1, Ordering::Relaxed);
        // A person's pace, not a synchronisation.
        tokio::time::sleep(plan.pace).await;
    }
    // Lingering until moved once: a user already moved has nothing left to show.
    if lost_at.is_none() && peer.try_take(plan.linger, |_| false).await.is_err() {
        let lost = Instant::now();
        peer = connect(front, &user).await;
        lost_at = Some((lost, Instant::now()));
    }
    Chatted {
        user,
        lost: lost_at,
        resent,
        peer,
    }
}

/// Waits (bounded) until `acked` reaches `at`.
pub async fn wait_acked(acked: &AtomicUsize, at: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::Relaxed) < at {
        assert!(
            Instant::now() < deadline,
            "the chat does not get going: {} of {at} acked",
            acked.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What history holds: `sender-msg_id` of every stored message (duplicates kept), sorted.
pub fn stored(db: &PgDb) -> Vec<String> {
    let mut all: Vec<String> = psql(
        &db.url,
        "SELECT sender || '-' || msg_id FROM history_messages",
    )
    .unwrap()
    .lines()
    .map(str::to_owned)
    .collect();
    all.sort();
    all
}

/// What history must hold once every user sent `count` messages: `user-user-k`, sorted.
pub fn expected(users: &[String], count: usize) -> Vec<String> {
    let mut want: Vec<String> = users
        .iter()
        .flat_map(|u| (0..count).map(move |k| format!("{u}-{u}-{k}")))
        .collect();
    want.sort();
    want
}
