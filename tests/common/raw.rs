//! Raw MQTT (3.1.1 or 5) over a plain TCP socket, for what a client library will not do:
//! send any bytes at all (a CONNECT a library refuses to build, malformed or hostile
//! packets), stay silent, or vanish without a DISCONNECT. It builds packets by hand and reads
//! whole frames back, reporting exactly what the node sent before it closed.

use super::client::WAIT;
use super::Node;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// MQTT 3.1.1 protocol level.
pub const V311: u8 = 4;
/// MQTT 5.0 protocol level.
pub const V5: u8 = 5;

/// Packet types (the high nibble of the first byte).
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const SUBACK: u8 = 9;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

/// A whole PINGREQ.
pub const PINGREQ: [u8; 2] = [0xc0, 0x00];
/// A whole DISCONNECT, normal disconnection (both versions).
pub const DISCONNECT_NORMAL: [u8; 2] = [0xe0, 0x00];

// ---- reading ------------------------------------------------------------------------------

/// A control packet as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The first byte: type and flags.
    pub header: u8,
    /// Everything after the remaining length.
    pub body: Vec<u8>,
}

impl Frame {
    /// The packet type (see [`CONNACK`] and the rest).
    pub fn kind(&self) -> u8 {
        self.header >> 4
    }

    /// The return code (v3.1.1) or reason code (v5) of a CONNACK.
    pub fn connack_code(&self) -> u8 {
        assert_eq!(self.kind(), CONNACK, "not a CONNACK: {self:?}");
        self.body[1]
    }

    /// The reason code of a v5 DISCONNECT (0 when the body is empty).
    pub fn disconnect_reason(&self) -> u8 {
        assert_eq!(self.kind(), DISCONNECT, "not a DISCONNECT: {self:?}");
        self.body.first().copied().unwrap_or(0)
    }

    /// The Reason String property (0x1F) of a v5 DISCONNECT, if it has one.
    pub fn reason_string(&self) -> Option<String> {
        assert_eq!(self.kind(), DISCONNECT, "not a DISCONNECT: {self:?}");
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
    pub packets: Vec<Frame>,
    /// Bytes after the last whole packet (a well-formed server leaves none).
    pub trailing: Vec<u8>,
}

/// One raw connection to a node's plain TCP listener.
pub struct Raw {
    pub stream: TcpStream,
    /// Our end of the connection: the peer address the node sees and logs.
    pub local: SocketAddr,
    read: Vec<u8>,
}

impl Raw {
    /// Opens a TCP connection and sends nothing.
    pub async fn open(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect to the node");
        let local = stream.local_addr().unwrap();
        Raw {
            stream,
            local,
            read: Vec::new(),
        }
    }

    /// Opens a connection to `node`, sends `connect` and returns the CONNACK.
    pub async fn connect(node: &Node, connect: &Connect) -> (Raw, Frame) {
        let mut raw = Raw::open(node.mqtt).await;
        raw.send(&connect.encode()).await;
        let ack = raw.next_frame().await.expect("closed instead of a CONNACK");
        assert_eq!(ack.kind(), CONNACK, "expected a CONNACK, got {ack:?}");
        (raw, ack)
    }

    /// Opens a connection and signs in as `user` (client id = username = user) with a valid
    /// token.
    pub async fn sign_in(node: &Node, level: u8, user: &str) -> Raw {
        let connect = Connect::user(level, user, &super::token(user));
        let (raw, ack) = Raw::connect(node, &connect).await;
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

    /// The next whole frame, or `None` if the node closed first. Panics after [`WAIT`].
    pub async fn next_frame(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(frame) = take_frame(&mut self.read) {
                return Some(frame);
            }
            if !self.read_more(deadline).await {
                return None;
            }
        }
    }

