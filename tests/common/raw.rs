//! Raw MQTT over a TCP socket for the bad-input tests: hand-built packets (any bytes at all),
//! and a reader that reports exactly what the node answered before it closed.

use super::client::WAIT;
use super::Node;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// MQTT 3.1.1 protocol level.
pub const V311: u8 = 4;
/// MQTT 5.0 protocol level.
pub const V5: u8 = 5;

/// A control packet as read off the wire: first byte (type and flags) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacket {
    pub byte1: u8,
    pub body: Vec<u8>,
}

impl RawPacket {
    pub fn kind(&self) -> u8 {
        self.byte1 >> 4
    }

    /// The return code (v3.1.1) or reason code (v5) of a CONNACK.
    pub fn connack_code(&self) -> u8 {
        assert_eq!(self.kind(), 2, "not a CONNACK: {self:?}");
        self.body[1]
    }

    /// The reason code of a v5 DISCONNECT (0 when the body is empty).
    pub fn disconnect_reason(&self) -> u8 {
        assert_eq!(self.kind(), 14, "not a DISCONNECT: {self:?}");
        self.body.first().copied().unwrap_or(0)
    }

    /// The Reason String property (0x1F) of a v5 DISCONNECT, if it has one.
    pub fn reason_string(&self) -> Option<String> {
        assert_eq!(self.kind(), 14, "not a DISCONNECT: {self:?}");
        let mut props = self.body.get(1..)?.to_vec();
        // Property length, then (id, value) pairs; only the reason string is looked for.
        let mut at = 0;
        let mut len = 0usize;
        loop {
            let b = *props.get(at)?;
            len |= usize::from(b & 0x7f) << (7 * at);
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        props.drain(..at);
        assert_eq!(props.len(), len, "property length: {self:?}");
        match props.as_slice() {
            [0x1f, hi, lo, rest @ ..] => {
                let n = usize::from(u16::from_be_bytes([*hi, *lo]));
                Some(String::from_utf8(rest.get(..n)?.to_vec()).expect("UTF-8 reason string"))
            }
            _ => None,
        }
    }
}

/// Everything the node sent until it closed the connection.
#[derive(Debug)]
pub struct Closed {
    /// The whole packets received before the close.
    pub packets: Vec<RawPacket>,
    /// Bytes after the last whole packet (a well-formed server leaves none).
    pub trailing: Vec<u8>,
}

/// One raw connection to a node.
pub struct Raw {
    pub stream: TcpStream,
    /// Our end of the connection: the peer address the node sees and logs.
    pub local: SocketAddr,
    read: Vec<u8>,
}

impl Raw {
    pub async fn open(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect to the node");
        let local = stream.local_addr().unwrap();
        Raw {
            stream,
            local,
            read: Vec::new(),
        }
    }

    /// Opens a connection and signs in as `user` (client id = user) with a valid token.
    pub async fn sign_in(node: &Node, level: u8, user: &str) -> Raw {
        let mut raw = Raw::open(node.mqtt).await;
        raw.send(&connect(level, user, Some(user), Some(&super::token(user))))
            .await;
        let ack = raw
            .next_packet()
            .await
            .expect("closed instead of a CONNACK");
        assert_eq!(ack.connack_code(), 0, "sign-in refused: {ack:?}");
        raw
    }

    /// The `peer=...` a node's log line about this connection carries.
    pub fn peer(&self) -> String {
        format!("peer={} ", self.local)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("write to the node");
    }

    /// The next whole packet, or `None` if the node closed first. Panics after [`WAIT`].
    pub async fn next_packet(&mut self) -> Option<RawPacket> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(packet) = take_packet(&mut self.read) {
                return Some(packet);
            }
            if !self.read_more(deadline).await {
                return None;
            }
        }
    }

    /// Reads until the node closes the connection; panics if it is still open after
    /// `within`.
    pub async fn closed_within(&mut self, within: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + within;
        while self.read_more(deadline).await {}
        let mut packets = Vec::new();
        while let Some(packet) = take_packet(&mut self.read) {
            packets.push(packet);
        }
        Closed {
            packets,
            trailing: std::mem::take(&mut self.read),
        }
    }

    /// Reads until the node closes the connection (bounded by [`WAIT`]).
    pub async fn closed(&mut self) -> Closed {
        self.closed_within(WAIT).await
    }

    /// `false` once the node has closed the connection.
    async fn read_more(&mut self, deadline: tokio::time::Instant) -> bool {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => panic!(
                "the node neither answered nor closed the connection; received so far: {:?}",
                self.read
            ),
            Ok(Ok(0)) => false,
            Ok(Ok(n)) => {
                self.read.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Ok(Err(e)) => panic!("read error: {e}"),
        }
    }
}

/// Takes one whole packet off the front of `buf`.
fn take_packet(buf: &mut Vec<u8>) -> Option<RawPacket> {
    let byte1 = *buf.first()?;
    let mut len = 0usize;
    let mut at = 1;
    loop {
        let b = *buf.get(at)?;
        len |= usize::from(b & 0x7f) << (7 * (at - 1));
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return None;
        }
    }
    if buf.len() < at + len {
        return None;
    }
    let body = buf[at..at + len].to_vec();
    buf.drain(..at + len);
    Some(RawPacket { byte1, body })
}

/// MQTT variable byte integer.
pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A packet: first byte, remaining length, body.
pub fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// A length-prefixed MQTT string (any bytes).
pub fn string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A CONNECT with clean session/start, keepalive 60s, no will, no properties.
pub fn connect(
    level: u8,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> Vec<u8> {
    connect_with_name(b"MQTT", level, client_id, username, password)
}

/// A CONNECT with any protocol name and level (for unsupported versions).
pub fn connect_with_name(
    name: &[u8],
    level: u8,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> Vec<u8> {
    let mut flags = 0x02;
    if username.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    let mut body = string(name);
    body.extend([level, flags, 0, 60]);
    if level == V5 {
        body.push(0); // no properties
    }
    body.extend(string(client_id.as_bytes()));
    if let Some(u) = username {
        body.extend(string(u.as_bytes()));
    }
    if let Some(p) = password {
        body.extend(string(p.as_bytes()));
    }
    packet(0x10, &body)
}

/// A PUBLISH to any topic bytes; `qos` goes into the header as given (even 3).
pub fn publish(level: u8, topic: &[u8], qos: u8, pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend(pkid.to_be_bytes());
    }
    if level == V5 {
        body.push(0); // no properties
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

/// A SUBSCRIBE for one filter at QoS 1.
pub fn subscribe(level: u8, pkid: u16, filter: &str) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if level == V5 {
        body.push(0);
    }
    body.extend(string(filter.as_bytes()));
    body.push(1);
    packet(0x82, &body)
}

/// Waits (bounded) for one log line holding every one of `needles`; returns it.
pub async fn log_line(node: &Node, needles: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(line) = node
            .log_text()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return line.to_owned();
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "no log line with all of {needles:?}; log:\n{}",
                node.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resident memory of a process in KiB (VmRSS in /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}
