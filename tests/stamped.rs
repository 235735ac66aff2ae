//! Stamped delivery (docs/protocol.md section 4, "Delivery"; issue 10): a chat message
//! reaches its recipients and the sender's other devices only once it is committed, as the
//! message sent plus the server's `conv`, `seq`, `ts` and `from`; a retry is acked again
//! and not delivered again; the history service's ingress is out of every client's reach;
//! `history.delivery = "direct"` keeps the old delivery. On SQLite and PostgreSQL.
//! (A database outage under each delivery: tests/history_faults.rs.)
mod common;

use common::client::{Client, Mqtt5, Version as _};
use common::history::{chat, send_until_acked, HistNode, Peer, Worker};
use common::{on_both_backends, token_with, Backend, Node};
use roost_auth::Role;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PublishProperties, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a test watches for a delivery that must not come.
const QUIET: Duration = Duration::from_secs(3);

on_both_backends!(
    the_copy_carries_the_ack_stamp_and_reaches_the_senders_other_devices,
    a_retry_is_acked_again_and_not_delivered_again,
    copies_arrive_once_each_in_seq_order_at_the_qos_sent,
    nothing_is_delivered_before_it_is_committed,
    a_history_worker_delivers_the_stamped_copy,
    direct_delivery_is_unchanged,
);

/// Alice on her phone (notices) and her tablet (`im/dm/+/alice`: her own DMs), bob on his
/// inbox and his group, carol in the group.
async fn people(node: &Node) -> (Peer, Peer, Peer, Peer) {
    let alice = Peer::device(node, "alice", "phone", &["team"]).await;
    let mut tablet = Peer::device(node, "alice", "tablet", &["team"]).await;
    tablet.subscribe("im/dm/+/alice").await;
    let mut bob = Peer::connect(node, "bob", &["team"]).await;
    bob.subscribe("im/dm/bob/+").await;
    bob.subscribe("im/grp/team/+").await;
    let carol = Peer::connect(node, "carol", &["team"]).await;
    (alice, tablet, bob, carol)
}

/// The next chat message `peer` gets, with its topic and QoS; `None` after `within`.
async fn chat_within(peer: &mut Peer, within: Duration) -> Option<(String, QoS, Value)> {
    let p = peer
        .take(within, |p| {
            matches!(p, Packet::Publish(p)
                if p.topic.starts_with(b"im/dm/") || p.topic.starts_with(b"im/grp/"))
        })
        .await?;
    let Packet::Publish(p) = p else {
        unreachable!()
    };
    let payload = serde_json::from_slice(&p.payload)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", p.payload));
    Some((
        String::from_utf8_lossy(&p.topic).into_owned(),
        p.qos,
        payload,
    ))
}

/// The stamp of a copy next to the ack's.
#[track_caller]
fn assert_stamped(copy: &Value, ack: &Value, from: &str) {
    for key in ["conv", "seq", "ts"] {
        assert_eq!(copy[key], ack[key], "{key}: copy {copy}, ack {ack}");
    }
    assert_eq!(copy["from"], from, "{copy}");
}

