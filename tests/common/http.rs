//! A plain HTTP/1.0 GET against a node's HTTP listener, read to the end.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What the node answered.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The `Content-Type` header value ("" without one).
    pub content_type: String,
    pub body: String,
}

impl Response {
    /// The body as JSON or, if it is not JSON, the body as a JSON string.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| Value::String(self.body.clone()))
    }
}

/// `GET {path}` with an optional `Authorization` header value; panics if the answer takes
/// longer than `read_timeout`.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    read_timeout: Duration,
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Response {
        status,
        content_type,
        body: body.to_owned(),
    }
}
