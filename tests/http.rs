//! The node's HTTP side as an operator's load balancer and Prometheus see it: `/healthz`,
//! `/metrics` counting sign-ins, refusals, ACL denials, messages and connections, and the
//! listener's bounds on slow and excess connections.
mod common;

use common::client::{options, Client, Mqtt3};
use common::http::http_get;
use common::{token, Node};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long the node may take to answer an HTTP GET.
const HTTP_WAIT: Duration = Duration::from_secs(10);

/// `GET {path}`: (status code, content type, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let answer = http_get(addr, path, None, HTTP_WAIT);
    (answer.status, answer.content_type, answer.body)
}

/// Samples of a Prometheus text exposition, keyed by `name{labels}` with the labels
/// sorted (so a test names a series independently of the exporter's label order).
fn samples(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_owned(),
        };
        out.insert(key, value.parse().expect("sample value"));
    }
    out
}

struct Metrics {
    http: SocketAddr,
    last: HashMap<String, f64>,
}

impl Metrics {
    fn new(node: &Node) -> Metrics {
        let mut m = Metrics {
            http: node.http,
            last: HashMap::new(),
        };
        m.last = m.scrape();
        m
    }

    fn scrape(&self) -> HashMap<String, f64> {
        let (status, content_type, body) = get(self.http, "/metrics");
        assert_eq!(status, 200, "{body}");
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        samples(&body)
    }

