//! The commands an operator and a user type: `roost token`, `roost check-config`,
//! `roost serve` with no config at all, and `roost-cli send` / `listen`.
mod common;

use common::client::{options, Client};
use common::tools::describe;
use common::{token, Node, SECRET};
use rumqttc::MqttOptions;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");
const ROOST_CLI: &str = env!("CARGO_BIN_EXE_roost-cli");

/// A command with no `ROOST_*` variables inherited from whoever runs the tests.
fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ROOST_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run the command")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", describe(out));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The claims of a JWT, decoded (not verified).
fn claims(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').nth(1).expect("header.claims.signature");
    let mut bits = 0u32;
    let mut n = 0;
    let mut bytes = Vec::new();
    for c in part.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {part}"),
        };
        bits = bits << 6 | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            bytes.push((bits >> n) as u8);
        }
    }
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn roost_token_mints_a_token_the_node_accepts() {
    let node = Node::start();
    let config = node.dir.path().join("roost.toml");
    let out = output(
        command(ROOST)
            .args([
                "token", "alice", "--groups", "a,b", "--ttl", "1h", "--config",
            ])
            .arg(&config),
    );
    let jwt = stdout(&out).trim().to_owned();

    let claims = claims(&jwt);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["groups"], serde_json::json!(["a", "b"]));
    let exp = claims["exp"].as_u64().expect("exp");
    assert!(exp.abs_diff(unix_now() + 3600) <= 60, "exp {exp}");

    let mut alice = Client::connect(options(&node, "alice", "alice", &jwt))
        .await
        .expect("the node accepts the token");
    // The groups are alice's: she may read group a, not group c.
    assert_eq!(alice.subscribe("im/grp/a/+").await, 1);
    assert_eq!(alice.subscribe("im/grp/b/+").await, 1);
    assert_eq!(alice.subscribe("im/grp/c/+").await, 0x80);
}

/// A config file in a fresh directory.
fn config_file(toml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roost.toml");
    std::fs::write(&path, toml).unwrap();
    (dir, path)
}

