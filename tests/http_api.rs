//! The app API over HTTP (docs/protocol.md section 6), against a real node with a real
//! HTTP client (hyper; curl for CORS): the same JSON and error codes as the MQTT requests
//! of the same user, a send that is checked, stored and delivered live like an MQTT
//! publish, JSON errors for anything wrong with a call, and CORS only for configured
//! origins.
mod common;

use common::history::{chat, HistNode, Peer};
use common::http::{call, Reply};
use common::{token_with, Backend, Node};
use roost_auth::Role;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn bearer(user: &str, groups: &[&str]) -> String {
    format!("Bearer {}", token_with(user, groups, Role::User, HOUR))
}

async fn get(node: &Node, path: &str, auth: &str) -> Reply {
    call(
        node.http,
        "GET",
        path,
        &[("authorization", auth)],
        Vec::new(),
    )
    .await
}

async fn post(node: &Node, path: &str, auth: &str, body: &str) -> Reply {
    let headers = [
        ("authorization", auth),
        ("content-type", "application/json"),
    ];
    call(node.http, "POST", path, &headers, body.as_bytes().to_vec()).await
}

/// An error answer: its status and `error.code`, checking it is the documented JSON.
fn error(reply: &Reply) -> (u16, String) {
    let body = reply.json();
    assert!(
        body["error"]["message"].is_string(),
        "an error has a message: {body}"
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    (reply.status, code)
}

/// `GET /api/v1/sync` and `GET /api/v1/conversations` answer exactly what the `sync` and
/// `conversations` requests answer over MQTT, page by page; `POST .../read` stores the
/// read position and the other member gets the `receipt` as if it was read over MQTT.
async fn requests_over_http_answer_as_over_mqtt(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    for (n, id) in ["h1", "h2", "h3"].iter().enumerate() {
        bob.dm("alice", id, &format!("hello {n}")).await;
        bob.ack(id).await;
    }
    bob.grp("team", "h4", "to the team").await;
    bob.ack("h4").await;
    let auth = bearer("alice", &["team"]);

    // sync: all at once, then in pages of 2 with the cursor, as over MQTT.
    let over_mqtt = alice.call("sync", json!({})).await;
    let reply = get(&node, "/api/v1/sync", &auth).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), over_mqtt);
    assert_eq!(reply.json()["messages"].as_array().unwrap().len(), 4);
    let first = get(&node, "/api/v1/sync?limit=2", &auth).await.json();
    assert_eq!(first, alice.call("sync", json!({"limit": 2})).await);
    assert_eq!(first["more"], true);
    let cursor = first["cursor"].as_str().unwrap();
    let next = get(
        &node,
        &format!("/api/v1/sync?limit=2&cursor={cursor}"),
        &auth,
    )
    .await
    .json();
    assert_eq!(
        next,
        alice
            .call("sync", json!({"limit": 2, "cursor": cursor}))
            .await
    );
    assert_eq!(next["messages"][1]["id"], "h4");

    // conversations: the list, with its cursor and more beside it.
    let mqtt = alice.request("conversations", json!({"limit": 1})).await;
    let reply = get(&node, "/api/v1/conversations?limit=1", &auth).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let http = reply.json();
    assert_eq!(http["conversations"], mqtt["result"]);
    assert_eq!(http["cursor"], mqtt["cursor"]);
    assert_eq!((&http["more"], &mqtt["more"]), (&json!(true), &json!(true)));
    let all = get(&node, "/api/v1/conversations", &auth).await.json();
    let unread = |list: &Value, conv: &str| {
        list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["conv"] == conv)
            .map(|c| c["unread"].clone())
    };
    assert_eq!(unread(&all, "dm:alice:bob"), Some(json!(3)));

    // read: stored, answered like the request, and bob hears the receipt.
    let reply = post(
        &node,
        "/api/v1/conversations/dm:alice:bob/read",
        &auth,
        r#"{"seq": 2}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"conv": "dm:alice:bob", "read_seq": 2}));
    let receipt = bob.notice("receipt", |v| v["type"] == "receipt").await;
    assert_eq!(
        receipt,
        json!({"type": "receipt", "conv": "dm:alice:bob", "user": "alice", "read_seq": 2})
    );
    let all = get(&node, "/api/v1/conversations", &auth).await.json();
    assert_eq!(unread(&all, "dm:alice:bob"), Some(json!(1)));

    // A new device's first sync: `cursor=now` gives no messages, and a cursor from which
    // only what comes next arrives (over MQTT alike).
    let now = get(&node, "/api/v1/sync?cursor=now", &auth).await.json();
    assert_eq!(now["messages"], json!([]), "{now}");
    assert_eq!(now["more"], false);
    assert_eq!(now, alice.call("sync", json!({"cursor": "now"})).await);
    bob.dm("alice", "h5", "after now").await;
    bob.ack("h5").await;
    let cursor = now["cursor"].as_str().unwrap();
    let next = get(&node, &format!("/api/v1/sync?cursor={cursor}"), &auth)
        .await
        .json();
    let ids: Vec<&Value> = next["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, [&json!("h5")]);

    // Refusals carry the request's code: a conversation alice is not in, a bad limit.
    let not_mine = post(
        &node,
        "/api/v1/conversations/grp:secret/read",
        &auth,
        r#"{"seq": 1}"#,
    )
    .await;
    assert_eq!(error(&not_mine), (403, "forbidden".into()));
    for path in ["/api/v1/sync?limit=501", "/api/v1/conversations?limit=0"] {
        let reply = get(&node, path, &auth).await;
        assert_eq!(error(&reply), (400, "invalid_request".into()), "{path}");
    }
    let bad_cursor = get(&node, "/api/v1/sync?cursor=nope", &auth).await;
    assert_eq!(error(&bad_cursor), (400, "invalid_request".into()));
}

/// `POST /api/v1/conversations/{conv}/messages` is an MQTT publish of the user: delivered
/// live to the recipient, stored, answered with the `ack` (also heard on the user's other
/// devices), idempotent by `id`; refused with the codes an MQTT publish gets.
async fn send_over_http_is_a_publish(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice_phone = Peer::device(&node, "alice", "phone", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    bob.subscribe("im/dm/bob/+").await;
    bob.subscribe("im/grp/team/+").await;
    let auth = bearer("alice", &["team"]);
    let path = "/api/v1/conversations/dm:alice:bob/messages";

    let reply = post(&node, path, &auth, &chat("w1", "from the web")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let ack = reply.json();
    assert_eq!(ack["id"], "w1");
    assert_eq!(ack["conv"], "dm:alice:bob");
    assert_eq!(ack["seq"], 1);
    assert!(ack["ts"].as_i64().unwrap() > 0, "{ack}");
    assert_eq!(ack.as_object().unwrap().len(), 4, "the ack's fields: {ack}");

    let (topic, payload) = chat_with_id(&mut bob, "w1").await;
    assert_eq!(topic, "im/dm/bob/alice");
    assert_eq!(payload["body"], "from the web");
    let heard = alice_phone.ack("w1").await;
    assert_eq!(heard["seq"], 1);
    let history = node.rows("dm:alice:bob");
    assert_eq!(history, ["1|alice|w1"]);

    // The same id again: stored once, the same ack.
    let again = post(&node, path, &auth, &chat("w1", "from the web")).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json(), ack);
    assert_eq!(node.rows("dm:alice:bob"), ["1|alice|w1"]);

    // A group of the token.
    let group = post(
        &node,
        "/api/v1/conversations/grp:team/messages",
        &auth,
        &chat("w2", "hi team"),
    )
    .await;
    assert_eq!(group.status, 200, "{}", group.body);
    assert_eq!(group.json()["conv"], "grp:team");
    let (topic, _) = chat_with_id(&mut bob, "w2").await;
    assert_eq!(topic, "im/grp/team/alice");

    // Refused as an MQTT publish is: payload, size, ACL.
    let bad = post(&node, path, &auth, r#"{"id": "w3", "body": "no kind"}"#).await;
    assert_eq!(error(&bad), (400, "invalid_payload".into()));
    let not_json = post(&node, path, &auth, "hello").await;
    assert_eq!(error(&not_json), (400, "invalid_payload".into()));
    let big = chat("w4", &"x".repeat(70 * 1024));
    assert_eq!(
        error(&post(&node, path, &auth, &big).await),
        (413, "too_large".into())
    );
    let other_group = post(
        &node,
        "/api/v1/conversations/grp:secret/messages",
        &auth,
        &chat("w5", "let me in"),
    )
    .await;
    assert_eq!(error(&other_group), (403, "forbidden".into()));
    let others_dm = post(
        &node,
        "/api/v1/conversations/dm:bob:carol/messages",
        &auth,
        &chat("w6", "hi"),
    )
    .await;
    assert_eq!(error(&others_dm), (403, "forbidden".into()));
    // Nothing refused was delivered or stored: bob gets the next send, none of them.
    assert_eq!(node.rows("dm:alice:bob"), ["1|alice|w1"]);
    let next = post(&node, path, &auth, &chat("w7", "after the refusals")).await;
    assert_eq!(next.json()["seq"], 2, "{}", next.body);
    let mut skipped = Vec::new();
    loop {
        let (_, payload) = bob.next_chat().await;
        if payload["id"] == "w7" {
            break;
        }
        skipped.push(payload["id"].clone());
    }
    assert!(
        skipped.iter().all(|id| id == "w1" || id == "w2"),
        "delivered before w7: {skipped:?}"
    );
}

/// Waits for the chat message `id`, noting every other one seen on the way.
async fn chat_with_id(peer: &mut Peer, id: &str) -> (String, Value) {
    loop {
        let (topic, payload) = peer.next_chat().await;
        if payload["id"] == id {
            return (topic, payload);
        }
    }
}

common::on_both_backends!(
    requests_over_http_answer_as_over_mqtt,
    send_over_http_is_a_publish
);

/// Whatever is wrong with a call, the answer is JSON `{"error": {code, message}}` with the
/// matching status: no token, a bad token, a bad query string or body, a path or method
/// the API does not have.
#[tokio::test]
async fn every_error_is_json() {
    let node = HistNode::start(Backend::Sqlite);
    let auth = bearer("alice", &[]);
    let cases: Vec<(Reply, u16, &str)> = vec![
        (
            call(node.http, "GET", "/api/v1/sync", &[], Vec::new()).await,
            401,
            "unauthorized",
        ),
        (
            get(&node, "/api/v1/conversations", "Bearer not-a-token").await,
            401,
            "unauthorized",
        ),
        (
            get(&node, "/api/v1/sync?limit=ten", &auth).await,
            400,
            "invalid_request",
        ),
        (
            get(&node, "/api/v1/conversations?limit=-1", &auth).await,
            400,
            "invalid_request",
        ),
        (
            get(
                &node,
                "/api/v1/conversations/dm:alice:bob/messages?limit=101",
                &auth,
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            get(&node, "/api/v1/conversations/nope/messages", &auth).await,
            400,
            "invalid_request",
        ),
        (
            post(
                &node,
                "/api/v1/conversations/dm:alice:bob/read",
                &auth,
                "{\"seq\": \"two\"}",
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            post(&node, "/api/v1/conversations/dm:alice:bob/read", &auth, "{").await,
            400,
            "invalid_request",
        ),
        (
            get(&node, "/api/v1/no-such-thing", &auth).await,
            404,
            "not_found",
        ),
        (get(&node, "/api/v2/sync", &auth).await, 404, "not_found"),
        (
            call(node.http, "DELETE", "/api/v1/sync", &[], Vec::new()).await,
            405,
            "method_not_allowed",
        ),
        (
            post(&node, "/api/v1/sync", &auth, "{}").await,
            405,
            "method_not_allowed",
        ),
    ];
    for (reply, status, code) in cases {
        assert_eq!(error(&reply), (status, code.to_owned()), "{reply:?}");
    }
}

/// `curl -si` with these extra arguments: (status, lower-case head).
fn curl(args: &[&str]) -> (u16, String) {
    common::tools::require("curl");
    let out = Command::new("curl")
        .args(["-si", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head)
}

/// With `http.cors_origins` set, a browser's preflight from a listed origin is answered
/// with the allowed methods and headers, and answers carry `Access-Control-Allow-Origin`
/// for it; an origin not listed, or a node without the setting, gets no CORS headers.
#[tokio::test]
async fn cors_only_for_configured_origins() {
    let node = HistNode::start_with(
        Backend::Sqlite,
        "",
        "[http]\ncors_origins = [\"https://chat.example\"]\n",
    );
    let url = format!("http://{}/api/v1/sync", node.http);
    let preflight = |origin: &str| {
        curl(&[
            "-X",
            "OPTIONS",
            "-H",
            &format!("Origin: {origin}"),
            "-H",
            "Access-Control-Request-Method: GET",
            "-H",
            "Access-Control-Request-Headers: authorization",
            &url,
        ])
    };
    let (status, head) = preflight("https://chat.example");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://chat.example"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-methods: get,post"),
        "{head}"
    );
    assert!(head.contains("authorization"), "{head}");
    let (_, head) = preflight("https://evil.example");
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    let auth = bearer("alice", &[]);
    let (status, head) = curl(&[
        "-H",
        "Origin: https://chat.example",
        "-H",
        &format!("Authorization: {auth}"),
        &url,
    ]);
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://chat.example"),
        "{head}"
    );

    let plain = Node::start();
    let reply = call(
        plain.http,
        "GET",
        "/api/v1/sync",
        &[("origin", "https://chat.example"), ("authorization", &auth)],
        Vec::new(),
    )
    .await;
    assert!(
        reply
            .headers
            .iter()
            .all(|(k, _)| !k.starts_with("access-control-")),
        "{reply:?}"
    );
}
