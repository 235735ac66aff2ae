//! A private NATS cluster for tests: three `nats-server` processes with JetStream, on free
//! ports, in a temp dir, routed to each other, killed on drop.
//!
//! Why private: tests must never touch a shared NATS (the one on :4222 may carry other
//! work), and a three-server cluster is what the contract promises to survive the loss of
//! one server. `nats-server` is the Debian package; `.ci/run` installs it.
//!
//! Shared by the end-to-end tests (tests/cluster.rs) and roost-bridge's own tests
//! (`bridge/src/lib.rs` includes this file).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a cluster may take to form (JetStream elects a meta leader).
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Server {
    client_port: u16,
    monitor_port: u16,
    child: Option<Child>,
}

/// Three routed `nats-server`s with JetStream.
pub struct TestCluster {
    servers: Vec<Server>,
    dir: TempDir,
}

/// A TCP port nobody listens on right now, below the kernel's ephemeral range: a port is
/// picked here and bound later by a server or node (sometimes stopped and started again on
/// it), and a port from the ephemeral range can be taken by some outgoing connection in
/// between. The one port picker of the tests (tests/common: pg, lb re-export it).
pub fn free_port() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Tests of one process run side by side: each call starts its search elsewhere.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let offset = NEXT.fetch_add(97, std::sync::atomic::Ordering::Relaxed);
    let start = 20_000 + (std::process::id() as u16 % 5_000).wrapping_add(offset) % 10_000;
    (start..ephemeral_start)
        .chain(20_000..start)
        .find(|&port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free port below the ephemeral range")
}

impl TestCluster {
    /// Starts three servers and returns once every one reports JetStream healthy.
    pub fn start() -> TestCluster {
        Self::start_with_token(None)
    }

