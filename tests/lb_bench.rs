//! Figures for BENCHMARKS.md (run by bench/lb.sh, ignored by a plain `cargo test`): how
//! long a thousand users take to be back after a node dies (kill -9) or drains, behind
//! HAProxy on deploy/haproxy.cfg, and how many acknowledged messages were lost (must be
//! none). Same parts as tests/failover.rs: real nodes, NATS cluster, PostgreSQL, HAProxy.
//!
//! Environment: `ROOST_BENCH_CLIENTS` (1000), `ROOST_BENCH_MESSAGES` per client (6),
//! `ROOST_BENCH_PACE_MS` between a client's messages (3000), `ROOST_BENCH_DRAIN_PERIOD_S`
//! (10).

mod common;

use common::chatters::{
    chat, cluster_toml, connect, expected, start_cluster, stored, wait_acked, Chatted, Plan,
};
use common::history::Peer;
use common::lb::{self, Front, Pi};
use common::nats::TestCluster;
use common::pg::PgDb;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Load {
    clients: usize,
    messages: usize,
    pace: Duration,
    /// How long a user stays after its last message (a drain must find everyone).
    linger: Duration,
}

impl Load {
    fn from_env() -> Load {
        Load {
            clients: setting("ROOST_BENCH_CLIENTS", 1000) as usize,
            messages: setting("ROOST_BENCH_MESSAGES", 6) as usize,
            pace: Duration::from_millis(setting("ROOST_BENCH_PACE_MS", 3000)),
            linger: Duration::ZERO,
        }
    }

    fn users(&self) -> Vec<String> {
        (0..self.clients).map(|i| format!("b{i:05}")).collect()
    }
}

/// Connects every user through `front`, 50 at a time.
async fn connect_all(front: SocketAddr, users: &[String]) -> Vec<Peer> {
    let mut peers = Vec::with_capacity(users.len());
    for batch in users.chunks(50) {
        let tasks: Vec<_> = batch
            .iter()
            .map(|u| {
                tokio::spawn({
                    let u = u.clone();
                    async move { connect(front, &u).await }
                })
            })
            .collect();
        for task in tasks {
            peers.push(task.await.expect("a user could not connect"));
        }
    }
    peers
}

/// Starts everyone chatting (each to the next user) and returns the tasks and the count of
/// acks.
fn start_chat(
    front: SocketAddr,
    peers: Vec<Peer>,
    users: &[String],
    load: &Load,
) -> (Vec<tokio::task::JoinHandle<Chatted>>, Arc<AtomicUsize>) {
    let acked = Arc::new(AtomicUsize::new(0));
    let tasks = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            let plan = Plan {
                to: users[(i + 1) % users.len()].clone(),
                count: load.messages,
                pace: load.pace,
                linger: load.linger,
            };
            tokio::spawn(chat(front, peer, plan, acked.clone()))
        })
        .collect();
    (tasks, acked)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Waits for the chat to end and prints the figures, `fault` being the kill or SIGTERM.
async fn report(
    what: &str,
    fault: Instant,
    tasks: Vec<tokio::task::JoinHandle<Chatted>>,
    db: &PgDb,
    users: &[String],
    load: &Load,
) -> usize {
    let mut back = Vec::new();
    let mut down = Vec::new();
    let mut resent = 0;
    for task in tasks {
        let chatted = task.await.expect("a chatting user failed");
        resent += chatted.resent;
        if let Some((lost, again)) = chatted.lost {
            back.push(again.saturating_duration_since(fault));
            down.push(again - lost);
        }
    }
    back.sort();
    down.sort();
    let stored = stored(db);
    let want = expected(users, load.messages);
    let missing = want
        .iter()
        .filter(|w| stored.binary_search(w).is_err())
        .count();
    let twice = stored.len() + missing - want.len();
    eprintln!(
        "FIGURES {what}: clients {} moved {} | back after the fault p50 {:.2} s, max {:.2} s \
         | each client's time away p50 {:.2} s, max {:.2} s | resends {resent} | messages \
         {} acked, {missing} missing from history, {twice} stored twice",
        load.clients,
        back.len(),
        percentile(&back, 0.5).as_secs_f64(),
        percentile(&back, 1.0).as_secs_f64(),
        percentile(&down, 0.5).as_secs_f64(),
        percentile(&down, 1.0).as_secs_f64(),
        want.len(),
    );
    assert!(!back.is_empty(), "nobody was moved");
    assert_eq!((missing, twice), (0, 0), "messages lost or doubled");
    back.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for BENCHMARKS.md: bench/lb.sh"]
async fn failover_figures() {
    let load = Load::from_env();
    let nats = TestCluster::start();
    let db = PgDb::create();
    let pis = [Pi::free(), Pi::free(), Pi::free()];
    let mut nodes = start_cluster(&nats, &db, &pis);
    let front = Front::free();
    let _haproxy = lb::haproxy(&front, &pis, &[]).await;
    let users = load.users();
    let peers = connect_all(front.mqtt, &users).await;
    let (tasks, acked) = start_chat(front.mqtt, peers, &users, &load);
    wait_acked(&acked, load.clients * load.messages / 4).await;
    let killed = Instant::now();
    let out = common::tools::run_bounded("kill", &["-KILL", &nodes[0].pid().to_string()]);
    assert!(out.status.success());
    let _ = nodes[0].wait_exit(Duration::from_secs(10));
    report("kill -9", killed, tasks, &db, &users, &load).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures for BENCHMARKS.md: bench/lb.sh"]
async fn drain_figures() {
    let period = setting("ROOST_BENCH_DRAIN_PERIOD_S", 10);
    let load = Load {
        linger: Duration::from_secs(period + 10),
        ..Load::from_env()
    };
    let period = format!("{period}s");
    let nats = TestCluster::start();
    let db = PgDb::create();
    let pis = [Pi::free(), Pi::free(), Pi::free()];
    let extra = format!("drain_period = \"{period}\"\n");
    // Everyone on pi1 first; then pi2 and pi3 join, and pi1 drains to them.
    let mut pi1 = pis[0].start(&cluster_toml(&nats, 0, "pi1", &pis[0], &db, &extra));
    let front = Front::free();
    let haproxy = lb::haproxy(&front, &pis, &[2, 3]).await;
    let users = load.users();
    let peers = connect_all(front.mqtt, &users).await;
    let _pi2 = pis[1].start(&cluster_toml(&nats, 1, "pi2", &pis[1], &db, &extra));
    let _pi3 = pis[2].start(&cluster_toml(&nats, 2, "pi3", &pis[2], &db, &extra));
    for up in ["roost_mqtt/pi2 is UP", "roost_mqtt/pi3 is UP"] {
        haproxy.wait_for_log(&[up], Duration::from_secs(30)).await;
    }
    let (tasks, acked) = start_chat(front.mqtt, peers, &users, &load);
    wait_acked(&acked, load.clients * load.messages / 4).await;
    let signalled = Instant::now();
    let out = common::tools::run_bounded("kill", &["-TERM", &pi1.pid().to_string()]);
    assert!(out.status.success());
    // Polled, not waited on: the users' tasks share this runtime.
    while pi1.is_running() {
        assert!(
            signalled.elapsed() < Duration::from_secs(120),
            "pi1 never exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = pi1.wait_exit(Duration::from_secs(1));
    assert!(status.success(), "{status:?}");
    eprintln!(
        "FIGURES drain ({period}): SIGTERM to exit {:.2} s",
        signalled.elapsed().as_secs_f64()
    );
    report(
        &format!("drain ({period})"),
        signalled,
        tasks,
        &db,
        &users,
        &load,
    )
    .await;
}
