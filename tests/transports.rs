//! The same direct message over every transport a node serves: TLS, WebSocket (path
//! `/mqtt`, subprotocol `mqtt`) and WebSocket over TLS, with clients people actually use.
mod common;

use common::tools::{describe, paho, run_bounded, Subscriber};
use common::{certs_dir, token, Node};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn ca_file() -> String {
    certs_dir().join("server.crt").display().to_string()
}

fn node() -> Node {
    Node::builder().ws().tls().start()
}

#[test]
fn direct_message_over_tls_with_paho() {
    let node = node();
    let port = node.tls.unwrap().port().to_string();
    let (alice, bob, ca) = (token("alice"), token("bob"), ca_file());
    for version in [None, Some("--v5")] {
        let mut args = vec!["127.0.0.1", &port, &alice, &bob, "--cafile", &ca];
        args.extend(version);
        paho("dm.py", &args);
    }
}

#[test]
fn direct_message_over_tls_with_mosquitto() {
    let node = node();
    let port = node.tls.unwrap().port().to_string();
    let (alice, bob, ca) = (token("alice"), token("bob"), ca_file());
    let mut sub = Subscriber::start(&[
        "-h",
        "localhost",
        "-p",
        &port,
        "--cafile",
        &ca,
        "-u",
        "bob",
        "-P",
        &bob,
        "-i",
        "bob",
        "-q",
        "1",
        "-t",
        "im/dm/bob/+",
        "-C",
        "1",
        "-W",
        "30",
    ]);
    sub.wait_for("received SUBACK");
    let message = r#"{"id":"tls-1","kind":"text","body":"over TLS"}"#;
    let out = run_bounded(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &ca,
            "-u",
            "alice",
            "-P",
            &alice,
            "-i",
            "alice",
            "-q",
            "1",
            "-t",
            "im/dm/bob/alice",
            "-m",
            message,
        ],
    );
    assert!(out.status.success(), "mosquitto_pub: {}", describe(&out));
    assert_eq!(
        sub.wait_for("im/dm/bob/alice "),
        format!("im/dm/bob/alice {message}")
    );
    assert!(sub.exit_status().success());
}

#[test]
fn tls_refuses_a_client_that_does_not_trust_the_certificate() {
    // Without --cafile the self-signed certificate is not trusted: no sign-in happens in
    // clear text or otherwise.
    let node = node();
    let port = node.tls.unwrap().port().to_string();
    let out = run_bounded(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &port,
            "--capath",
            "/nonexistent",
            "-u",
            "alice",
            "-P",
            &token("alice"),
            "-i",
            "alice",
            "-t",
            "im/dm/bob/alice",
            "-m",
            "{}",
        ],
    );
    assert!(!out.status.success(), "{}", describe(&out));
}

#[test]
fn direct_message_over_websocket_with_paho() {
    let node = node();
    let port = node.ws.unwrap().port().to_string();
    let (alice, bob) = (token("alice"), token("bob"));
    paho("dm.py", &["127.0.0.1", &port, &alice, &bob, "--ws"]);
    paho("dm.py", &["127.0.0.1", &port, &alice, &bob, "--ws", "--v5"]);
}

#[test]
fn direct_message_over_websocket_tls_with_paho() {
    let node = node();
    let port = node.wss.unwrap().port().to_string();
    let (alice, bob, ca) = (token("alice"), token("bob"), ca_file());
    paho(
        "dm.py",
        &["127.0.0.1", &port, &alice, &bob, "--ws", "--cafile", &ca],
    );
}

/// Sends a WebSocket upgrade request for `path` offering subprotocol `mqtt`; the status
/// line of the answer.
fn upgrade(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    // The status line and headers, up to the blank line.
    while !answer.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            Ok(_) => break,
            Err(e) => panic!("reading the upgrade answer: {e}; got {answer:?}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn websocket_is_served_at_mqtt_only() {
    let node = node();
    let ws = node.ws.unwrap();
    let answer = upgrade(ws, "/mqtt");
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol: mqtt"),
        "{answer}"
    );
    for path in ["/", "/ws", "/mqtt/x", "/MQTT"] {
        let answer = upgrade(ws, path);
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }
    node.wait_for_log(&["handshake failed"]).await;
}
