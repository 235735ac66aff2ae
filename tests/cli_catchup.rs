//! `roost-cli chat` across a restart (issue 10, docs/writing-a-client.md): a chat that ran,
//! showed a message live and was left, shows on its next start what was sent while it was
//! away, and not again what it had shown. Real processes: the node, the CLI binary, its
//! state file.
mod common;

use common::tools::describe;
use common::{token, Node};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ROOST_CLI: &str = env!("CARGO_BIN_EXE_roost-cli");
const WAIT: Duration = Duration::from_secs(20);

/// `roost-cli --port P --token T(user) --state-dir S ARGS`, no `ROOST_*` inherited.
fn cli(port: u16, user: &str, state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(ROOST_CLI);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ROOST_") {
            cmd.env_remove(name);
        }
    }
    cmd.env_remove("RUST_LOG")
        .args(["--port", &port.to_string(), "--token", &token(user)])
        .arg("--state-dir")
        .arg(state)
        .args(args);
    cmd
}

fn succeeded(out: Output) -> String {
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The `[dm]` lines of a chat that connects, catches up and leaves (stdin closed).
fn chat_once(port: u16, user: &str, state: &Path) -> Vec<String> {
    let out = cli(port, user, state, &["chat"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    succeeded(out)
        .lines()
        .filter(|l| l.starts_with("[dm]"))
        .map(str::to_owned)
        .collect()
}

fn send(port: u16, state: &Path, text: &str) {
    let out = cli(
        port,
        "alice",
        state,
        &["send", "--wait-ack", "--to", "bob", text],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    succeeded(out);
}

#[test]
fn a_chat_left_and_started_again_shows_only_what_it_missed() {
    let node = Node::start();
    let port = node.mqtt.port();
    let bob_state = tempfile::tempdir().unwrap();
    let alice_state = tempfile::tempdir().unwrap();
    // First start on this device: nothing old, the cursor is kept from here.
    assert!(chat_once(port, "bob", bob_state.path()).is_empty());

    // A chat that stays open (stdin open) and shows alice's message as it comes.
    let mut chat = cli(port, "bob", bob_state.path(), &["chat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = chat.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stderr = BufReader::new(chat.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("connected as") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "chat ended early");
    }
    send(port, alice_state.path(), "seen live");
    loop {
        let line = lines.recv_timeout(WAIT).expect("the live message shown");
        if line.starts_with("[dm]") {
            assert_eq!(line, "[dm] alice: seen live");
            break;
        }
    }
    // Left (end of input): it syncs once more, so its kept cursor passes what it showed.
    drop(chat.stdin.take());
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = chat.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = chat.kill();
            panic!("the chat did not leave at the end of its input");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");

    send(port, alice_state.path(), "while you were away");
    assert_eq!(
        chat_once(port, "bob", bob_state.path()),
        ["[dm] alice: while you were away"]
    );
    assert!(chat_once(port, "bob", bob_state.path()).is_empty());
}
