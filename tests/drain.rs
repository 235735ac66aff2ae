//! Draining a node (SIGTERM, `roost drain`): users chatting through it are disconnected
//! with MQTT 5 DISCONNECT 0x8B (3.1.1: closed), `/healthz` says `draining`, no will goes
//! out, everything the node accepted is in history afterwards, and it exits 0.

mod common;

use common::client::{options5, Client, Mqtt5};

type Client5 = Client<Mqtt5>;
use common::backend::Backend;
use common::history::{chat, HistNode, Peer};
use common::http::http_get;
use common::{token, tools};
use rumqttc::v5::mqttbytes::v5::{DisconnectReasonCode, LastWill};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{ConnectionError, StateError};
use std::time::{Duration, Instant};

const DRAIN: &str = "[cluster]\ndrain_period = \"2s\"\n";

fn assert_drained(how: &str, ended: &str) {
    assert!(
        ended.contains("ServerDisconnect") && ended.contains("ServerShuttingDown"),
        "{how}: expected DISCONNECT 0x8B, the connection ended with {ended}"
    );
}

async fn drains_chatting_users(backend: Backend) {
    let node = HistNode::start_with(backend, "", DRAIN);
    let mut bob = Client5::user(&node, "bob").await;
    bob.subscribe("im/dm/bob/+").await;
    // carol leaves a will that would be a chat message to bob: it must not go out.
    let mut options = options5(&node, "carol", "carol", &token("carol"));
    options.set_last_will(LastWill::new(
        "im/dm/bob/carol",
        chat("carol-will", "carol vanished"),
        QoS::AtLeastOnce,
        false,
        None,
    ));
    let mut carol = Client5::connect(options).await.expect("carol signs in");
    let mut alice = Peer::connect(&node, "alice", &[]).await;

    // Ten stored and acknowledged, ten more only taken by the node (PUBACK) when it drains.
    let ids: Vec<String> = (0..20).map(|i| format!("alice-{i}")).collect();
    for id in &ids[..10] {
        alice.dm("bob", id, "before the drain").await;
    }
    alice.acks(&ids[..10]).await;
    for id in &ids[10..] {
        alice.dm("bob", id, "as the drain starts").await;
        alice.puback().await;
    }

    // dave (paho, MQTT 3.1.1) sends five more, then sends the node SIGTERM and must be
    // closed by it.
    let (host, port) = (node.mqtt.ip().to_string(), node.mqtt.port().to_string());
    let (dave, pid) = (token("dave"), node.pid().to_string());
    let paho = tokio::task::spawn_blocking(move || {
        tools::paho("drain.py", &[&host, &port, &dave, &pid, "5"]);
    });

    // While the clients leave, /healthz tells load balancers to send no one here.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = http_get(node.http, "/healthz", None, Duration::from_secs(10));
        if health.status == 503 {
            assert_eq!(health.body.trim(), "draining");
            break;
        }
        assert_eq!(health.status, 200, "{}", health.body);
        assert!(Instant::now() < deadline, "/healthz never said draining");
        tokio::task::yield_now().await;
    }

    for (who, client) in [("bob", &mut bob), ("carol", &mut carol)] {
        match client.ended().await {
            ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. }) => {
                assert_eq!(
                    reason_code,
                    DisconnectReasonCode::ServerShuttingDown,
                    "{who}"
                )
            }
            other => panic!("{who}: expected DISCONNECT 0x8B, got {other:?}"),
        }
    }
    let ended = loop {
        match alice.try_take(Duration::from_secs(15), |_| true).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("alice is still connected"),
            Err(ended) => break ended,
        }
    };
    assert_drained("alice", &ended);
    paho.await.unwrap();

    let mut node = node;
    let status = node.node.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        node.log_text()
    );
    let log = node.log_text();
    assert!(log.contains("listener closed: node draining"), "{log}");

    // Everything the node accepted was stored before it exited; carol's will never went out.
    let stored = node.rows("dm:alice:bob").join("\n");
    for id in &ids {
        assert!(stored.contains(id.as_str()), "{id} not stored:\n{stored}");
    }
    let dave_rows = node.rows("dm:bob:dave");
    assert_eq!(dave_rows.len(), 5, "{dave_rows:?}");
    assert!(
        node.rows("dm:bob:carol").is_empty(),
        "carol's will was published"
    );
}

#[tokio::test]
async fn sigterm_drains_chatting_users_sqlite() {
    drains_chatting_users(Backend::Sqlite).await;
}

#[tokio::test]
async fn sigterm_drains_chatting_users_postgres() {
    drains_chatting_users(Backend::Postgres).await;
}

/// `roost drain --config FILE` drains the node running on that config's data dir and
/// returns once it has exited.
#[tokio::test]
async fn roost_drain_command_drains_the_running_node() {
    let mut node = common::Node::builder().toml(DRAIN).start();
    let mut bob = Client5::user(&node, "bob").await;
    let config = node.dir.path().join("roost.toml");
    let drain = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_roost"))
            .arg("drain")
            .arg("--config")
            .arg(config)
            .output()
            .unwrap()
    });
    match bob.ended().await {
        ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. }) => {
            assert_eq!(reason_code, DisconnectReasonCode::ServerShuttingDown)
        }
        other => panic!("expected DISCONNECT 0x8B, got {other:?}"),
    }
    let status = node.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "node exit {status:?}");
    let out = drain.await.unwrap();
    assert!(out.status.success(), "{}", tools::describe(&out));
    assert!(!node.dir.path().join("data/roost.pid").exists());
}

/// A second SIGTERM during a drain stops the node at once.
#[tokio::test]
async fn second_sigterm_stops_at_once() {
    let mut node = common::Node::builder()
        .toml("[cluster]\ndrain_period = \"10m\"\n")
        .start();
    let _bob = Client5::user(&node, "bob").await;
    let _carol = Client5::user(&node, "carol").await;
    let term = || {
        let pid = node.pid().to_string();
        let out = tools::run_bounded("kill", &["-TERM", &pid]);
        assert!(out.status.success(), "{}", tools::describe(&out));
    };
    term();
    node.wait_for_log(&["draining: listeners closed"]).await;
    term();
    let status = node.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "an interrupted drain exits 1");
    assert!(node.log_text().contains("second signal"));
}
