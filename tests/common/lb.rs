//! Load balancers in front of test nodes: the real HAProxy and Nginx running the very files
//! in deploy/ (their addresses filled in from the environment, or templated for Nginx), so
//! what the tests prove is what people deploy.

use super::Node;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use super::nats::free_port;

/// A free local address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A file of deploy/.
pub fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// The agent listener's address, from the node's `listening kind="agent"` log line.
pub async fn agent_addr(node: &Node) -> SocketAddr {
    let line = node.wait_for_log(&["kind=\"agent\""]).await;
    line.split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no agent address in {line:?}"))
}

/// What the agent answers one check with.
pub fn agent_reply(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// Where one node behind the balancer listens.
#[derive(Clone, Copy, Debug)]
pub struct Pi {
    pub mqtt: SocketAddr,
    pub ws: SocketAddr,
    pub http: SocketAddr,
    pub agent: SocketAddr,
}

impl Pi {
    /// A running node's addresses (it must have a WebSocket and an agent listener).
    pub async fn of(node: &Node) -> Pi {
        Pi {
            mqtt: node.mqtt,
            ws: node
                .ws
                .expect("a node behind the balancer serves WebSocket"),
            http: node.http,
            agent: agent_addr(node).await,
        }
    }

    /// Free addresses for a node that starts later (or never: a Pi that is off).
    pub fn free() -> Pi {
        Pi {
            mqtt: free_addr(),
            ws: free_addr(),
            http: free_addr(),
            agent: free_addr(),
        }
    }

    /// The `ROOST_PI{n}*` variables deploy/haproxy.cfg and deploy/nginx.conf read.
    pub fn vars(&self, n: u8) -> Vec<(String, String)> {
        vec![
            (format!("ROOST_PI{n}"), self.mqtt.ip().to_string()),
            (format!("ROOST_PI{n}_MQTT"), self.mqtt.port().to_string()),
            (format!("ROOST_PI{n}_WS"), self.ws.port().to_string()),
            (format!("ROOST_PI{n}_HTTP"), self.http.port().to_string()),
            (format!("ROOST_PI{n}_AGENT"), self.agent.port().to_string()),
        ]
    }

    /// Starts a node on these addresses with `toml` appended to its config.
    pub fn start(&self, toml: &str) -> Node {
        Node::builder()
            .at(self.mqtt, self.ws, self.http)
            .toml(toml)
            .start()
    }
}

/// A proxy process, killed when dropped; its output goes to a file, shown on failure.
pub struct Proxy {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn spawn(mut command: Command, dir: tempfile::TempDir, what: &str) -> Proxy {
        let log = dir.path().join("proxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start ({e}): apt install {what}"));
        Proxy {
            child,
            log,
            _dir: dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until `addr` accepts connections.
    pub fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("proxy exited: {status:?}\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "nothing listens on {addr}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded by `within`) for a line of the proxy's log holding every `needle`.
    pub async fn wait_for_log(&self, needles: &[&str], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self
                .log_text()
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no proxy log line with {needles:?} within {within:?}:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: Nginx's master stops its workers on SIGTERM, while killed
        // it would leave them running. Bounded: SIGKILL after 5 s.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- proxy log ---\n{}", self.log_text());
        }
    }
}

/// The balancer's own listeners.
pub struct Front {
    pub mqtt: SocketAddr,
    pub mqtts: SocketAddr,
    pub ws: SocketAddr,
}

impl Front {
    pub fn free() -> Front {
        Front {
            mqtt: free_addr(),
            mqtts: free_addr(),
            ws: free_addr(),
        }
    }
}

/// HAProxy on deploy/haproxy.cfg in front of `pis` (pi1, pi2, pi3: the file names three;
/// a missing one is given addresses where nothing listens, like a Pi that is off). The
/// nodes numbered in `off` (1 to 3) and the missing ones are not running yet: this returns
/// once HAProxy has marked them down.
pub async fn haproxy(front: &Front, pis: &[Pi], off: &[usize]) -> Proxy {
    assert!(pis.len() <= 3, "deploy/haproxy.cfg names three nodes");
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("roost.pem");
    let certs = super::certs_dir();
    let mut both = std::fs::read(certs.join("server.crt")).unwrap();
    both.extend(std::fs::read(certs.join("server.key")).unwrap());
    std::fs::write(&pem, both).unwrap();
    let mut vars = vec![
        ("ROOST_BIND_MQTT".to_owned(), front.mqtt.to_string()),
        ("ROOST_BIND_MQTTS".to_owned(), front.mqtts.to_string()),
        ("ROOST_BIND_WS".to_owned(), front.ws.to_string()),
        ("ROOST_TLS_PEM".to_owned(), pem.display().to_string()),
    ];
    for n in 1..=3u8 {
        let pi = pis
            .get(usize::from(n) - 1)
            .copied()
            .unwrap_or_else(Pi::free);
        vars.extend(pi.vars(n));
    }
    let mut command = Command::new("haproxy");
    command
        .arg("-db")
        .arg("-f")
        .arg(deploy("haproxy.cfg"))
        .envs(vars);
    let mut proxy = Proxy::spawn(command, dir, "haproxy");
    proxy.wait_listening(front.mqtt);
    for n in (1..=3).filter(|n| *n > pis.len() || off.contains(n)) {
        let server = format!("roost_mqtt/pi{n} is DOWN");
        proxy
            .wait_for_log(&[&server], Duration::from_secs(15))
            .await;
    }
    proxy
}

/// Nginx on deploy/nginx.conf (its `${ROOST_...}` placeholders filled in) in front of two
/// nodes, unprivileged-friendly: everything it writes stays in a temp dir, in the
/// foreground (`daemon off`), logging to stderr.
pub fn nginx(front: &Front, pis: [Pi; 2]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let certs = super::certs_dir();
    let mut vars = vec![
        ("ROOST_BIND_MQTT".to_owned(), front.mqtt.to_string()),
        ("ROOST_BIND_MQTTS".to_owned(), front.mqtts.to_string()),
        ("ROOST_BIND_WS".to_owned(), front.ws.to_string()),
        (
            "ROOST_TLS_CERT".to_owned(),
            certs.join("server.crt").display().to_string(),
        ),
        (
            "ROOST_TLS_KEY".to_owned(),
            certs.join("server.key").display().to_string(),
        ),
        (
            "ROOST_NGINX_TEMP".to_owned(),
            dir.path().join("temp").display().to_string(),
        ),
    ];
    vars.extend(pis[0].vars(1));
    vars.extend(pis[1].vars(2));
    let mut config = std::fs::read_to_string(deploy("nginx.conf")).unwrap();
    for (name, value) in &vars {
        config = config.replace(&format!("${{{name}}}"), value);
    }
    let unfilled = config
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && l.contains("${ROOST_"));
    if let Some(line) = unfilled {
        panic!("deploy/nginx.conf: a placeholder the test does not fill: {line}");
    }
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config).unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::create_dir(dir.path().join("temp")).unwrap();
    // Debian's modules-enabled/*.conf load `modules/...so`, relative to the prefix.
    std::os::unix::fs::symlink("/usr/lib/nginx/modules", dir.path().join("modules")).unwrap();
    let pid = dir.path().join("nginx.pid");
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(&conf)
        .arg("-g")
        .arg(format!("daemon off; pid {};", pid.display()));
    let mut proxy = Proxy::spawn(command, dir, "nginx");
    proxy.wait_listening(front.mqtt);
    proxy.wait_listening(front.ws);
    proxy
}

/// Which of `nodes` signed `user` in (by the node's log), waiting up to `within`.
pub async fn node_of(nodes: &[&Node], user: &str, within: Duration) -> usize {
    let line = format!("user=\"{user}\"");
    let deadline = Instant::now() + within;
    loop {
        if let Some(i) = nodes.iter().position(|n| n.log_text().contains(&line)) {
            return i;
        }
        assert!(Instant::now() < deadline, "{user} never signed in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until node `node_id`'s NATS connection subscribes `subject`: from then
/// on, messages published on any node reach it.
pub async fn wait_interest(nats: &super::nats::TestCluster, node_id: &str, subject: &str) {
    let name = format!("roost-{node_id}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !nats.subscriptions(&name).iter().any(|s| s == subject) {
        assert!(
            Instant::now() < deadline,
            "{name} never subscribed {subject}; it holds {:?}",
            nats.subscriptions(&name)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
