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
    // The stamped copy: the bytes sent, then the server's fields (docs/protocol.md 4).
    let line = sub.wait_for("im/dm/bob/alice ");
    assert!(
        line.starts_with(&format!(
            "im/dm/bob/alice {}",
            message.trim_end_matches('}')
        )),
        "{line}"
    );
    assert!(line.contains(r#""from":"alice","seq":1,"ts":"#), "{line}");
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

/// A client's WebSocket frame header: FIN, binary, masked with the all-zero key (so the
/// payload goes as is), announcing `len` bytes of payload.
fn binary_frame_header(len: u64) -> Vec<u8> {
    let mut header = vec![0x82];
    match len {
        0..=125 => header.push(0x80 | len as u8),
        126..=0xffff => {
            header.push(0x80 | 126);
            header.extend((len as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend(len.to_be_bytes());
        }
    }
    header.extend([0, 0, 0, 0]);
    header
}

/// A finished WebSocket handshake at `/mqtt`.
async fn ws_open(addr: SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /mqtt HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\n") {
        answer.push(stream.read_u8().await.expect("the upgrade answer"));
    }
    assert!(answer.starts_with(b"HTTP/1.1 101"), "{answer:?}");
    stream
}

/// Reads until the node closes `stream`, for at most 10 s.
async fn ws_closed(stream: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the node kept the WebSocket open"),
        }
    }
}

/// A WebSocket frame longer than the largest MQTT packet is refused from its header,
/// before or after CONNECT, instead of being buffered (tungstenite's defaults allowed
/// 16 MiB frames and 64 MiB messages, whatever `limits.max_packet_size` said).
#[tokio::test]
async fn a_websocket_frame_over_the_packet_size_is_refused_from_its_header() {
    use common::client::{Client, Mqtt3};
    use common::raw::{self, Connect, V311, V5};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A connect timeout beyond the test's patience: the close must come from the header.
    let mut node = Node::builder()
        .ws()
        .toml("[limits]\nconnect_timeout = \"60s\"")
        .start();
    let ws = node.ws.unwrap();
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let carol = Client::<Mqtt3>::user(&node, "carol").await;
    let before = raw::rss_kib(node.pid());

    // Under tungstenite's default frame limit (16 MiB), far over the packet size.
    const ANNOUNCED: u64 = 15 << 20;
    const STREAMED: usize = 12 << 20;
    let chunk = vec![0u8; 64 * 1024];
    let mut peers = Vec::new();
    for (i, level) in [None, Some(V311), None, Some(V5)].into_iter().enumerate() {
        let mut stream = ws_open(ws).await;
        if let Some(level) = level {
            let user = format!("mallory{i}");
            let connect = Connect::user(level, &user, &token(&user)).encode();
            stream
                .write_all(&binary_frame_header(connect.len() as u64))
                .await
                .unwrap();
            stream.write_all(&connect).await.unwrap();
            // The CONNACK, in one unmasked binary frame: 0x82, length, 0x20, ...
            let mut ack = [0u8; 3];
            stream.read_exact(&mut ack).await.unwrap();
            assert_eq!(ack[..1], [0x82]);
            assert_eq!(ack[2], 0x20, "not a CONNACK: {ack:?}");
            let mut rest = vec![0u8; ack[1] as usize - 1];
            stream.read_exact(&mut rest).await.unwrap();
            peers.push(format!("peer={} ", stream.local_addr().unwrap()));
        }
        stream
            .write_all(&binary_frame_header(ANNOUNCED))
            .await
            .unwrap();
        // Stream the payload until the node stops reading it.
        let mut sent = 0;
        while sent < STREAMED {
            if stream.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        ws_closed(&mut stream).await;
    }
    let after = raw::rss_kib(node.pid());
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    for peer in &peers {
        node.wait_for_log(&[peer, "WebSocket frame over the maximum packet size"])
            .await;
    }

    // Everyone else goes on.
    carol
        .publish(
            "im/dm/bob/carol",
            r#"{"id":"c1","kind":"text","body":"still there?"}"#,
        )
        .await;
    let (topic, payload) = bob.next_publish().await;
    assert_eq!(topic, "im/dm/bob/carol");
    assert!(payload.contains("still there?"), "{payload}");
    assert!(
        node.is_running(),
        "the node died; log:\n{}",
        node.log_text()
    );
}
