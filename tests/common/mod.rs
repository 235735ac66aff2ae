//! Test harness: real `roost` processes on free ports, tokens signed with their secret, and
//! real MQTT clients.
#![allow(dead_code)]

pub mod backend;
pub mod chatters;
pub mod client;
pub mod history;
pub mod http;
pub mod lb;
pub mod nats;
pub mod pg;
pub mod process_log;
pub mod raw;
pub mod restart;
pub mod tools;
pub mod webdriver;

#[allow(unused_imports)]
pub(crate) use backend::{on_both_backends, Backend};

use process_log::ProcessLog;
use roost_auth::{mint_hs256, Claims, Role};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const SECRET: &str = "test-secret-for-roost-e2e-0123456789";

/// A `roost serve` process. Killed when dropped.
pub struct Node {
    child: Child,
    pub dir: tempfile::TempDir,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    pub ws: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
    /// What the node logs (stderr).
    log: ProcessLog,
}

/// Builds a node's config; `Node::start()` for the defaults used by most tests.
pub struct NodeBuilder {
    extra_toml: String,
    ws: bool,
    tls: bool,
    /// Fixed MQTT, WebSocket and HTTP addresses instead of free ones (a load balancer's
    /// config names them before the node starts).
    at: Option<[SocketAddr; 3]>,
}

/// The config of a cluster node named `node_id` on NATS server `server` of `nats`, with the
/// history in `db` (a cluster needs PostgreSQL); `extra` goes on in the `[cluster]` table
/// (more keys) or after it (more tables).
pub fn cluster_toml(
    nats: &nats::TestCluster,
    server: usize,
    node_id: &str,
    db: &pg::PgDb,
    extra: &str,
) -> String {
    format!(
        "[history]\ndatabase_url = \"{}\"\n\n[cluster]\nnode_id = \"{node_id}\"\nnats = [\"{}\"]\n{extra}",
        db.url,
        nats.url(server)
    )
}

