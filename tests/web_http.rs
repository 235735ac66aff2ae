//! The web chat app's files and MQTT over WebSocket at `/mqtt`, both on the node's HTTP
//! listener (issue 13), checked over plain HTTP and with paho-mqtt; tests/web.rs drives
//! the app itself in a browser.
mod common;

use common::client::{Client, Mqtt5};
use common::http::call;
use common::tools::{describe, paho, run_bounded};
use common::{token, Node};
use std::path::PathBuf;

fn web_file(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("web/dist")
            .join(name),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_serves_the_app_and_mqtt_over_websocket_on_its_http_port() {
    let node = Node::start();
    // Three files, as built, with their types; revalidated by ETag; the script gzipped.
    for (path, file, content_type) in [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "style.css", "text/css; charset=utf-8"),
    ] {
        let reply = call(node.http, "GET", path, &[], "").await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_eq!(reply.header("cache-control"), Some("no-cache"), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            reply.body.as_bytes(),
            web_file(file),
            "{path} is web/dist/{file}"
        );
        let etag = reply.header("etag").expect("an ETag").to_owned();
        let again = call(node.http, "GET", path, &[("if-none-match", &etag)], "").await;
        assert_eq!(again.status, 304, "{path} revalidated");
        assert!(again.body.is_empty());
    }
    let page = call(node.http, "GET", "/", &[], "").await;
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let gz = call(
        node.http,
        "GET",
        "/app.js",
        &[("accept-encoding", "gzip")],
        "",
    )
    .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.header("vary"), Some("accept-encoding"));
    assert_eq!(
        gz.header("content-length").map(str::to_owned),
        Some(web_file("app.js.gz").len().to_string())
    );

    // `/mqtt` without a WebSocket upgrade: a JSON error, not a hang.
    let plain = call(node.http, "GET", "/mqtt", &[], "").await;
    assert_eq!(plain.status, 400);
    assert_eq!(plain.json()["error"]["code"], "invalid_request");

    // MQTT over WebSocket at /mqtt on the HTTP port: a DM between two paho clients, both
    // MQTT versions, signed in and checked as on any other listener.
    let port = node.http.port().to_string();
    let (alice, bob) = (token("alice"), token("bob"));
    paho("dm.py", &["127.0.0.1", &port, &alice, &bob, "--ws"]);
    paho("dm.py", &["127.0.0.1", &port, &alice, &bob, "--ws", "--v5"]);
}

/// A WebSocket upgrade request for `/mqtt` (RFC 6455's example key).
const UPGRADE: &[(&str, &str)] = &[
    ("connection", "Upgrade"),
    ("upgrade", "websocket"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("sec-websocket-protocol", "mqtt"),
];

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_on_the_http_port_is_refused_while_the_node_drains() {
    let node = Node::builder()
        .toml("[cluster]\ndrain_period = \"10m\"\n")
        .start();
    let switched = call(node.http, "GET", "/mqtt", UPGRADE, "").await;
    assert_eq!(switched.status, 101);
    assert_eq!(
        switched.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(switched.header("sec-websocket-protocol"), Some("mqtt"));

    // A signed-in user keeps the drain going (10 minutes) while we ask.
    let _bob = Client::<Mqtt5>::user(&node, "bob").await;
    let out = run_bounded("kill", &["-TERM", &node.pid().to_string()]);
    assert!(out.status.success(), "{}", describe(&out));
    node.wait_for_log(&["draining: listeners closed"]).await;
    let refused = call(node.http, "GET", "/mqtt", UPGRADE, "").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"]["code"], "unavailable");
}