    /// Waits (bounded) until every series in `deltas` has moved by exactly its delta since
    /// the last call, then makes the current values the new baseline. A series absent from
    /// the exposition counts as 0.
    async fn changed(&mut self, deltas: &[(&str, f64)]) {
        let deadline = tokio::time::Instant::now() + common::client::WAIT;
        loop {
            let now = self.scrape();
            let value = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
            let moved: Vec<(&str, f64)> = deltas
                .iter()
                .map(|(k, _)| (*k, value(&now, k) - value(&self.last, k)))
                .collect();
            if moved
                .iter()
                .zip(deltas)
                .all(|((_, got), (_, want))| got == want)
            {
                self.last = now;
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("metrics moved by {moved:?}, expected {deltas:?}; now: {now:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const ACCEPTED: &str = r#"roost_sign_ins_total{reason="ok",result="accepted"}"#;
const BAD_SIGNATURE: &str = r#"roost_sign_ins_total{reason="bad_signature",result="refused"}"#;
/// A password that is not a JWT is checked as an account password (issue 13).
const BAD_PASSWORD: &str = r#"roost_sign_ins_total{reason="bad_password",result="refused"}"#;
const CLIENT_ID: &str = r#"roost_sign_ins_total{reason="client_id_not_bound",result="refused"}"#;
const DENIED_PUBLISH: &str = r#"roost_acl_denials_total{action="publish"}"#;
const DENIED_SUBSCRIBE: &str = r#"roost_acl_denials_total{action="subscribe"}"#;
const IN: &str = "roost_messages_in_total";
const OUT: &str = "roost_messages_out_total";
const CONNECTIONS: &str = "roost_connections";
const HEADER_TIMEOUTS: &str = r#"roost_http_refused_total{reason="header_timeout"}"#;
const OVER_CAP: &str = r#"roost_http_refused_total{reason="max_connections"}"#;

#[test]
fn healthz_is_ok() {
    let node = Node::start();
    let (status, _, body) = get(node.http, "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = get(node.http, "/no-such-page");
    assert_eq!(status, 404);
}

#[tokio::test]
async fn metrics_follow_sign_ins_refusals_denials_and_messages() {
    let node = Node::start();
    // A password that is not a JWT is checked against the account store (issue 13): let it
    // be reachable, or the answer is "server unavailable".
    node.wait_for_log(&["history database ready"]).await;
    let mut metrics = Metrics::new(&node);

    // Signed in.
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;
    metrics
        .changed(&[(ACCEPTED, 1.0), (CONNECTIONS, 1.0)])
        .await;

    // Refused, by reason.
    let forged = roost_auth::mint_hs256(
        "not-the-node-secret-0123456789abcdef",
        &roost_auth::Claims::new(
            "eve",
            vec![],
            roost_auth::Role::User,
            Duration::from_secs(60),
        ),
    )
    .unwrap();
    let refused = Client::connect(options(&node, "eve", "eve", &forged)).await;
    assert!(refused.is_err());
    let refused = Client::connect(options(&node, "eve", "eve", "garbage")).await;
    assert!(refused.is_err());
    let refused = Client::connect(options(&node, "bob", "eve", &token("eve"))).await;
    assert!(refused.is_err());
    metrics
        .changed(&[
            (BAD_SIGNATURE, 1.0),
            (BAD_PASSWORD, 1.0),
            (CLIENT_ID, 1.0),
            (ACCEPTED, 0.0),
            (CONNECTIONS, 0.0),
        ])
        .await;

    // Denied by the ACL: bob may not read alice's DMs nor write as alice.
    assert_eq!(bob.subscribe("im/dm/alice/+").await, 0x80);
    bob.publish(
        "im/dm/carol/alice",
        r#"{"id":"s1","kind":"text","body":"spoof"}"#,
    )
    .await;
    metrics
        .changed(&[(DENIED_SUBSCRIBE, 1.0), (DENIED_PUBLISH, 1.0), (IN, 0.0)])
        .await;

    // One message in from alice, one out to bob.
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let alice = Client::<Mqtt3>::user(&node, "alice").await;
    metrics
        .changed(&[(ACCEPTED, 1.0), (CONNECTIONS, 1.0)])
        .await;
    alice
        .publish(
            "im/dm/bob/alice",
            r#"{"id":"m1","kind":"text","body":"hi"}"#,
        )
        .await;
    let (topic, _) = bob.next_publish().await;
    assert_eq!(topic, "im/dm/bob/alice");
    metrics.changed(&[(IN, 1.0), (OUT, 1.0)]).await;

    // Gone.
    alice.client.disconnect().await.unwrap();
    metrics.changed(&[(CONNECTIONS, -1.0)]).await;
}

/// Reads `stream` until the node closes it; panics if it is still open after `within`.
/// Returns what the node sent and how long it took.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Duration) {
    let start = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); got {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}

/// Slow or unfinished requests (slowloris) must not hold sockets: without a bound, enough
/// of them use up the node's file descriptors and MQTT sign-ins fail.
#[tokio::test]
async fn unfinished_requests_are_closed_and_connections_capped() {
    const CAP: usize = 16;
    let node = Node::builder()
        .toml(&format!(
            "[http]\nlisten = \"127.0.0.1:0\"\nmax_connections = {CAP}\nheader_timeout = \"2s\""
        ))
        .start();
    let mut metrics = Metrics::new(&node);

    // First one idle keep-alive connection that finished a request. The baseline scrape's
    // connection may hold its slot for a moment after the client saw it closed (the node
    // frees it when the connection's task ends): a 503 here means that slot was not free
    // yet, so try again, counting the refusal.
    let mut refused_early = 0.0;
    let deadline = std::time::Instant::now() + HTTP_WAIT;
    let mut idle = loop {
        let mut idle = TcpStream::connect(node.http).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: roost\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        idle.read_exact(&mut head).unwrap();
        if &head == b"HTTP/1.1 200" {
            break idle;
        }
        assert_eq!(&head, b"HTTP/1.1 503");
        assert!(std::time::Instant::now() < deadline, "no slot ever freed");
        refused_early += 1.0;
    };

    // Then CAP - 1 connections that never finish their request head.
    let mut slow: Vec<TcpStream> = (0..CAP - 1)
        .map(|_| {
            let mut s = TcpStream::connect(node.http).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: roost\r\nX-Slow: 1")
                .unwrap();
            s
        })
        .collect();

    // Over the cap: answered 503 and closed at once.
    let mut over = TcpStream::connect(node.http).unwrap();
    let (answer, _) = read_until_closed(&mut over, Duration::from_secs(1));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");

    // Each is closed once its request head is overdue (idle: once the next one is). One
    // slow connection may instead have been refused at once, if the scrape's slot was still
    // held when it came (see above): it then got a 503, counted as over the cap.
    let mut refused_slow = 0.0;
    for stream in slow.iter_mut() {
        let (answer, _) = read_until_closed(stream, HTTP_WAIT);
        if answer.starts_with("HTTP/1.1 503") {
            refused_slow += 1.0;
        }
    }
    assert!(
        refused_slow <= 1.0,
        "{refused_slow} connections refused under the cap"
    );
    read_until_closed(&mut idle, HTTP_WAIT);
    metrics
        .changed(&[
            (HEADER_TIMEOUTS, CAP as f64 - refused_slow),
            (OVER_CAP, 1.0 + refused_early + refused_slow),
            (ACCEPTED, 0.0),
        ])
        .await;

    // The node still answers HTTP and signs MQTT clients in.
    let (status, _, body) = get(node.http, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let _alice = Client::<Mqtt3>::user(&node, "alice").await;
    metrics.changed(&[(ACCEPTED, 1.0)]).await;
}

/// Every metric on `/metrics` has a `# HELP` line, and the history is measured: the
/// database is up, stored messages and batch sizes counted, the request queue's depth shown.
#[tokio::test]
async fn every_metric_is_described_and_history_is_measured() {
    use common::history::Peer;
    let node = Node::start();
    let metrics = Metrics::new(&node);
    let deadline = tokio::time::Instant::now() + common::client::WAIT;
    while metrics.scrape().get("roost_history_database_up") != Some(&1.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "roost_history_database_up never became 1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    alice.dm("bob", "m1", "hi").await;
    alice.ack("m1").await;
    alice.call("conversations", serde_json::json!({})).await;

    let (_, _, text) = get(node.http, "/metrics");
    let now = samples(&text);
    assert!(now["roost_history_stored_total"] >= 1.0, "{text}");
    assert!(now["roost_history_batch_size_count"] >= 1.0, "{text}");
    assert_eq!(now.get("roost_history_queue_depth"), Some(&0.0), "{text}");
    let described: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let series = line.split(['{', ' ']).next().unwrap();
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|s| series.strip_suffix(s))
            .filter(|f| described.contains(f))
            .unwrap_or(series);
        assert!(
            described.contains(&family),
            "no # HELP for {series}:\n{text}"
        );
    }
}