    /// Reads until the node closes the connection; panics if it is still open after
    /// `within`.
    pub async fn closed_within(&mut self, within: Duration) -> Closed {
        let deadline = Instant::now() + within;
        while self.read_more(deadline).await {}
        let mut packets = Vec::new();
        while let Some(frame) = take_frame(&mut self.read) {
            packets.push(frame);
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

    /// How long after `since` the node closed the connection (bounded by [`WAIT`]), with
    /// what it sent before.
    pub async fn closed_after(&mut self, since: Instant) -> (Duration, Closed) {
        let closed = self.closed().await;
        (since.elapsed(), closed)
    }

    /// `false` once the node has closed the connection.
    async fn read_more(&mut self, deadline: Instant) -> bool {
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

/// Takes one whole frame off the front of `buf`.
fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    let header = *buf.first()?;
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
    Some(Frame { header, body })
}

// ---- building -----------------------------------------------------------------------------

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
pub fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
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

/// A CONNECT packet with any protocol name and level; v5 properties when the level is 5.
#[derive(Clone, Debug)]
pub struct Connect {
    /// `MQTT`, or anything else (for unsupported versions).
    pub protocol_name: Vec<u8>,
    /// [`V311`], [`V5`] or anything else.
    pub level: u8,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub clean: bool,
    pub keep_alive: u16,
    /// (topic, payload) of a QoS 0, not retained will.
    pub will: Option<(String, Vec<u8>)>,
    /// v5 Session Expiry Interval.
    pub session_expiry: Option<u32>,
}

impl Connect {
    /// A CONNECT at `level` for `client_id` with `token` as the password and no username,
    /// clean session/start, keepalive 30 s, no will, no properties.
    pub fn new(level: u8, client_id: &str, token: &str) -> Connect {
        Connect {
            protocol_name: b"MQTT".to_vec(),
            level,
            client_id: client_id.to_owned(),
            username: None,
            password: Some(token.to_owned()),
            clean: true,
            keep_alive: 30,
            will: None,
            session_expiry: None,
        }
    }

    /// [`Connect::new`] in MQTT 3.1.1.
    pub fn v311(client_id: &str, token: &str) -> Connect {
        Connect::new(V311, client_id, token)
    }

    /// [`Connect::new`] in MQTT 5.
    pub fn v5(client_id: &str, token: &str) -> Connect {
        Connect::new(V5, client_id, token)
    }

    /// `user` signing in at `level` with `token`: client id and username are both `user`.
    pub fn user(level: u8, user: &str, token: &str) -> Connect {
        Connect {
            username: Some(user.to_owned()),
            ..Connect::new(level, user, token)
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = string(&self.protocol_name);
        body.push(self.level);
        let mut flags = 0u8;
        if self.clean {
            flags |= 0x02;
        }
        if self.will.is_some() {
            flags |= 0x04;
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if self.username.is_some() {
            flags |= 0x80;
        }
        body.push(flags);
        body.extend(self.keep_alive.to_be_bytes());
        let v5 = self.level == V5;
        if v5 {
            let mut props = Vec::new();
            if let Some(expiry) = self.session_expiry {
                props.push(0x11);
                props.extend(expiry.to_be_bytes());
            }
            body.extend(varint(props.len()));
            body.extend(props);
        }
        body.extend(string(self.client_id.as_bytes()));
        if let Some((topic, payload)) = &self.will {
            if v5 {
                body.push(0); // no will properties
            }
            body.extend(string(topic.as_bytes()));
            body.extend(string(payload));
        }
        if let Some(username) = &self.username {
            body.extend(string(username.as_bytes()));
        }
        if let Some(password) = &self.password {
            body.extend(string(password.as_bytes()));
        }
        packet(0x10, &body)
    }
}

/// A PUBLISH to any topic bytes; `qos` goes into the header as given (even 3), and the
/// packet id is written when it is above 0.
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
        body.push(0); // no properties
    }
    body.extend(string(filter.as_bytes()));
    body.push(1);
    packet(0x82, &body)
}

// ---- the node's side ----------------------------------------------------------------------

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
