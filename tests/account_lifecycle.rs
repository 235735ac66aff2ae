//! Accounts while their users are connected (issue 13): a password sign-in lasts
//! `accounts.token_ttl` like a token from login; disabling or deleting a user, with
//! `roost user` (another process: the node finds out within `accounts.recheck_interval`)
//! or the admin API (at once), disconnects them with a v5 DISCONNECT 0x98 saying why; the
//! accounts endpoints bound how long and how big a request body may be. Real `roost`
//! processes, rumqttc and mosquitto_sub.
mod common;

use common::client::{options, Client, Mqtt3, Mqtt5, WAIT};
use common::http::call;
use common::tools::{describe, Subscriber};
use common::{token_with, Node};
use roost_auth::Role;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as V5Code, DisconnectReasonCode};
use rumqttc::v5::{ConnectionError, StateError};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

/// `roost ARGS --config NODE_CONFIG`, with `stdin` written to its standard input; must
/// succeed.
fn roost(node: &Node, args: &[&str], stdin: &str) -> Output {
    let out = node.roost(args, stdin);
    assert!(out.status.success(), "roost {args:?}: {}", describe(&out));
    out
}

fn add_user(node: &Node, user: &str, password: &str, extra: &[&str]) {
    let mut args = vec!["user", "add", user, "--password-stdin"];
    args.extend_from_slice(extra);
    roost(node, &args, &format!("{password}\n"));
}

async fn node_with(toml: &str) -> Node {
    let node = Node::builder().toml(toml).start();
    node.wait_for_log(&["history database ready"]).await;
    node
}