#[test]
fn check_config_prints_the_effective_config_with_the_secret_masked() {
    let (_dir, path) = config_file(&format!(
        "[auth]\njwt_secret = \"{SECRET}\"\n[limits]\nmax_connections = 7\n"
    ));
    let out = output(command(ROOST).args(["check-config", "--config"]).arg(&path));
    let shown = stdout(&out);
    assert!(!shown.contains(SECRET), "the secret is shown:\n{shown}");
    assert!(shown.contains(r#"jwt_secret = "***""#), "{shown}");
    // The file's value and the defaults around it.
    assert!(shown.contains("max_connections = 7"), "{shown}");
    assert!(shown.contains("max_packet_size = 69632"), "{shown}");
    assert!(shown.contains("max_queued_messages = 1000"), "{shown}");
    assert!(shown.contains(r#"listen = "127.0.0.1:1883""#), "{shown}");
    // An environment variable overrides the file.
    let out = output(
        command(ROOST)
            .args(["check-config", "--config"])
            .arg(&path)
            .env("ROOST_LIMITS__MAX_CONNECTIONS", "9"),
    );
    assert!(stdout(&out).contains("max_connections = 9"));
}

#[test]
fn check_config_names_an_unknown_key() {
    let (_dir, path) = config_file("[mqtt]\nlisten = \"127.0.0.1:1883\"\nlisten_port = 1883\n");
    let out = output(command(ROOST).args(["check-config", "--config"]).arg(&path));
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listen_port"), "{}", describe(&out));

    // The same from the environment.
    let (_dir, path) = config_file("");
    let out = output(
        command(ROOST)
            .args(["check-config", "--config"])
            .arg(&path)
            .env("ROOST_LIMITS__MAX_CONECTIONS", "9"),
    );
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_conections"), "{}", describe(&out));
}

/// `roost serve` run in `dir` with no config file, on ports the OS picks.
struct Bare {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
    mqtt: SocketAddr,
}

impl Bare {
    fn start(dir: &Path) -> Bare {
        let mut child = command(ROOST)
            .arg("serve")
            .current_dir(dir)
            .env("ROOST_MQTT__LISTEN", "127.0.0.1:0")
            .env("ROOST_HTTP__LISTEN", "127.0.0.1:0")
            .env("ROOST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start roost");
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut bare = Bare {
            child,
            log,
            lines,
            mqtt: "0.0.0.0:0".parse().unwrap(),
        };
        let line = bare.wait_for("kind=\"mqtt\"");
        bare.mqtt = line
            .split("addr=")
            .nth(1)
            .and_then(|a| a.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .expect("listening address");
        bare
    }

    /// Waits (bounded) for a log line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no log line with {needle:?}; log:\n{}",
                    self.log.lock().unwrap().join("\n")
                ),
            }
        }
    }

    fn options(&self, user: &str, token: &str) -> MqttOptions {
        let mut o = MqttOptions::new(user, self.mqtt.ip().to_string(), self.mqtt.port());
        o.set_credentials(user, token);
        o
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn serve_with_no_config_makes_a_secret_and_says_how_to_mint_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Bare::start(dir.path());
    node.wait_for("roost token alice");

    let secret_file = dir.path().join("roost-data/jwt_secret");
    let secret = std::fs::read_to_string(&secret_file).expect("./roost-data/jwt_secret");
    assert!(secret.trim().len() >= 32, "a short secret: {secret:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "jwt_secret readable by others: {mode:o}");
    }

    // `roost token` in the same directory signs with that secret.
    let out = output(
        command(ROOST)
            .arg("token")
            .arg("alice")
            .current_dir(dir.path()),
    );
    let jwt = stdout(&out).trim().to_owned();
    Client::connect(node.options("alice", &jwt))
        .await
        .expect("the node accepts a token from `roost token`");
    // A token signed with anything else is refused.
    assert!(Client::connect(node.options("alice", &token("alice")))
        .await
        .is_err());

    // The secret is kept: after a restart the same token still works.
    drop(node);
    let node = Bare::start(dir.path());
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
    Client::connect(node.options("alice", &jwt))
        .await
        .expect("the token still works after a restart");
}

/// A running `roost-cli listen`, its stdout read line by line.
struct Listener {
    child: Child,
    stdout: mpsc::Receiver<String>,
}

impl Listener {
    /// Starts `roost-cli ... listen ARGS` and waits until it says it is listening (it
    /// prints that once its subscriptions are acknowledged).
    fn start(port: u16, token: &str, args: &[&str]) -> Listener {
        let mut child = command(ROOST_CLI)
            .args(["--port", &port.to_string(), "--token", token, "listen"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start roost-cli listen");
        let (out_tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        let (err_tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match stderr.recv_timeout(left) {
                Ok(line) if line.starts_with("listening as ") => break,
                Ok(line) => seen.push(line),
                Err(_) => panic!("roost-cli listen never said it listens: {seen:?}"),
            }
        }
        Listener { child, stdout }
    }

    /// The stdout lines (JSON) up to and including the first whose `topic` is `topic`.
    fn lines_until(&mut self, topic: &str) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.stdout.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => panic!("no message on {topic}; printed: {seen:?}"),
            };
            let value: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let done = value["topic"] == topic;
            seen.push(value);
            if done {
                return seen;
            }
        }
    }

    /// The next stdout line that is a JSON object whose `topic` is `topic`.
    fn next_on(&mut self, topic: &str) -> serde_json::Value {
        let mut lines = self.lines_until(topic);
        lines
            .pop()
            .expect("lines_until ends with the line on `topic`")
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli_send(port: u16, token: &str, extra: &[&str], to: &str, text: &str) -> String {
    let out = output(
        command(ROOST_CLI)
            .args(["--port", &port.to_string(), "--token", token])
            .args(extra)
            .args(["send", "--to", to, text]),
    );
    stdout(&out).trim().to_owned()
}

#[test]
fn roost_cli_send_reaches_roost_cli_listen_json() {
    let node = Node::start();
    let port = node.mqtt.port();
    let mut bob = Listener::start(port, &token("bob"), &["--json"]);
    let id = cli_send(port, &token("alice"), &[], "bob", "hello bob");
    assert!(!id.is_empty(), "send printed no message id");

    let line = bob.next_on("im/dm/bob/alice");
    let payload = &line["payload"];
    assert_eq!(payload["id"], id.as_str(), "{line}");
    assert_eq!(payload["kind"], "text", "{line}");
    assert_eq!(payload["body"], "hello bob", "{line}");
}

#[test]
fn roost_cli_v5_listen_stops_after_count() {
    let node = Node::start();
    let port = node.mqtt.port();
    let mut bob = Listener::start(
        port,
        &token("bob"),
        &[
            "--json",
            "--count",
            "1",
            "--topic",
            "im/dm/bob/+",
            "--mqtt-v5",
        ],
    );
    let id = cli_send(port, &token("alice"), &["--mqtt-v5"], "bob", "over v5");
    let line = bob.next_on("im/dm/bob/alice");
    assert_eq!(line["payload"]["id"], id.as_str(), "{line}");
    assert_eq!(line["payload"]["body"], "over v5", "{line}");
    // --count 1: it exits by itself, successfully.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = bob.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "listen --count 1 did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// Issue 10: when the node ends the connection because the token expired (v5 DISCONNECT
/// 0xA0), `roost-cli` stops instead of reconnecting with the dead token, and says why.
#[test]
fn roost_cli_stops_on_an_expired_token_and_says_why() {
    let node = Node::start();
    let claims = roost_auth::Claims::new(
        "bob",
        Vec::new(),
        roost_auth::Role::User,
        Duration::from_secs(1),
    );
    let short = common::token_from_claims(&claims);
    let out = common::tools::run_bounded(
        ROOST_CLI,
        &[
            "--port",
            &node.mqtt.port().to_string(),
            "--token",
            &short,
            "--mqtt-v5",
            "listen",
            "--topic",
            "im/dm/bob/+",
        ],
    );
    assert!(!out.status.success(), "{}", describe(&out));
    assert_ne!(
        out.status.code(),
        Some(124),
        "still running: {}",
        describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("token expired"), "{}", describe(&out));
    assert!(stderr.contains("0xA0"), "{}", describe(&out));
    assert!(!stderr.contains("reconnect"), "{}", describe(&out));
}

/// Issue 10: the answer to a request from another device of the same user does not reach
/// `roost-cli` (it used to print that device's raw `result` JSON): answers go to the asking
/// device's own `im/sys/{me}/{device}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roost_cli_does_not_print_other_devices_answers() {
    let node = Node::start();
    let port = node.mqtt.port();
    let mut cli = Listener::start(port, &token("alice"), &["--json"]);
    let mut phone = common::history::Peer::device(&node, "alice", "phone", &[]).await;
    phone.call("conversations", serde_json::json!({})).await;
    // A marker after the answer: whatever the CLI would print of the answer comes first.
    cli_send(port, &token("bob"), &[], "alice", "marker");
    let printed = cli.lines_until("im/dm/alice/bob");
    assert!(
        !printed.iter().any(|l| l["payload"]["type"] == "result"),
        "roost-cli printed another device's answer: {printed:?}"
    );
}

/// `roost-cli --help` lists every command.
#[test]
fn roost_cli_help_lists_every_command() {
    let out = output(command(ROOST_CLI).arg("--help"));
    let help = stdout(&out);
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands section")
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        ["chat", "send", "listen", "history", "read", "bench", "token", "help"],
        "{help}"
    );
    let about = help.lines().next().unwrap();
    for command in &commands[..commands.len() - 1] {
        assert!(
            about.contains(command),
            "the summary misses {command}: {about}"
        );
    }
}

/// `roost-cli chat ARGS` for `user` with stdin closed: it connects, catches up, and leaves.
/// (stdout, stderr).
fn chat_once(port: u16, user: &str, state: &Path) -> (String, String) {
    let out = output(
        command(ROOST_CLI)
            .args(["--port", &port.to_string(), "--token", &token(user)])
            .arg("--state-dir")
            .arg(state)
            .arg("chat"),
    );
    let text = stdout(&out);
    (text, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The client id a chat said it connected as.
fn connected_as(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("connected as "))
        .and_then(|l| l.split(';').next())
        .unwrap_or_else(|| panic!("no `connected as`: {stderr}"))
        .to_owned()
}

/// `roost-cli chat` follows docs/writing-a-client.md: the same device id on every start
/// (kept in its state file), a sync cursor kept between runs, so a restarted chat shows
/// what was sent while it was away, once; `roost-cli read` stores the read position.
#[test]
fn roost_cli_chat_keeps_its_device_and_catches_up() {
    let node = Node::start();
    let port = node.mqtt.port();
    let state = tempfile::tempdir().unwrap();

    let (out, err) = chat_once(port, "bob", state.path());
    assert!(err.contains("first start on this device"), "{err}");
    assert!(!out.contains("[dm]"), "{out}");
    let device = connected_as(&err);
    assert!(device.starts_with("bob:cli-"), "{device}");
    let file: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state.path().join("roost-cli/bob.json")).expect("the state file"),
    )
    .unwrap();
    let short = device.strip_prefix("bob:").unwrap();
    assert_eq!(file["device"], short, "{file}");
    assert!(file["cursors"][short].is_string(), "{file}");

    // Sent while bob's chat is closed (and stored: --wait-ack).
    let sent = output(
        command(ROOST_CLI)
            .args(["--port", &port.to_string(), "--token", &token("alice")])
            .args(["send", "--wait-ack", "--to", "bob", "while you were away"]),
    );
    stdout(&sent);

    let (out, err) = chat_once(port, "bob", state.path());
    assert_eq!(connected_as(&err), device, "the same device id");
    assert!(err.contains("catching up"), "{err}");
    let missed: Vec<&str> = out.lines().filter(|l| l.starts_with("[dm]")).collect();
    assert_eq!(missed, ["[dm] alice: while you were away"], "{out}");

    // Shown once: the next start has nothing new.
    let (out, _) = chat_once(port, "bob", state.path());
    assert!(!out.contains("[dm]"), "shown again: {out}");

    let read = output(
        command(ROOST_CLI)
            .args(["--port", &port.to_string(), "--token", &token("bob")])
            .args(["read", "dm:alice:bob", "1"]),
    );
    assert_eq!(stdout(&read).trim(), "read up to 1 in dm:alice:bob");
    let list = output(
        command(ROOST_CLI)
            .args(["--port", &port.to_string(), "--token", &token("bob")])
            .args(["history", "--json"]),
    );
    let list: serde_json::Value = serde_json::from_str(stdout(&list).trim()).unwrap();
    assert_eq!(list[0]["conv"], "dm:alice:bob", "{list}");
    assert_eq!(list[0]["read_seq"], 1, "{list}");
    assert_eq!(list[0]["unread"], 0, "{list}");
}