async fn the_copy_carries_the_ack_stamp_and_reaches_the_senders_other_devices(backend: Backend) {
    let node = HistNode::start(backend);
    let (mut alice, mut tablet, mut bob, mut carol) = people(&node).await;
    carol.subscribe("im/grp/team/+").await;

    // Sent with the client's own clock, an extra field, a user property.
    let sent = json!({"id": "s1", "kind": "text", "body": "hi bob", "reply_to": "s0",
                      "ts": 123, "extra": {"nested": [1, 2.5, "x"]}});
    let props = PublishProperties {
        user_properties: vec![("trace".into(), "t-1".into())],
        ..Default::default()
    };
    alice
        .mqtt
        .client
        .publish_with_properties(
            "im/dm/bob/alice",
            QoS::AtLeastOnce,
            false,
            sent.to_string(),
            props,
        )
        .await
        .unwrap();
    let ack = alice.ack("s1").await;
    assert_eq!(
        (&ack["conv"], &ack["seq"]),
        (&json!("dm:alice:bob"), &json!(1))
    );

    for peer in [&mut bob, &mut tablet] {
        let p = peer
            .expect(
                "the stamped copy",
                |p| matches!(p, Packet::Publish(p) if p.topic == "im/dm/bob/alice"),
            )
            .await;
        let Packet::Publish(p) = p else {
            unreachable!()
        };
        assert_eq!(
            common::client::user_properties(&p),
            [("trace".to_owned(), "t-1".to_owned())],
            "{}: the sender's user properties, and nothing of the node's",
            peer.client_id
        );
        let copy: Value = serde_json::from_slice(&p.payload).unwrap();
        assert_stamped(&copy, &ack, "alice");
        // Every field as sent, except `ts`: the server's clock (the client's stays stored).
        for key in ["id", "kind", "body", "reply_to", "extra"] {
            assert_eq!(copy[key], sent[key], "{}: {key} in {copy}", peer.client_id);
        }
        assert_ne!(copy["ts"], 123);
        assert_eq!(copy.as_object().unwrap().len(), 9, "{copy}");
    }
    let stored = bob.history("dm:alice:bob", json!({})).await;
    assert_eq!(stored["messages"][0]["payload"], sent, "stored as sent");
    assert_eq!(stored["messages"][0]["ts"], ack["ts"]);

    // A group message: every member's copy, the sender's too.
    alice.grp("team", "g1", "hi team").await;
    let ack = alice.ack("g1").await;
    assert_eq!(ack["conv"], "grp:team");
    for peer in [&mut bob, &mut carol] {
        let (topic, _, copy) = chat_within(peer, common::history::WAIT).await.unwrap();
        assert_eq!(topic, "im/grp/team/alice");
        assert_stamped(&copy, &ack, "alice");
        assert_eq!(
            (&copy["id"], &copy["body"]),
            (&json!("g1"), &json!("hi team"))
        );
    }
}

async fn a_retry_is_acked_again_and_not_delivered_again(backend: Backend) {
    let node = HistNode::start(backend);
    let (mut alice, mut tablet, mut bob, _carol) = people(&node).await;
    alice.dm("bob", "r1", "once").await;
    let ack = alice.ack("r1").await;
    for peer in [&mut bob, &mut tablet] {
        let (_, _, copy) = chat_within(peer, common::history::WAIT).await.unwrap();
        assert_eq!(copy["id"], "r1");
    }
    // The client never saw the ack and sends it again, twice, with a new body even.
    alice.dm("bob", "r1", "once").await;
    alice.dm("bob", "r1", "twice?").await;
    assert_eq!(alice.ack("r1").await, ack);
    assert_eq!(alice.ack("r1").await, ack);
    alice.dm("bob", "r2", "next").await;
    let next = alice.ack("r2").await;
    assert_eq!(next["seq"], 2);
    // What bob and the tablet get next is r2: r1 came once.
    for peer in [&mut bob, &mut tablet] {
        let (_, _, copy) = chat_within(peer, common::history::WAIT).await.unwrap();
        assert_eq!(
            (&copy["id"], &copy["seq"]),
            (&json!("r2"), &json!(2)),
            "{}",
            peer.client_id
        );
        assert!(chat_within(peer, Duration::ZERO).await.is_none());
    }
    assert_eq!(node.rows("dm:alice:bob"), ["1|alice|r1", "2|alice|r2"]);
}

