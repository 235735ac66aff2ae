//! A bare MQTT client on a plain TCP socket, for what a client library will not do: stay
//! silent, send a CONNECT a library refuses to build, or vanish without a DISCONNECT.
//! It encodes the few packets the tests need and reads whole frames back.

use super::client::WAIT;
use super::Node;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Packet types (the high nibble of the first byte).
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const SUBACK: u8 = 9;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

/// One frame from the server.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The first byte: type and flags.
    pub header: u8,
    /// Everything after the remaining length.
    pub body: Vec<u8>,
}

impl Frame {
    pub fn kind(&self) -> u8 {
        self.header >> 4
    }
}

/// A CONNECT packet, v3.1.1 or v5.
#[derive(Clone, Debug)]
pub struct Connect {
    pub v5: bool,
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
    /// A v3.1.1 CONNECT for `client_id` with `token` as the password, clean session,
    /// keepalive 30 s.
    pub fn v311(client_id: &str, token: &str) -> Connect {
        Connect {
            v5: false,
            client_id: client_id.to_owned(),
            username: None,
            password: Some(token.to_owned()),
            clean: true,
            keep_alive: 30,
            will: None,
            session_expiry: None,
        }
    }

    /// The same in MQTT 5.
    pub fn v5(client_id: &str, token: &str) -> Connect {
        Connect {
            v5: true,
            ..Connect::v311(client_id, token)
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        put_str(&mut body, b"MQTT");
        body.push(if self.v5 { 5 } else { 4 });
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
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        if self.v5 {
            let mut props = Vec::new();
            if let Some(expiry) = self.session_expiry {
                props.push(0x11);
                props.extend_from_slice(&expiry.to_be_bytes());
            }
            put_varint(&mut body, props.len());
            body.extend(props);
        }
        put_str(&mut body, self.client_id.as_bytes());
        if let Some((topic, payload)) = &self.will {
            if self.v5 {
                body.push(0); // no will properties
            }
            put_str(&mut body, topic.as_bytes());
            put_str(&mut body, payload);
        }
        if let Some(username) = &self.username {
            put_str(&mut body, username.as_bytes());
        }
        if let Some(password) = &self.password {
            put_str(&mut body, password.as_bytes());
        }
        frame(0x10, body)
    }
}

/// A PUBLISH (QoS 0 when `pkid` is 0, else QoS 1).
pub fn publish(v5: bool, topic: &str, payload: &[u8], pkid: u16) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, topic.as_bytes());
    if pkid != 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    if v5 {
        body.push(0); // no properties
    }
    body.extend_from_slice(payload);
    frame(if pkid == 0 { 0x30 } else { 0x32 }, body)
}

/// A SUBSCRIBE of one filter at QoS 1.
pub fn subscribe(v5: bool, pkid: u16, filter: &str) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    put_str(&mut body, filter.as_bytes());
    body.push(1);
    frame(0x82, body)
}

pub const PINGREQ: [u8; 2] = [0xc0, 0x00];
pub const DISCONNECT_NORMAL: [u8; 2] = [0xe0, 0x00];

fn frame(header: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = vec![header];
    put_varint(&mut out, body.len());
    out.extend(body);
    out
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

/// A raw connection to a node's plain TCP listener.
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Opens a TCP connection and sends nothing.
    pub async fn open(node: &Node) -> Raw {
        let stream = TcpStream::connect(node.mqtt).await.expect("TCP connect");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Opens a connection, sends `connect` and returns the CONNACK frame.
    pub async fn connect(node: &Node, connect: &Connect) -> (Raw, Frame) {
        let mut raw = Raw::open(node).await;
        raw.send(&connect.encode()).await;
        let ack = raw.next().await.expect("closed before CONNACK");
        assert_eq!(ack.kind(), CONNACK, "expected a CONNACK, got {ack:?}");
        (raw, ack)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next whole frame, or `None` once the server has closed the connection.
    /// Panics if neither happens within the test wait.
    pub async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(WAIT, self.read_frame())
            .await
            .expect("neither a frame nor a close from the server in time")
    }

    async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn take_frame(&mut self) -> Option<Frame> {
        let (mut len, mut mult, mut at) = (0usize, 1usize, 1usize);
        loop {
            let byte = *self.buf.get(at)?;
            len += usize::from(byte & 0x7f) * mult;
            mult *= 128;
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
        }
        if self.buf.len() < at + len {
            return None;
        }
        let header = self.buf[0];
        let body = self.buf[at..at + len].to_vec();
        self.buf.drain(..at + len);
        Some(Frame { header, body })
    }

    /// Reads until the server closes the connection (panics after the test wait) and
    /// returns the frames it sent before closing.
    pub async fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next().await {
            frames.push(frame);
        }
        frames
    }

    /// How long after `since` the server closed the connection, with the frames it sent.
    pub async fn closed_after(&mut self, since: Instant) -> (Duration, Vec<Frame>) {
        let frames = self.until_closed().await;
        (since.elapsed(), frames)
    }
}