    /// The same, with clients required to sign in with `token` when given.
    pub fn start_with_token(token: Option<&str>) -> TestCluster {
        let auth = token
            .map(|t| format!("authorization {{ token: {t:?} }}\n"))
            .unwrap_or_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("\"nats-route://127.0.0.1:{route}\""))
            .collect();
        let mut servers = Vec::new();
        for (i, (client, route, monitor)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            let config = format!(
                "server_name: {name}\n\
                 listen: \"127.0.0.1:{client}\"\n\
                 http: \"127.0.0.1:{monitor}\"\n\
                 jetstream {{ store_dir: {store:?}, max_memory_store: 64MB, max_file_store: 256MB }}\n\
                 cluster {{ name: roost-test, listen: \"127.0.0.1:{route}\", routes: [{}] }}\n\
                 {auth}",
                routes.join(", ")
            );
            let config_path = dir.path().join(format!("{name}.conf"));
            std::fs::write(&config_path, config).expect("write nats config");
            let child = spawn(dir.path(), &name);
            servers.push(Server {
                client_port: *client,
                monitor_port: *monitor,
                child: Some(child),
            });
        }
        let cluster = TestCluster { servers, dir };
        cluster.wait_formed();
        cluster
    }

    /// `nats://127.0.0.1:{port}` of server `i` (0, 1, 2).
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].client_port)
    }

    /// Starts server `i` again after [`TestCluster::kill`], on the same ports and store.
    pub fn restart(&mut self, i: usize) {
        if self.servers[i].child.is_none() {
            self.servers[i].child = Some(spawn(self.dir.path(), &format!("n{}", i + 1)));
        }
    }

    /// Kills server `i` (-9) and waits for it to be gone.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What each server's `/connz?subs=1` says about the client connection named `name`
    /// (roost names its connection `roost-{node_id}`): `None` if no server holds it.
    pub fn connection(&self, name: &str) -> Option<serde_json::Value> {
        self.servers.iter().find_map(|server| {
            let body = get(server.monitor_port, "/connz?subs=1&limit=1024")?;
            let connz: serde_json::Value = serde_json::from_str(&body).ok()?;
            connz["connections"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == name)
                .cloned()
        })
    }

    /// How many messages NATS delivered to the connection `name` through its subscriptions
    /// on subjects starting with `prefix` (`/connz?subs=detail` counts per subscription), so
    /// a test can count live chat traffic apart from the KV watches and heartbeats on the
    /// same connection. `None` if no server holds the connection.
    pub fn delivered(&self, name: &str, prefix: &str) -> Option<u64> {
        self.servers.iter().find_map(|server| {
            let body = get(server.monitor_port, "/connz?subs=detail&limit=1024")?;
            let connz: serde_json::Value = serde_json::from_str(&body).ok()?;
            let connection = connz["connections"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == name)?
                .clone();
            let subs = connection["subscriptions_list_detail"].as_array().cloned();
            Some(
                subs.unwrap_or_default()
                    .iter()
                    .filter(|s| s["subject"].as_str().is_some_and(|s| s.starts_with(prefix)))
                    .filter_map(|s| s["msgs"].as_u64())
                    .sum(),
            )
        })
    }

    /// The subjects the client connection `name` subscribes to now (empty if not connected).
    pub fn subscriptions(&self, name: &str) -> Vec<String> {
        let Some(connection) = self.connection(name) else {
            return Vec::new();
        };
        let mut subjects: Vec<String> = connection["subscriptions_list"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        subjects.sort();
        subjects
    }

    /// How many messages JetStream stream `stream` holds, as a running server's `/jsz`
    /// reports it (0 if none answers).
    pub fn stream_messages(&self, stream: &str) -> u64 {
        self.stream_detail(stream)
            .and_then(|detail| detail["state"]["messages"].as_u64())
            .unwrap_or(0)
    }

    fn stream_detail(&self, stream: &str) -> Option<serde_json::Value> {
        self.servers
            .iter()
            .filter(|server| server.child.is_some())
            .find_map(|server| {
                let body = get(server.monitor_port, "/jsz?accounts=true&streams=true")?;
                let jsz: serde_json::Value = serde_json::from_str(&body).ok()?;
                jsz["account_details"]
                    .as_array()?
                    .iter()
                    .filter_map(|account| account["stream_detail"].as_array())
                    .flatten()
                    .find(|detail| detail["name"] == stream)
                    .cloned()
            })
    }

    /// The index of the JetStream meta leader, as a running server reports it, if it is a
    /// running server (`None` during an election).
    pub fn meta_leader(&self) -> Option<usize> {
        self.servers
            .iter()
            .filter(|server| server.child.is_some())
            .find_map(|server| {
                let body = get(server.monitor_port, "/jsz")?;
                let jsz: serde_json::Value = serde_json::from_str(&body).ok()?;
                self.running_index(jsz["meta_cluster"]["leader"].as_str()?)
            })
    }

    /// The index of the server named `name` (`n1`, `n2`, ...), if it is running.
    fn running_index(&self, name: &str) -> Option<usize> {
        let i = name
            .strip_prefix('n')?
            .parse::<usize>()
            .ok()?
            .checked_sub(1)?;
        self.servers.get(i)?.child.as_ref().map(|_| i)
    }

    /// The index of the server leading JetStream stream `stream` now, as a running
    /// server's `/jsz` reports it; `None` while it has no leader (an election).
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        let detail = self.stream_detail(stream)?;
        self.running_index(detail["cluster"]["leader"].as_str()?)
    }

    /// The subscriptions of the client connection `name` now, each as its subject and
    /// queue group (`None`: a plain subscription), sorted.
    pub fn queue_subscriptions(&self, name: &str) -> Vec<(String, Option<String>)> {
        let found = self.servers.iter().find_map(|server| {
            let body = get(server.monitor_port, "/connz?subs=detail&limit=1024")?;
            let connz: serde_json::Value = serde_json::from_str(&body).ok()?;
            connz["connections"]
                .as_array()?
                .iter()
                .find(|c| c["name"] == name)
                .cloned()
        });
        let mut subs: Vec<(String, Option<String>)> = found
            .and_then(|c| c["subscriptions_list_detail"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| {
                let subject = s["subject"].as_str()?.to_owned();
                let queue = s["qgroup"].as_str().map(str::to_owned);
                Some((subject, queue))
            })
            .collect();
        subs.sort();
        subs
    }

    /// Polls each server's monitoring port until `/healthz` answers 200 (up and routed)
    /// and `/jsz` names a JetStream meta leader (its JetStream API answers).
    fn wait_formed(&self) {
        let deadline = Instant::now() + FORM_TIMEOUT;
        for (i, server) in self.servers.iter().enumerate() {
            while !ready(server.monitor_port) {
                assert!(
                    Instant::now() < deadline,
                    "NATS cluster did not form; server n{} log: {}",
                    i + 1,
                    self.log(i)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn log(&self, i: usize) -> String {
        let path: PathBuf = self.dir.path().join(format!("n{}.log", i + 1));
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

/// Starts server `name` (`n1`..`n3`) from its config file in `dir`, logging to a file
/// there (appended, so a restart keeps the first run's log).
fn spawn(dir: &std::path::Path, name: &str) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .expect("nats log file");
    Command::new("nats-server")
        .arg("-c")
        .arg(dir.join(format!("{name}.conf")))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("nats-server runs (Debian package nats-server; .ci/run installs it)")
}

fn ready(port: u16) -> bool {
    let has_leader = |jsz: &str| {
        serde_json::from_str::<serde_json::Value>(jsz).is_ok_and(|v| {
            v["meta_cluster"]["leader"]
                .as_str()
                .is_some_and(|leader| !leader.is_empty())
        })
    };
    get(port, "/healthz").is_some() && get(port, "/jsz").is_some_and(|body| has_leader(&body))
}

/// One HTTP GET of the monitoring endpoint: the body if the status is 200.
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.split_whitespace()
        .nth(1)
        .is_some_and(|status| status == "200")
        .then(|| body.to_string())
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.servers.len() {
                eprintln!("--- nats-server n{} log ---\n{}", i + 1, self.log(i));
            }
        }
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}