async fn copies_arrive_once_each_in_seq_order_at_the_qos_sent(backend: Backend) {
    let node = HistNode::start(backend);
    let (alice, _tablet, mut bob, carol) = people(&node).await;
    let mut dave = Peer::connect(&node, "dave", &[]).await;
    dave.subscribe("im/dm/dave/+").await;
    // Two senders at once into one group, and QoS 0, 1 and 2 mixed: each member gets each
    // message once, in seq order.
    let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    for n in 0..30 {
        let (who, from) = if n % 2 == 0 {
            (&alice, "alice")
        } else {
            (&carol, "carol")
        };
        who.mqtt
            .client
            .publish(
                format!("im/grp/team/{from}"),
                qos[n % 3],
                false,
                chat(&format!("q{n}"), "x"),
            )
            .await
            .unwrap();
    }
    let mut seqs = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..30 {
        let (_, got_qos, copy) = chat_within(&mut bob, common::history::WAIT).await.unwrap();
        let id = copy["id"].as_str().unwrap().to_owned();
        let n: usize = id[1..].parse().unwrap();
        // Bob subscribed at QoS 1: QoS 0 stays 0, 1 and 2 arrive at 1.
        let want = if qos[n % 3] == QoS::AtMostOnce {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        assert_eq!(got_qos, want, "{copy}");
        seqs.push(copy["seq"].as_i64().unwrap());
        ids.push(id);
    }
    assert_eq!(seqs, (1..=30).collect::<Vec<i64>>(), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30);
    assert!(
        chat_within(&mut bob, QUIET).await.is_none(),
        "a copy came twice"
    );
    // dave is not in the DM, nor the group: nothing reached him.
    assert!(chat_within(&mut dave, Duration::ZERO).await.is_none());
}

/// What holds the history database's writes: a PostgreSQL lock on the messages table, or a
/// SQLite write transaction of another process. Dropping it lets them through.
enum WritesHeld {
    Postgres(#[allow(dead_code)] common::pg::TableLock),
    Sqlite(Child),
}

impl Drop for WritesHeld {
    fn drop(&mut self) {
        if let WritesHeld::Sqlite(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn hold_writes(node: &HistNode) -> WritesHeld {
    if let Some(db) = &node.db {
        return WritesHeld::Postgres(db.lock_table("history_messages").await);
    }
    common::tools::require("sqlite3");
    let mut child = Command::new("sqlite3")
        .arg(node.dir.path().join("data/history.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sqlite3");
    let stdin = child.stdin.as_mut().unwrap();
    writeln!(stdin, ".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'held';").unwrap();
    stdin.flush().unwrap();
    // The write lock is ours once the SELECT after BEGIN IMMEDIATE answers.
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");
    WritesHeld::Sqlite(child)
}

async fn nothing_is_delivered_before_it_is_committed(backend: Backend) {
    let node = HistNode::start(backend);
    let (mut alice, mut tablet, mut bob, _carol) = people(&node).await;
    alice.dm("bob", "c0", "before").await;
    alice.ack("c0").await;
    assert_eq!(
        chat_within(&mut bob, common::history::WAIT)
            .await
            .unwrap()
            .2["id"],
        "c0"
    );
    assert_eq!(
        chat_within(&mut tablet, common::history::WAIT)
            .await
            .unwrap()
            .2["id"],
        "c0"
    );

    let held = hold_writes(&node).await;
    alice
        .dm("bob", "c1", "while the database cannot write")
        .await;
    alice.dm("bob", "c2", "and another").await;
    for peer in [&mut bob, &mut tablet] {
        let early = chat_within(peer, QUIET).await;
        assert!(
            early.is_none(),
            "{}: delivered before commit: {early:?}",
            peer.client_id
        );
    }
    assert!(
        alice.kept_notices().iter().all(|n| n["type"] != "ack"),
        "acked before commit"
    );

    drop(held);
    let acks = alice.acks(&["c1".to_owned(), "c2".to_owned()]).await;
    for peer in [&mut bob, &mut tablet] {
        for ack in &acks {
            let (_, _, copy) = chat_within(peer, Duration::from_secs(30)).await.unwrap();
            assert_eq!(copy["id"], ack["id"]);
            assert_stamped(&copy, ack, "alice");
        }
    }
}

async fn a_history_worker_delivers_the_stamped_copy(backend: Backend) {
    // The node stores nothing itself; one worker, on stamped delivery like the node.
    let node = HistNode::start_with(backend, "service = false\ndelivery = \"stamped\"", "");
    let _worker = Worker::start(&node, "w1");
    let (mut alice, mut tablet, mut bob, _carol) = people(&node).await;
    let probe = send_until_acked(&mut alice, "bob", "probe").await;
    alice.dm("bob", "w1", "through the worker").await;
    let ack = alice.ack("w1").await;
    for peer in [&mut bob, &mut tablet] {
        // The probe once (however often it was sent), then w1.
        for want in [&probe, &ack] {
            let p = peer
                .expect(
                    "a stamped copy",
                    |p| matches!(p, Packet::Publish(p) if p.topic == "im/dm/bob/alice"),
                )
                .await;
            let Packet::Publish(p) = p else {
                unreachable!()
            };
            assert!(
                common::client::user_properties(&p).is_empty(),
                "the worker's marker reached a client"
            );
            let copy: Value = serde_json::from_slice(&p.payload).unwrap();
            assert_eq!(copy["id"], want["id"]);
            assert_stamped(&copy, want, "alice");
        }
        assert!(
            chat_within(peer, QUIET).await.is_none(),
            "{}",
            peer.client_id
        );
    }
}

async fn direct_delivery_is_unchanged(backend: Backend) {
    let node = HistNode::start_with(backend, "delivery = \"direct\"", "");
    let (mut alice, mut tablet, mut bob, _carol) = people(&node).await;
    let sent = r#"{"id":"d1", "kind":"text","body":"as sent","ts":123}"#;
    alice.publish("im/dm/bob/alice", sent).await;
    for peer in [&mut bob, &mut tablet] {
        let p = peer
            .expect(
                "the message",
                |p| matches!(p, Packet::Publish(p) if p.topic == "im/dm/bob/alice"),
            )
            .await;
        let Packet::Publish(p) = p else {
            unreachable!()
        };
        assert_eq!(p.payload, sent.as_bytes(), "byte for byte");
    }
    let ack = alice.ack("d1").await;
    assert_eq!(ack["seq"], 1);
    // A retry is delivered again (stored once): direct delivery does not wait for history.
    alice.publish("im/dm/bob/alice", sent).await;
    assert_eq!(alice.ack("d1").await, ack);
    let (_, _, again) = chat_within(&mut bob, common::history::WAIT).await.unwrap();
    assert_eq!(again["id"], "d1");
    assert_eq!(node.rows("dm:alice:bob"), ["1|alice|d1"]);
}

/// The ingress (`im/ingress/...`) is the node's: no client may publish or subscribe there,
/// whatever `[[acl.rules]]` say (here: everything allowed), and only a `service` token may
/// read it.
#[tokio::test]
async fn the_ingress_is_out_of_every_clients_reach() {
    let node = HistNode::start_with(
        Backend::Sqlite,
        "",
        "[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"#\"\n",
    );
    let mut bob = Peer::connect(&node, "bob", &[]).await;
    bob.subscribe("im/dm/bob/+").await;
    let mut mallory = Peer::connect(&node, "mallory", &[]).await;
    for filter in [
        "im/ingress/dm/bob/alice",
        "im/ingress/dm/bob/+",
        "im/ingress/#",
        "$share/x/im/ingress/dm/+/+",
        "$share/roost-ingress-dm/im/ingress/dm/+/+",
    ] {
        Mqtt5::subscribe(&mallory.mqtt.client, &[filter]).await;
        let Packet::SubAck(ack) = mallory
            .expect("SUBACK", |p| matches!(p, Packet::SubAck(_)))
            .await
        else {
            unreachable!()
        };
        assert_eq!(
            ack.return_codes,
            [SubscribeReasonCode::NotAuthorized],
            "{filter}"
        );
    }
    // Publishing there as bob's correspondent would skip the checks and the sender in the
    // topic: refused, for users and services alike, and nothing is delivered or stored.
    let forged = chat("f1", "forged");
    mallory
        .publish("im/ingress/dm/bob/alice", forged.clone())
        .await;
    assert_eq!(mallory.puback().await.reason, PubAckReason::NotAuthorized);
    let svc_token = token_with("svc", &[], Role::Service, Duration::from_secs(3600));
    let mut options = Mqtt5::new("svc:x", "127.0.0.1", node.mqtt.port());
    options.set_credentials("svc", &svc_token);
    let mut svc = Client::connect(options).await.unwrap();
    svc.client
        .publish("im/ingress/dm/bob/alice", QoS::AtLeastOnce, false, forged)
        .await
        .unwrap();
    let Packet::PubAck(ack) = svc.next_where(|p| matches!(p, Packet::PubAck(_))).await else {
        unreachable!()
    };
    assert_eq!(ack.reason, PubAckReason::NotAuthorized, "a service");
    assert!(chat_within(&mut bob, QUIET).await.is_none());
    assert_eq!(node.sql("SELECT count(*) FROM history_messages"), "0");

    // Root wildcards the rules grant (checked per delivery) read nothing of the ingress.
    mallory.subscribe("#").await;
    mallory.subscribe("+/ingress/dm/+/+").await;
    let alice = Peer::connect(&node, "alice", &[]).await;
    alice.dm("bob", "real", "x").await;
    assert_eq!(
        chat_within(&mut bob, common::history::WAIT)
            .await
            .unwrap()
            .2["id"],
        "real"
    );
    let leaked = mallory
        .take(
            QUIET,
            |p| matches!(p, Packet::Publish(p) if p.topic.starts_with(b"im/ingress/") || p.topic.starts_with(b"im/dm/")),
        )
        .await;
    assert!(leaked.is_none(), "{leaked:?}");
}