impl Node {
    /// `roost ARGS --config THIS_NODE'S_CONFIG` (an admin command such as `user add`), with
    /// `stdin` written to its standard input (passwords never go in argv); its output,
    /// success or not.
    pub fn roost(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("roost.toml"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run roost");
        let mut input = child.stdin.take().expect("roost's stdin");
        input
            .write_all(stdin.as_bytes())
            .expect("write roost's stdin");
        drop(input);
        child.wait_with_output().expect("roost's output")
    }

    pub fn start() -> Node {
        Node::builder().start()
    }

    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            extra_toml: String::new(),
            ws: false,
            tls: false,
            at: None,
        }
    }

    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// Waits (up to [`client::WAIT`]) for a log line holding every one of `needles`;
    /// returns it, or panics with the log.
    pub async fn wait_for_log(&self, needles: &[&str]) -> String {
        self.wait_for_log_where(client::WAIT, &format!("{needles:?}"), |l| {
            needles.iter().all(|n| l.contains(n))
        })
        .await
    }

    /// Waits up to `within` for a log line `want` accepts (`what` says which in the panic
    /// message); returns it, or panics with the log.
    pub async fn wait_for_log_where(
        &self,
        within: Duration,
        what: &str,
        want: impl Fn(&str) -> bool,
    ) -> String {
        match self.log.wait_for(within, want).await {
            Some(line) => line,
            None => panic!(
                "no log line {what} within {within:?}; log:\n{}",
                self.log_text()
            ),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) for the process to exit and returns its status; panics if it runs on.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "roost still runs after {within:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node's process id (for /proc/<pid>/status and the like).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The value of the unlabelled metric `name` on the node's `/metrics`; `None` while the
    /// node does not show it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let answer = http::http_get(self.http, "/metrics", None, client::WAIT);
        assert_eq!(answer.status, 200, "/metrics: {}", answer.body);
        answer.body.lines().find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().expect("a number"))
        })
    }

    /// Waits (up to [`client::WAIT`]) until metric `name` shows a value `want` accepts, and
    /// returns it; panics with the last value otherwise.
    pub async fn wait_metric(&self, name: &str, want: impl Fn(f64) -> bool) -> f64 {
        let deadline = std::time::Instant::now() + client::WAIT;
        loop {
            let value = self.metric(name);
            match value {
                Some(v) if want(v) => return v,
                _ if std::time::Instant::now() >= deadline => {
                    panic!("{name} is {value:?} after {:?}", client::WAIT)
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

impl NodeBuilder {
    /// TOML appended to the generated config (use whole sections: `[limits]` etc. are not
    /// written by the builder except `[limits] connect_timeout` via `limits()`).
    pub fn toml(mut self, toml: &str) -> Self {
        self.extra_toml.push_str(toml);
        self.extra_toml.push('\n');
        self
    }

    pub fn ws(mut self) -> Self {
        self.ws = true;
        self
    }

    /// Listens on these MQTT, WebSocket and HTTP addresses (WebSocket on).
    pub fn at(mut self, mqtt: SocketAddr, ws: SocketAddr, http: SocketAddr) -> Self {
        self.ws = true;
        self.at = Some([mqtt, ws, http]);
        self
    }

    /// TLS and WSS listeners with the test certificate in tests/certs.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub fn start(self) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let certs = certs_dir();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let [mqtt_at, ws_at, http_at] = self.at.unwrap_or([any; 3]);
        let mut mqtt = format!("[mqtt]\nlisten = \"{mqtt_at}\"\n");
        if self.ws {
            mqtt.push_str(&format!("ws_listen = \"{ws_at}\"\n"));
        }
        if self.tls {
            mqtt.push_str(&format!(
                "tls_listen = \"127.0.0.1:0\"\nwss_listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                certs.join("server.crt").display(),
                certs.join("server.key").display()
            ));
        }
        let has_auth = self.extra_toml.contains("[auth]");
        let auth = if has_auth {
            String::new()
        } else {
            format!("[auth]\njwt_secret = \"{SECRET}\"\n")
        };
        // A test that sets `[http]` keys writes the whole section, `listen` included.
        let http = if self.extra_toml.contains("[http]") {
            String::new()
        } else {
            format!("[http]\nlisten = \"{http_at}\"\n")
        };
        // Tests written before presence visibility (issue 10) watch anyone's presence: they
        // run with `visibility = "all"`. A test about visibility writes its own `[presence]`
        // section (an empty one runs the default, `groups`).
        let presence = if self.extra_toml.contains("[presence]") {
            ""
        } else {
            "[presence]\nvisibility = \"all\"\n"
        };
        let config = format!(
            "[node]\ndata_dir = \"{}\"\n{mqtt}{http}{auth}{presence}{}",
            dir.path().join("data").display(),
            self.extra_toml
        );
        let config_path = dir.path().join("roost.toml");
        std::fs::write(&config_path, config).unwrap();

        let expected = 2 + usize::from(self.ws) + 2 * usize::from(self.tls);
        let (child, log, addrs) = serve(&config_path, expected, "roost did not start");
        Node {
            child,
            dir,
            mqtt: addrs["mqtt"],
            http: addrs["http"],
            ws: addrs.get("ws").copied(),
            tls: addrs.get("mqtt+tls").copied(),
            wss: addrs.get("wss").copied(),
            log,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `... listening kind="mqtt" addr=127.0.0.1:40841` -> ("mqtt", addr)
/// Starts `roost serve --config CONFIG` and waits (20 s per line at most) until its log
/// names `listeners` distinct listening addresses, by kind; panics with `what` and the log
/// if it does not.
fn serve(
    config: &Path,
    listeners: usize,
    what: &str,
) -> (
    Child,
    ProcessLog,
    std::collections::HashMap<String, SocketAddr>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("ROOST_LOG", "info,rumqttd=warn")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start roost");
    // The log: listening addresses now, the rest for assertions.
    let (tx, rx) = mpsc::channel();
    let log = ProcessLog::read(child.stderr.take().unwrap(), "roost", Some(tx));
    let mut addrs = std::collections::HashMap::new();
    while addrs.len() < listeners {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("{what}; log:\n{}", log.text());
        };
        if let Some((kind, addr)) = parse_listening(&line) {
            addrs.insert(kind, addr);
        }
    }
    (child, log, addrs)
}

fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    if !line.contains("listening") {
        return None;
    }
    let kind = line.split("kind=\"").nth(1)?.split('"').next()?.to_owned();
    let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
    Some((kind, addr.parse().ok()?))
}

pub fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs")
}

/// A token for `user` signed with the harness secret.
pub fn token(user: &str) -> String {
    token_with(user, &[], Role::User, Duration::from_secs(3600))
}

pub fn token_with(user: &str, groups: &[&str], role: Role, ttl: Duration) -> String {
    let claims = Claims::new(
        user,
        groups.iter().map(|g| g.to_string()).collect(),
        role,
        ttl,
    );
    mint_hs256(SECRET, &claims).unwrap()
}

/// Signs arbitrary claims (for expired, not-yet-valid, odd claims...).
pub fn token_from_claims(claims: &Claims) -> String {
    mint_hs256(SECRET, claims).unwrap()
}