/// MQTT 5 options signing `user` in with `password` (or a token), client id `client_id`.
fn v5(node: &Node, client_id: &str, user: &str, password: &str) -> Mqtt5 {
    let mut o = Mqtt5::new(client_id, node.mqtt.ip().to_string(), node.mqtt.port());
    o.set_credentials(user, password);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

async fn signed_in(options: Mqtt5) -> Client<Mqtt5> {
    Client::connect(options).await.expect("sign-in refused")
}

/// Waits for the server's DISCONNECT: its reason code and reason string.
async fn disconnect_of(client: &mut Client<Mqtt5>) -> (DisconnectReasonCode, String) {
    match client.ended().await {
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => (reason_code, reason_string.unwrap_or_default()),
        other => panic!("expected a DISCONNECT from the server, got {other:?}"),
    }
}

/// A password sign-in ends after `token_ttl` (plus the 5 s clock skew tokens get), with
/// DISCONNECT 0xA0 saying to sign in again; signing in again with the password works.
#[tokio::test]
async fn password_sign_ins_last_token_ttl() {
    let node = node_with("[accounts]\ntoken_ttl = \"1s\"").await;
    add_user(&node, "alice", "alice-pw", &[]);
    let start = Instant::now();
    let mut alice = signed_in(v5(&node, "alice", "alice", "alice-pw")).await;
    let (code, why) = disconnect_of(&mut alice).await;
    assert_eq!(code, DisconnectReasonCode::MaximumConnectTime);
    assert_eq!(why, "sign-in expired; sign in again");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    signed_in(v5(&node, "alice", "alice", "alice-pw")).await;
}

/// `roost user disable` (another process) ends every connection of the user within
/// `recheck_interval`, tokens included, and refuses their sign-ins until `enable`; other
/// users stay.
#[tokio::test]
async fn disabling_with_roost_user_disconnects_the_user() {
    let node = node_with("[accounts]\nrecheck_interval = \"1s\"").await;
    add_user(&node, "alice", "alice-pw", &[]);
    let token = token_with("alice", &[], Role::User, HOUR);
    let mut by_password = signed_in(v5(&node, "alice:phone", "alice", "alice-pw")).await;
    let mut by_token = signed_in(v5(&node, "alice:laptop", "alice", &token)).await;
    let mut bob = Client::<Mqtt3>::user(&node, "bob").await;

    roost(&node, &["user", "disable", "alice"], "");
    for client in [&mut by_password, &mut by_token] {
        let (code, why) = disconnect_of(client).await;
        assert_eq!(code, DisconnectReasonCode::AdministrativeAction);
        assert_eq!(why, "account disabled");
    }
    bob.publish_acked(
        "im/dm/carol/bob",
        r#"{"id":"m-1","kind":"text","body":"still here"}"#,
    )
    .await;
    for password in ["alice-pw", token.as_str()] {
        let refused = Client::connect(v5(&node, "alice", "alice", password)).await;
        assert_eq!(refused.err(), Some(V5Code::NotAuthorized), "{password}");
    }

    // Enabled again: the node takes her token from its next recheck on.
    roost(&node, &["user", "enable", "alice"], "");
    node.wait_for_log_where(WAIT, "the recheck seeing alice enabled", |l| {
        l.contains("disabled accounts changed") && l.contains("disabled=0")
    })
    .await;
    signed_in(v5(&node, "alice", "alice", &token)).await;
}

/// Deleting a user through the admin API ends their password sign-ins at once (the recheck
/// is an hour away here); a token they hold stays valid until it expires. Disabling
/// through the admin API ends a user's connections at once too.
#[tokio::test]
async fn the_admin_api_disconnects_at_once() {
    let node = node_with("[accounts]\nrecheck_interval = \"1h\"").await;
    add_user(&node, "alice", "alice-pw", &[]);
    add_user(&node, "bob", "bob-pw", &[]);
    let admin = token_with("root", &[], Role::Admin, HOUR);
    let bearer = format!("Bearer {admin}");
    let headers = [("authorization", bearer.as_str())];

    let mut alice = signed_in(v5(&node, "alice:phone", "alice", "alice-pw")).await;
    let alice_token = token_with("alice", &[], Role::User, HOUR);
    let mut alice_tok = Client::connect(options(&node, "alice:tab", "alice", &alice_token))
        .await
        .expect("token sign-in");
    let reply = call(node.http, "DELETE", "/api/v1/users/alice", &headers, "").await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let (code, why) = disconnect_of(&mut alice).await;
    assert_eq!(code, DisconnectReasonCode::AdministrativeAction);
    assert_eq!(why, "account deleted");
    alice_tok
        .publish_acked(
            "im/dm/bob/alice",
            r#"{"id":"m-1","kind":"text","body":"token"}"#,
        )
        .await;

    let mut bob = signed_in(v5(&node, "bob", "bob", "bob-pw")).await;
    let patch = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let reply = call(
        node.http,
        "PATCH",
        "/api/v1/users/bob",
        &patch,
        r#"{"disabled":true}"#,
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let (code, why) = disconnect_of(&mut bob).await;
    assert_eq!(code, DisconnectReasonCode::AdministrativeAction);
    assert_eq!(why, "account disabled");
}

/// A third-party client (mosquitto_sub, MQTT 3.1.1) signed in with its password is
/// disconnected when the account is disabled, and its reconnect is refused: it exits.
#[test]
fn mosquitto_sub_is_disconnected_when_disabled() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let node = runtime.block_on(node_with("[accounts]\nrecheck_interval = \"1s\""));
    add_user(&node, "alice", "alice-pw", &[]);
    let port = node.mqtt.port().to_string();
    let mut sub = Subscriber::start(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-i",
        "alice",
        "-u",
        "alice",
        "-P",
        "alice-pw",
        "-t",
        "im/sys/alice",
    ]);
    sub.wait_for("SUBACK");
    roost(&node, &["user", "disable", "alice"], "");
    assert!(!sub.exit_status().success());
    let log = node.log_text();
    assert!(log.contains("account disabled"), "{log}");
}

/// The accounts endpoints give a request body `http.header_timeout` to arrive, and take at
/// most 16 KiB: a body that never comes is answered and the connection closed in time, one
/// over the limit is refused 413; the node goes on answering.
#[tokio::test]
async fn account_bodies_are_bounded_in_time_and_size() {
    let node = node_with("[http]\nlisten = \"127.0.0.1:0\"\nheader_timeout = \"1s\"").await;
    let mut slow = TcpStream::connect(node.http).unwrap();
    slow.write_all(
        b"POST /api/v1/login HTTP/1.1\r\nHost: roost\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"user\":",
    )
    .unwrap();
    let start = Instant::now();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let closed = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        closed.is_ok(),
        "still open after {:?}: {answer:?}",
        start.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );

    let big = format!(
        r#"{{"user":"alice","password":"{}"}}"#,
        "x".repeat(17 * 1024)
    );
    let json = [("content-type", "application/json")];
    let reply = call(node.http, "POST", "/api/v1/login", &json, big).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(
        reply.json()["error"]["code"],
        "bad_request",
        "{}",
        reply.body
    );

    let reply = call(
        node.http,
        "POST",
        "/api/v1/login",
        &json,
        r#"{"user":"a","password":"b"}"#,
    )
    .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
}
