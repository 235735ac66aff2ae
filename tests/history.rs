//! Chat history end to end (docs/protocol.md sections 4-5): real nodes, real MQTT clients, and
//! the history stored in real databases. The core rules run twice, against the embedded
//! SQLite (a node with no `[history]` config) and against PostgreSQL (a fresh database per
//! test on the test server, see tests/common/backend.rs): `sqlite::...` and `postgres::...`.
//!
//! What a user depends on, and how each is shown:
//! - the `ack` is the "sent" tick: it comes only once the message is stored, so a `history`
//!   request or the HTTP API asked right after it finds the message;
//! - `seq` is gapless per conversation, whoever sends;
//! - a retried `(from, id)` is stored once and acked again with the same `seq`;
//! - refused payloads reach nobody and are stored nowhere (proven with a later marker);
//! - `history`, `sync`, `conversations`, `read` answer as documented, and only about
//!   conversations the verified user is in; a client cannot claim group rights itself.
//!
//! Then, once each: `roost-cli history`, `roost history-worker` (alone, and two sharing the
//! load; workers that die: tests/history_faults.rs) and retention.
mod common;

use common::client::{options, Client};
use common::history::{
    api_messages, chat, ids, keys, send_until_acked, seqs, HistNode, Peer, Worker, WAIT,
};
use common::pg::PgDb;
use common::tools::describe;
use common::{token, token_from_claims, token_with, Backend, Node};
use roost_auth::{mint_hs256, Claims, Role};
use rumqttc::v5::mqttbytes::v5::PubAckReason;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOUR: Duration = Duration::from_secs(3600);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

common::on_both_backends!(
    ack_comes_once_the_message_is_stored,
    seq_is_gapless_per_conversation_with_several_senders,
    a_retried_message_is_stored_once_and_acked_again,
    refused_payloads_reach_nobody_and_are_not_stored,
    control_characters_are_refused_and_history_goes_on,
    history_pages_back_and_forth,
    sync_catches_up_page_by_page_on_every_device,
    conversations_list_unread_counts_and_last_message,
    read_answers_the_reader_and_sends_receipts_to_the_others,
    requests_about_other_peoples_conversations_are_forbidden,
    http_api_serves_history_to_participants_only,
);

/// The ack `{type, id, conv, seq, ts}` of message `id`, checked for its exact fields.
fn assert_ack(ack: &Value, id: &str, conv: &str, seq: i64) {
    assert_eq!(keys(ack), ["conv", "id", "seq", "ts", "type"], "{ack}");
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["id"], id, "{ack}");
    assert_eq!(ack["conv"], conv, "{ack}");
    assert_eq!(ack["seq"], seq, "{ack}");
    assert!(ack["ts"].is_i64(), "{ack}");
}

// ---- §5 ack ---------------------------------------------------------------------------------

/// The `ack` on `im/sys/{from}` is sent once the message is committed: a `history` request
/// and the HTTP API asked the moment it arrives both find the message, exactly as sent.
async fn ack_comes_once_the_message_is_stored(backend: Backend) {
    let node = HistNode::start(backend);
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    bob.subscribe("im/dm/bob/+").await;
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;

    // Optional and extra fields are kept as sent.
    let sent = json!({"id": "m1", "kind": "text", "body": "hi bob", "reply_to": "m0",
        "ts": 1_700_000_000_000_i64, "extra": {"x": 1}});
    let before = now_ms();
    alice.publish("im/dm/bob/alice", sent.to_string()).await;
    let ack = alice.ack("m1").await;
    let after = now_ms();
    assert_ack(&ack, "m1", "dm:alice:bob", 1);
    let ts = ack["ts"].as_i64().unwrap();
    assert!(
        (before - 1000..=after + 1000).contains(&ts),
        "ack ts {ts} is the server's time of storing, between {before} and {after}"
    );

    // Right after the ack, over MQTT...
    let page = alice.history("dm:alice:bob", json!({})).await;
    assert_eq!(page["more"], false, "{page}");
    let messages = page["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{page}");
    let m = &messages[0];
    assert_eq!(keys(m), ["from", "id", "payload", "seq", "ts"], "{m}");
    assert_eq!(m["seq"], 1);
    assert_eq!(m["id"], "m1");
    assert_eq!(m["from"], "alice");
    assert_eq!(m["ts"], ts, "the stored ts is the acked ts");
    assert_eq!(m["payload"], sent, "the payload is stored as sent");
    // ... and over HTTP, for the other participant.
    let (status, body) = api_messages(&node, "dm:alice:bob", "", Some(&token("bob")));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, page);

    // Live delivery is the same message, stamped (docs/protocol.md 4, "Delivery"): the
    // server's ts in place of the client's.
    let (topic, live) = bob.next_chat().await;
    assert_eq!(topic, "im/dm/bob/alice");
    let mut want = sent.clone();
    want["conv"] = json!("dm:alice:bob");
    want["seq"] = json!(1);
    want["ts"] = json!(ts);
    want["from"] = json!("alice");
    assert_eq!(live, want);

    // A group message: acked to its sender with the group's conversation and seq, and
    // readable by another member the moment the ack is there.
    alice.grp("team", "g1", "hi team").await;
    assert_ack(&alice.ack("g1").await, "g1", "grp:team", 1);
    let bob_token = token_with("bob", &["team"], Role::User, HOUR);
    let (status, body) = api_messages(&node, "grp:team", "", Some(&bob_token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body["messages"]), ["g1"], "{body}");

    // A QoS 0 publish (no PUBACK at all) is stored and acked all the same.
    alice
        .mqtt
        .client
        .publish(
            "im/dm/bob/alice",
            QoS::AtMostOnce,
            false,
            chat("q0", "fire and forget"),
        )
        .await
        .unwrap();
    assert_ack(&alice.ack("q0").await, "q0", "dm:alice:bob", 2);

    // Acks go to the sender only: bob, who sent nothing, got none (his own request's answer
    // comes after any notice sent to him before it).
    bob.call("conversations", json!({})).await;
    let stray: Vec<Value> = bob
        .kept_notices()
        .into_iter()
        .filter(|n| n["type"] == "ack")
        .collect();
    assert!(
        stray.is_empty(),
        "bob got acks for alice's messages: {stray:?}"
    );
}

// ---- §5 seq -------------------------------------------------------------------------------

/// Three users send at once into a DM, a group and another DM: each conversation's seqs
/// are exactly 1..n, every message has one, and each sender's messages keep their order.
async fn seq_is_gapless_per_conversation_with_several_senders(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    let mut carol = Peer::connect(&node, "carol", &["team"]).await;

    let names = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>()
    };
    let (a_dm, b_dm, c_dm) = (names("a-dm-", 20), names("b-dm-", 20), names("c-dm-", 5));
    let (a_gr, b_gr, c_gr) = (names("a-gr-", 15), names("b-gr-", 15), names("c-gr-", 15));
    // Everything in flight at once, interleaved.
    for i in 0..20 {
        alice.dm("bob", &a_dm[i], "x").await;
        bob.dm("alice", &b_dm[i], "x").await;
        if i < 15 {
            alice.grp("team", &a_gr[i], "x").await;
            bob.grp("team", &b_gr[i], "x").await;
            carol.grp("team", &c_gr[i], "x").await;
        }
        if i < 5 {
            carol.dm("alice", &c_dm[i], "x").await;
        }
    }

    // (conv, seq) of each id, from the acks; each sender's seqs rise in sending order.
    let mut acked: HashMap<String, (String, i64)> = HashMap::new();
    for (peer, lists) in [
        (&mut alice, [&a_dm, &a_gr]),
        (&mut bob, [&b_dm, &b_gr]),
        (&mut carol, [&c_dm, &c_gr]),
    ] {
        for list in lists {
            let mut last = 0;
            for ack in peer.acks(list).await {
                let seq = ack["seq"].as_i64().unwrap();
                assert!(seq > last, "{}: seq {seq} after {last}", peer.user);
                last = seq;
                acked.insert(
                    ack["id"].as_str().unwrap().to_owned(),
                    (ack["conv"].as_str().unwrap().to_owned(), seq),
                );
            }
        }
    }

    for (conv, lists, n) in [
        ("dm:alice:bob", vec![&a_dm, &b_dm], 40),
        ("grp:team", vec![&a_gr, &b_gr, &c_gr], 45),
        ("dm:alice:carol", vec![&c_dm], 5),
    ] {
        let mut by_seq: BTreeMap<i64, String> = BTreeMap::new();
        for id in lists.into_iter().flatten() {
            let (c, seq) = &acked[id];
            assert_eq!(c, conv, "{id}");
            assert!(by_seq.insert(*seq, id.clone()).is_none(), "seq {seq} twice");
        }
        let expected: Vec<i64> = (1..=n).collect();
        assert_eq!(
            by_seq.keys().copied().collect::<Vec<_>>(),
            expected,
            "{conv}"
        );
        // The history says the same: every seq once, each with the acked message.
        let page = alice.history(conv, json!({"limit": 100})).await;
        assert_eq!(seqs(&page["messages"]), expected, "{conv}");
        assert_eq!(
            ids(&page["messages"]),
            by_seq.values().cloned().collect::<Vec<_>>(),
            "{conv}"
        );
        // And so does the database.
        assert_eq!(node.rows(conv).len(), n as usize, "{conv}");
    }
}

// ---- §4 idempotency -----------------------------------------------------------------------

/// The same `(from, id)` is stored once however often it comes: the retry gets the `ack`
/// of the stored copy (same seq and ts) and consumes no seq; another sender's equal id is
/// another message.
async fn a_retried_message_is_stored_once_and_acked_again(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    let mut bob = Peer::connect(&node, "bob", &[]).await;

    alice.dm("bob", "m1", "first").await;
    let first = alice.ack("m1").await;
    assert_ack(&first, "m1", "dm:alice:bob", 1);
    // A retry (even with another body: the first copy is the message).
    alice.dm("bob", "m1", "retried").await;
    let again = alice.ack("m1").await;
    assert_eq!(
        again, first,
        "the retry is acked with the stored copy's ack"
    );

    // Two copies in flight together.
    alice.dm("bob", "m2", "twice").await;
    alice.dm("bob", "m2", "twice").await;
    let a = alice.ack("m2").await;
    let b = alice.ack("m2").await;
    assert_ack(&a, "m2", "dm:alice:bob", 2);
    assert_eq!(a, b);

    // The key is (from, id): bob's m1 is his own message.
    bob.dm("alice", "m1", "bob's m1").await;
    assert_ack(&bob.ack("m1").await, "m1", "dm:alice:bob", 3);
    alice.dm("bob", "m3", "after").await;
    assert_ack(&alice.ack("m3").await, "m3", "dm:alice:bob", 4);

    let page = alice.history("dm:alice:bob", json!({})).await;
    let got: Vec<(i64, String, String, String)> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().unwrap(),
                m["from"].as_str().unwrap().to_owned(),
                m["id"].as_str().unwrap().to_owned(),
                m["payload"]["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        (1, "alice", "m1", "first"),
        (2, "alice", "m2", "twice"),
        (3, "bob", "m1", "bob's m1"),
        (4, "alice", "m3", "after"),
    ]
    .map(|(s, f, i, b)| (s, f.to_owned(), i.to_owned(), b.to_owned()));
    assert_eq!(got, want);
    assert_eq!(
        node.rows("dm:alice:bob"),
        ["1|alice|m1", "2|alice|m2", "3|bob|m1", "4|alice|m3"]
    );
}

// ---- §4 refused payloads ------------------------------------------------------------------

/// Not a chat payload on a stored topic: v5 PUBACK 0x99 and an `error` notice
/// (`invalid_payload`, `too_large`), v3.1.1 a silent drop and the same notice. The
/// recipients' next message is the marker sent afterwards, and only markers are stored.
async fn refused_payloads_reach_nobody_and_are_not_stored(backend: Backend) {
    // A packet limit above the payload limit, so a too-large payload reaches the payload
    // check instead of closing the connection (0x95).
    let node = HistNode::start_with(backend, "", "[limits]\nmax_packet_size = 262144\n");
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    bob.subscribe("im/dm/bob/+").await;
    bob.subscribe("im/grp/team/+").await;
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;

    let big = json!({"id": "big1", "kind": "text", "body": "x".repeat(70_000)}).to_string();
    let refused: [(&str, String, &str, Option<&str>); 7] = [
        (
            "im/dm/bob/alice",
            "not json".into(),
            "invalid_payload",
            None,
        ),
        (
            "im/dm/bob/alice",
            r#"{"kind":"text","body":"no id"}"#.into(),
            "invalid_payload",
            None,
        ),
        (
            "im/dm/bob/alice",
            r#"{"id":"","kind":"text","body":"empty id"}"#.into(),
            "invalid_payload",
            None,
        ),
        (
            "im/dm/bob/alice",
            r#"["a list"]"#.into(),
            "invalid_payload",
            None,
        ),
        // The fields in order, but not an object.
        (
            "im/dm/bob/alice",
            r#"["m-list","text","x"]"#.into(),
            "invalid_payload",
            None,
        ),
        (
            "im/grp/team/alice",
            "not json either".into(),
            "invalid_payload",
            None,
        ),
        ("im/dm/bob/alice", big, "too_large", Some("big1")),
    ];
    for (topic, payload, code, id) in &refused {
        alice.publish(topic, payload.clone()).await;
        let puback = alice.puback().await;
        assert_eq!(
            puback.reason,
            PubAckReason::PayloadFormatInvalid,
            "{topic} {:.60}",
            payload
        );
        let notice = alice.error_notice().await;
        assert_eq!(notice["code"], *code, "{notice}");
        assert!(notice["message"].is_string(), "{notice}");
        match id {
            Some(id) => assert_eq!(notice["id"], *id, "{notice}"),
            None => assert!(notice.get("id").is_none(), "{notice}"),
        }
    }
    // The markers: accepted, delivered first, stored as seq 1.
    alice.dm("bob", "ok-dm", "after").await;
    assert_eq!(alice.puback().await.reason, PubAckReason::Success);
    alice.grp("team", "ok-grp", "after").await;
    assert_eq!(alice.puback().await.reason, PubAckReason::Success);
    assert_eq!(bob.next_chat().await.1["id"], "ok-dm");
    assert_eq!(bob.next_chat().await.1["id"], "ok-grp");
    assert_ack(&alice.ack("ok-dm").await, "ok-dm", "dm:alice:bob", 1);
    assert_ack(&alice.ack("ok-grp").await, "ok-grp", "grp:team", 1);
    assert!(
        alice.kept_notices().iter().all(|n| n["type"] != "ack"),
        "refused payloads were acked: {:?}",
        alice.kept_notices()
    );

    // MQTT 3.1.1 cannot say no: a normal PUBACK, the message dropped, the same notice.
    let dave_token = token_with("dave", &[], Role::User, HOUR);
    let mut dave = Client::connect(options(&node, "dave", "dave", &dave_token))
        .await
        .unwrap();
    assert_eq!(dave.subscribe("im/sys/dave").await, 1);
    dave.publish("im/dm/bob/dave", "not json").await;
    let (topic, notice) = dave.next_publish().await;
    assert_eq!(topic, "im/sys/dave");
    let notice: Value = serde_json::from_str(&notice).unwrap();
    assert_eq!(notice["type"], "error", "{notice}");
    assert_eq!(notice["code"], "invalid_payload", "{notice}");
    dave.publish("im/dm/bob/dave", &chat("ok-v3", "after"))
        .await;
    let (topic, live) = bob.next_chat().await;
    assert_eq!(
        (topic.as_str(), &live["id"]),
        ("im/dm/bob/dave", &json!("ok-v3"))
    );

    assert_eq!(
        ids(&bob.history("dm:alice:bob", json!({})).await["messages"]),
        ["ok-dm"]
    );
    assert_eq!(
        ids(&bob.history("grp:team", json!({})).await["messages"]),
        ["ok-grp"]
    );
    assert_eq!(
        ids(&bob.history("dm:bob:dave", json!({})).await["messages"]),
        ["ok-v3"]
    );
    assert_eq!(node.sql("SELECT count(*) FROM history_messages"), "3");
}

/// A NUL (which PostgreSQL text cannot hold) anywhere in a chat payload, or a control
/// character in its `id` or `kind`, is refused at the front-end like any bad payload: v5
/// PUBACK 0x99 and an `invalid_payload` notice that names the message, so the client can
/// mark it failed. Nothing reaches the recipient or the database, and the history goes on:
/// the marker sent afterwards is delivered, stored and acked.
async fn control_characters_are_refused_and_history_goes_on(backend: Backend) {
    let node = HistNode::start(backend);
    let mut bob = Peer::connect(&node, "bob", &[]).await;
    bob.subscribe("im/dm/bob/+").await;
    let mut alice = Peer::connect(&node, "alice", &[]).await;

    let refused = [
        (
            r#"{"id":"a\u0000b","kind":"text","body":"nul in the id"}"#,
            "a\0b",
        ),
        (r#"{"id":"n2","kind":"text","body":"a\u0000b"}"#, "n2"),
        (
            r#"{"id":"n3","kind":"text","body":{"deep":["\u0000"]}}"#,
            "n3",
        ),
        (
            r#"{"id":"n4","kind":"text","body":"x","extra\u0000":1}"#,
            "n4",
        ),
        (
            r#"{"id":"n\u0007","kind":"text","body":"bell in the id"}"#,
            "n\u{7}",
        ),
        (
            r#"{"id":"n6","kind":"te\nxt","body":"newline in the kind"}"#,
            "n6",
        ),
    ];
    for (payload, id) in refused {
        alice.publish("im/dm/bob/alice", payload).await;
        let puback = alice.puback().await;
        assert_eq!(
            puback.reason,
            PubAckReason::PayloadFormatInvalid,
            "{payload}"
        );
        let notice = alice.error_notice().await;
        assert_eq!(notice["code"], "invalid_payload", "{notice}");
        assert_eq!(notice["id"], json!(id), "{notice}");
    }

    alice.dm("bob", "after", "marker").await;
    assert_eq!(alice.puback().await.reason, PubAckReason::Success);
    assert_eq!(bob.next_chat().await.1["id"], "after");
    assert_ack(&alice.ack("after").await, "after", "dm:alice:bob", 1);
    assert_eq!(
        ids(&bob.history("dm:alice:bob", json!({})).await["messages"]),
        ["after"]
    );
}

/// The `id` limit counts characters: a 64-emoji id is a valid id, stored and acked, and a
/// refused payload with a 20-emoji id gets an `error` notice carrying that id.
#[tokio::test]
async fn message_ids_are_counted_in_characters() {
    let node = HistNode::start(Backend::Sqlite);
    let mut alice = Peer::connect(&node, "alice", &[]).await;

    let twenty = "\u{1F426}".repeat(20);
    let no_body = json!({"id": twenty, "kind": "text"}).to_string();
    alice.publish("im/dm/bob/alice", no_body).await;
    assert_eq!(
        alice.puback().await.reason,
        PubAckReason::PayloadFormatInvalid
    );
    let notice = alice.error_notice().await;
    assert_eq!(notice["code"], "invalid_payload", "{notice}");
    assert_eq!(notice["id"], json!(twenty), "{notice}");

    let sixty_four = "\u{1F426}".repeat(64);
    alice
        .publish("im/dm/bob/alice", chat(&sixty_four, "64 birds"))
        .await;
    assert_eq!(alice.puback().await.reason, PubAckReason::Success);
    assert_ack(
        &alice.ack(&sixty_four).await,
        &sixty_four,
        "dm:alice:bob",
        1,
    );

    let sixty_five = "\u{1F426}".repeat(65);
    alice
        .publish("im/dm/bob/alice", chat(&sixty_five, "65 birds"))
        .await;
    assert_eq!(
        alice.puback().await.reason,
        PubAckReason::PayloadFormatInvalid
    );
    assert_eq!(alice.error_notice().await["code"], "invalid_payload");
}

// ---- §5 history ---------------------------------------------------------------------------

/// 105 messages, read in pages: the latest, before a seq, after a seq, between two, with
/// `more` telling whether there is more in that direction, and a `limit` outside 1..=100
/// refused with `invalid_request` (not clamped). The HTTP API pages the same way, and
/// refuses the same limits with 400.
async fn history_pages_back_and_forth(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    let mut bob = Peer::connect(&node, "bob", &[]).await;
    let sent: Vec<String> = (1..=105).map(|n| format!("p{n}")).collect();
    for id in &sent {
        alice.dm("bob", id, id).await;
    }
    let acks = alice.acks(&sent).await;
    assert_eq!(
        acks.iter()
            .map(|a| a["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        (1..=105).collect::<Vec<_>>()
    );

    let range = |a: i64, b: i64| (a..=b).collect::<Vec<i64>>();
    let cases = [
        (json!({"limit": 10}), range(96, 105), true),
        (json!({"limit": 10, "before_seq": 96}), range(86, 95), true),
        (json!({"limit": 10, "before_seq": 3}), range(1, 2), false),
        (json!({"limit": 10, "before_seq": 11}), range(1, 10), false),
        (json!({"limit": 10, "after_seq": 90}), range(91, 100), true),
        (
            json!({"limit": 10, "after_seq": 100}),
            range(101, 105),
            false,
        ),
        (json!({"limit": 10, "after_seq": 105}), vec![], false),
        (json!({"after_seq": 0, "before_seq": 5}), range(1, 4), false),
        (
            json!({"limit": 2, "after_seq": 10, "before_seq": 20}),
            range(11, 12),
            true,
        ),
        (json!({"limit": 1}), vec![105], true),
        // Default 50; at most 100.
        (json!({}), range(56, 105), true),
        (json!({"limit": 100}), range(6, 105), true),
        (json!({"limit": 100, "after_seq": 0}), range(1, 100), true),
    ];
    for (params, want, more) in cases {
        let page = bob.history("dm:alice:bob", params.clone()).await;
        assert_eq!(seqs(&page["messages"]), want, "{params}");
        assert_eq!(page["more"], more, "{params}");
        if let Some(first) = want.first() {
            assert_eq!(page["messages"][0]["id"], format!("p{first}"), "{params}");
        }
    }

    // Paging through everything backwards with `before_seq` = the oldest seq seen.
    let mut all = Vec::new();
    let mut params = json!({"limit": 40});
    loop {
        let page = bob.history("dm:alice:bob", params.clone()).await;
        let mut s = seqs(&page["messages"]);
        s.extend(all);
        all = s;
        if page["more"] != true {
            break;
        }
        params["before_seq"] = json!(all[0]);
    }
    assert_eq!(all, range(1, 105));
    for limit in [0, 101, 500, -1] {
        let code = bob
            .refused("history", json!({"conv": "dm:alice:bob", "limit": limit}))
            .await;
        assert_eq!(code, "invalid_request", "limit {limit}");
    }

    // The same pages over HTTP.
    let bob_token = token("bob");
    for (query, want, more) in [
        ("?limit=10&before_seq=96", range(86, 95), true),
        ("?after_seq=100", range(101, 105), false),
        ("?limit=100", range(6, 105), true),
        ("", range(56, 105), true),
    ] {
        let (status, body) = api_messages(&node, "dm:alice:bob", query, Some(&bob_token));
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(seqs(&body["messages"]), want, "{query}");
        assert_eq!(body["more"], more, "{query}");
    }
    for query in [
        "?limit=500",
        "?limit=0",
        "?limit=-3",
        "?limit=ten",
        "?before_seq=x",
    ] {
        let (status, body) = api_messages(&node, "dm:alice:bob", query, Some(&bob_token));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{query}: {body}");
    }
}

// ---- §5 sync ------------------------------------------------------------------------------

/// The (conv, id) of sync messages, checking each has the documented fields.
fn conv_ids(messages: &[Value]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| {
            assert_eq!(
                keys(m),
                ["conv", "from", "id", "payload", "seq", "ts"],
                "{m}"
            );
            (
                m["conv"].as_str().unwrap().to_owned(),
                m["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(c, i)| (c.to_string(), i.to_string()))
        .collect()
}

/// `sync` gives every message of my conversations after my cursor, oldest first, page by
/// page; groups only if my token lists them. A second device starts from nothing and gets
/// everything; each device then catches up from its own cursor.
async fn sync_catches_up_page_by_page_on_every_device(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::device(&node, "alice", "laptop", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team", "secret"]).await;
    let mut carol = Peer::connect(&node, "carol", &["secret"]).await;

    // One after the other (each acked before the next), so "oldest first" is this order.
    bob.dm("alice", "s1", "bob to alice").await;
    bob.ack("s1").await;
    carol.grp("secret", "s2", "not for alice").await;
    carol.ack("s2").await;
    alice.dm("bob", "s3", "alice to bob").await;
    alice.ack("s3").await;
    carol.dm("alice", "s4", "carol to alice").await;
    carol.ack("s4").await;
    bob.grp("team", "s5", "team").await;
    bob.ack("s5").await;
    bob.dm("carol", "s6", "not for alice").await;
    bob.ack("s6").await;
    alice.grp("team", "s7", "team").await;
    alice.ack("s7").await;

    let alice_sees = pairs(&[
        ("dm:alice:bob", "s1"),
        ("dm:alice:bob", "s3"),
        ("dm:alice:carol", "s4"),
        ("grp:team", "s5"),
        ("grp:team", "s7"),
    ]);
    let (got, laptop_cursor, pages) = alice.sync_all(None, 2).await;
    assert_eq!(conv_ids(&got), alice_sees);
    assert_eq!(pages, 3, "5 messages in pages of 2");
    assert_eq!(got[0]["from"], "bob");
    assert_eq!(got[0]["payload"]["body"], "bob to alice");

    // Each user sees their own conversations.
    let (got, _, _) = bob.sync_all(None, 100).await;
    assert_eq!(
        conv_ids(&got),
        pairs(&[
            ("dm:alice:bob", "s1"),
            ("grp:secret", "s2"),
            ("dm:alice:bob", "s3"),
            ("grp:team", "s5"),
            ("dm:bob:carol", "s6"),
            ("grp:team", "s7"),
        ])
    );
    let (got, _, _) = carol.sync_all(None, 100).await;
    assert_eq!(
        conv_ids(&got),
        pairs(&[
            ("grp:secret", "s2"),
            ("dm:alice:carol", "s4"),
            ("dm:bob:carol", "s6")
        ])
    );

    // A new device catches up from nothing.
    let mut phone = Peer::device(&node, "alice", "phone", &["team"]).await;
    let (got, phone_cursor, _) = phone.sync_all(None, 100).await;
    assert_eq!(conv_ids(&got), alice_sees);

    // New messages; each device catches up from its own cursor with exactly those.
    bob.dm("alice", "s8", "new").await;
    bob.ack("s8").await;
    carol.grp("secret", "s9", "still not for alice").await;
    carol.ack("s9").await;
    alice.dm("bob", "s10", "sent from the laptop").await;
    alice.ack("s10").await;
    let news = pairs(&[("dm:alice:bob", "s8"), ("dm:alice:bob", "s10")]);
    let (got, phone_cursor2, _) = phone.sync_all(Some(&phone_cursor), 1).await;
    assert_eq!(conv_ids(&got), news);
    let (got, laptop_cursor2, _) = alice.sync_all(Some(&laptop_cursor), 100).await;
    assert_eq!(conv_ids(&got), news);
    // Caught up: nothing more.
    for (device, cursor) in [(&mut phone, phone_cursor2), (&mut alice, laptop_cursor2)] {
        let page = device
            .call("sync", json!({"cursor": cursor, "limit": 10}))
            .await;
        assert_eq!(page["messages"], json!([]), "{page}");
        assert_eq!(page["more"], false, "{page}");
    }
    // A cursor the server did not give is refused.
    assert_eq!(
        alice
            .refused("sync", json!({"cursor": "not-a-cursor"}))
            .await,
        "invalid_request"
    );
}

// ---- §5 conversations ---------------------------------------------------------------------

/// One line of a `conversations` result, checked for its fields.
fn summary<'a>(list: &'a Value, conv: &str) -> &'a Value {
    let line = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|c| c["conv"] == conv)
        .unwrap_or_else(|| panic!("{conv} not listed: {list}"));
    assert_eq!(
        keys(line),
        ["conv", "last", "last_seq", "read_seq", "reads", "unread"],
        "{line}"
    );
    line
}

fn convs(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["conv"].as_str().unwrap().to_owned())
        .collect()
}

/// `conversations`: my DMs and my groups with messages, most recent first, each with its
/// last seq, my read position, the unread count and the last message.
async fn conversations_list_unread_counts_and_last_message(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    let mut carol = Peer::connect(&node, "carol", &[]).await;

    for id in ["c1", "c2", "c3"] {
        alice.dm("bob", id, &format!("{id} body")).await;
        alice.ack(id).await;
    }
    carol.dm("alice", "x1", "from carol").await;
    carol.ack("x1").await;
    for id in ["t1", "t2"] {
        alice.grp("team", id, &format!("{id} body")).await;
        alice.ack(id).await;
    }

    let list = bob.call("conversations", json!({})).await;
    assert_eq!(
        convs(&list),
        ["grp:team", "dm:alice:bob"],
        "most recent first"
    );
    let dm = summary(&list, "dm:alice:bob");
    assert_eq!(
        (&dm["last_seq"], &dm["read_seq"], &dm["unread"]),
        (&json!(3), &json!(0), &json!(3)),
        "{dm}"
    );
    assert_eq!(keys(&dm["last"]), ["from", "id", "payload", "seq", "ts"]);
    assert_eq!(dm["last"]["id"], "c3");
    assert_eq!(dm["last"]["seq"], 3);
    assert_eq!(dm["last"]["from"], "alice");
    assert_eq!(dm["last"]["payload"]["body"], "c3 body");
    let grp = summary(&list, "grp:team");
    assert_eq!((&grp["last_seq"], &grp["unread"]), (&json!(2), &json!(2)));
    assert_eq!(grp["last"]["id"], "t2");

    // Reading moves the read position and the unread count.
    bob.call("read", json!({"conv": "dm:alice:bob", "seq": 2}))
        .await;
    let list = bob.call("conversations", json!({})).await;
    let dm = summary(&list, "dm:alice:bob");
    assert_eq!(
        (&dm["last_seq"], &dm["read_seq"], &dm["unread"]),
        (&json!(3), &json!(2), &json!(1)),
        "{dm}"
    );

    let list = alice.call("conversations", json!({})).await;
    assert_eq!(convs(&list), ["grp:team", "dm:alice:carol", "dm:alice:bob"]);
    let from_carol = summary(&list, "dm:alice:carol");
    assert_eq!(
        (&from_carol["last_seq"], &from_carol["unread"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(from_carol["last"]["from"], "carol");

    // carol is in one DM and no group.
    let list = carol.call("conversations", json!({})).await;
    assert_eq!(convs(&list), ["dm:alice:carol"]);
    // Somebody without messages has no conversations.
    let mut dave = Peer::connect(&node, "dave", &[]).await;
    assert_eq!(dave.call("conversations", json!({})).await, json!([]));
}

// ---- §5 read and receipt ------------------------------------------------------------------

/// No notice of type `kind` has reached `peer` before the answer to a request it sends now
/// (notices to one user arrive in the order the server sent them).
async fn assert_no_notice(peer: &mut Peer, kind: &str) {
    peer.call("conversations", json!({})).await;
    let stray: Vec<Value> = peer
        .kept_notices()
        .into_iter()
        .filter(|n| n["type"] == kind)
        .collect();
    assert!(stray.is_empty(), "{} got {kind}: {stray:?}", peer.client_id);
}

/// `read` stores the reader's position (never backwards, never past the end), answers the
/// reader with a `result`, and sends `receipt` {type, conv, user, read_seq} to the other
/// members, not to the reader nor to outsiders.
async fn read_answers_the_reader_and_sends_receipts_to_the_others(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    let mut carol = Peer::connect(&node, "carol", &["team"]).await;
    let mut dave = Peer::connect(&node, "dave", &[]).await;
    for id in ["r1", "r2", "r3"] {
        alice.dm("bob", id, "x").await;
        alice.ack(id).await;
    }

    let result = bob
        .call("read", json!({"conv": "dm:alice:bob", "seq": 2}))
        .await;
    assert_eq!(result, json!({"conv": "dm:alice:bob", "read_seq": 2}));
    let receipt = alice.notice("receipt", |n| n["type"] == "receipt").await;
    assert_eq!(keys(&receipt), ["conv", "read_seq", "type", "user"]);
    assert_eq!(
        receipt,
        json!({"type": "receipt", "conv": "dm:alice:bob", "user": "bob", "read_seq": 2})
    );
    assert_no_notice(&mut bob, "receipt").await;
    assert_no_notice(&mut carol, "receipt").await;
    assert_no_notice(&mut dave, "receipt").await;

    // Never backwards; never past the last message.
    let result = bob
        .call("read", json!({"conv": "dm:alice:bob", "seq": 1}))
        .await;
    assert_eq!(result["read_seq"], 2);
    let receipt = alice.notice("receipt", |n| n["type"] == "receipt").await;
    assert_eq!(receipt["read_seq"], 2);
    let result = bob
        .call("read", json!({"conv": "dm:alice:bob", "seq": 99}))
        .await;
    assert_eq!(result["read_seq"], 3);
    let receipt = alice.notice("receipt", |n| n["type"] == "receipt").await;
    assert_eq!(receipt["read_seq"], 3);

    // In a group: to the other members the server knows (those who sent), not the reader.
    alice.grp("team", "g1", "x").await;
    alice.ack("g1").await;
    bob.grp("team", "g2", "x").await;
    bob.ack("g2").await;
    let result = carol
        .call("read", json!({"conv": "grp:team", "seq": 2}))
        .await;
    assert_eq!(result, json!({"conv": "grp:team", "read_seq": 2}));
    let expected = json!({"type": "receipt", "conv": "grp:team", "user": "carol", "read_seq": 2});
    for member in [&mut alice, &mut bob] {
        let receipt = member.notice("receipt", |n| n["type"] == "receipt").await;
        assert_eq!(receipt, expected, "to {}", member.user);
    }
    assert_no_notice(&mut carol, "receipt").await;
    assert_no_notice(&mut dave, "receipt").await;
    // A read needs a seq.
    assert_eq!(
        bob.refused("read", json!({"conv": "dm:alice:bob"})).await,
        "invalid_request"
    );
}

// ---- authorization ------------------------------------------------------------------------

/// A user reads the DMs they are in and the groups their token lists, nothing else, and no
/// user property a client sends widens that: the node stamps the verified identity.
async fn requests_about_other_peoples_conversations_are_forbidden(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team", "secret"]).await;
    let mut carol = Peer::connect(&node, "carol", &["secret"]).await;
    alice.dm("bob", "a1", "private").await;
    alice.ack("a1").await;
    alice.grp("team", "t1", "team only").await;
    alice.ack("t1").await;
    bob.grp("secret", "s1", "secret").await;
    bob.ack("s1").await;

    // carol: not in the DM, not in team.
    for (method, conv) in [
        ("history", "dm:alice:bob"),
        ("read", "dm:alice:bob"),
        ("history", "grp:team"),
        ("read", "grp:team"),
    ] {
        let code = carol.refused(method, json!({"conv": conv, "seq": 1})).await;
        assert_eq!(code, "forbidden", "carol {method} {conv}");
    }
    // Her own group she reads; her lists leave the others out.
    let page = carol.history("grp:secret", json!({})).await;
    assert_eq!(ids(&page["messages"]), ["s1"]);
    assert_eq!(
        convs(&carol.call("conversations", json!({})).await),
        ["grp:secret"]
    );
    let (got, _, _) = carol.sync_all(None, 100).await;
    assert_eq!(conv_ids(&got), pairs(&[("grp:secret", "s1")]));
    // Nobody received a receipt for carol's refused reads.
    assert_no_notice(&mut alice, "receipt").await;

    // Forged identity: user properties with the node's names are stripped and replaced.
    let forged = |groups: &str| {
        vec![
            ("roost-groups".to_owned(), groups.to_owned()),
            ("roost-user".to_owned(), "bob".to_owned()),
            ("roost-role".to_owned(), "service".to_owned()),
        ]
    };
    let answer = alice
        .request_with("history", json!({"conv": "grp:secret"}), forged("secret"))
        .await;
    assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    let answer = alice
        .request_with("history", json!({"conv": "dm:bob:carol"}), forged("secret"))
        .await;
    assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
    // ... and the real groups still count.
    let answer = alice
        .request_with("history", json!({"conv": "grp:team"}), forged("secret"))
        .await;
    assert_eq!(ids(&answer["result"]["messages"]), ["t1"], "{answer}");
    let answer = alice
        .request_with("sync", json!({"limit": 100}), forged("secret,team"))
        .await;
    let got = answer["result"]["messages"].as_array().unwrap().clone();
    assert_eq!(
        conv_ids(&got),
        pairs(&[("dm:alice:bob", "a1"), ("grp:team", "t1")])
    );
    let mut mallory = Peer::connect(&node, "mallory", &[]).await;
    let answer = mallory
        .request_with("conversations", json!({}), forged("team,secret"))
        .await;
    assert_eq!(answer["result"], json!([]), "{answer}");

    // MQTT 3.1.1 requests carry no properties; the node stamps them all the same.
    let dave_token = token_with("dave", &["secret"], Role::User, HOUR);
    let mut dave = Client::connect(options(&node, "dave", "dave", &dave_token))
        .await
        .unwrap();
    assert_eq!(dave.subscribe("im/sys/dave").await, 1);
    for (req, conv) in [("d1", "grp:secret"), ("d2", "grp:team")] {
        let request = json!({"req": req, "method": "history", "params": {"conv": conv}});
        dave.publish("im/req/dave", &request.to_string()).await;
    }
    let mut answers = HashMap::new();
    while answers.len() < 2 {
        let (_, payload) = dave.next_publish().await;
        let v: Value = serde_json::from_str(&payload).unwrap();
        if v["type"] == "result" {
            answers.insert(v["req"].as_str().unwrap().to_owned(), v);
        }
    }
    assert_eq!(ids(&answers["d1"]["result"]["messages"]), ["s1"]);
    assert_eq!(answers["d2"]["error"]["code"], "forbidden");

    // Malformed requests.
    assert_eq!(
        alice
            .refused("history", json!({"conv": "dm:bob:alice"}))
            .await,
        "invalid_request",
        "ids out of order"
    );
    assert_eq!(alice.refused("history", json!({})).await, "invalid_request");
    assert_eq!(
        alice
            .refused("history", json!({"conv": "dm:alice:bob", "limit": "ten"}))
            .await,
        "invalid_request"
    );
    assert_eq!(
        alice.refused("delete_everything", json!({})).await,
        "unknown_method"
    );
    alice.publish("im/req/alice", "not json").await;
    let answer = alice
        .notice("result for a non-JSON request", |n| n["type"] == "result")
        .await;
    assert_eq!(answer["req"], Value::Null, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
}

// ---- HTTP ---------------------------------------------------------------------------------

fn expired_token(user: &str) -> String {
    let mut claims = Claims::new(user, Vec::new(), Role::User, HOUR);
    claims.exp = (now_ms() / 1000) as u64 - 3600;
    claims.iat = Some(claims.exp - 60);
    token_from_claims(&claims)
}

/// `GET /api/v1/conversations/{conv}/messages`: the `history` result for a participant
/// with a valid Bearer token; 401 without one, 403 for outsiders, 400 for a conversation id
/// that is not one; errors as `{"error": {"code", "message"}}`.
async fn http_api_serves_history_to_participants_only(backend: Backend) {
    let node = HistNode::start(backend);
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    for id in ["h1", "h2", "h3"] {
        alice.dm("bob", id, id).await;
        alice.ack(id).await;
    }
    alice.grp("team", "g1", "team").await;
    alice.ack("g1").await;

    let bob = token_with("bob", &["team"], Role::User, HOUR);
    let (status, body) = api_messages(&node, "dm:alice:bob", "", Some(&bob));
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(&body), ["messages", "more"]);
    assert_eq!(ids(&body["messages"]), ["h1", "h2", "h3"]);
    assert_eq!(body["more"], false);
    assert_eq!(
        body["messages"][0]["payload"],
        serde_json::from_str::<Value>(&chat("h1", "h1")).unwrap()
    );
    let (status, body) = api_messages(&node, "dm:alice:bob", "?before_seq=3&limit=1", Some(&bob));
    assert_eq!(
        (status, ids(&body["messages"]), &body["more"]),
        (200, vec!["h2".to_owned()], &json!(true))
    );
    let (status, body) = api_messages(&node, "dm:alice:bob", "?after_seq=1", Some(&token("alice")));
    assert_eq!(
        (status, ids(&body["messages"])),
        (200, vec!["h2".to_owned(), "h3".to_owned()])
    );
    let (status, body) = api_messages(&node, "grp:team", "", Some(&bob));
    assert_eq!(
        (status, ids(&body["messages"])),
        (200, vec!["g1".to_owned()])
    );

    let assert_error = |status: u16, body: &Value, want: u16, code: &str, what: &str| {
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    };
    // 401: no token, not a token, another secret's token, an expired token, not Bearer.
    let (status, body) = api_messages(&node, "dm:alice:bob", "", None);
    assert_error(status, &body, 401, "unauthorized", "no Authorization");
    let foreign = mint_hs256(
        "another-secret-another-secret-0123456789",
        &Claims::new("bob", Vec::new(), Role::User, HOUR),
    )
    .unwrap();
    for (what, t) in [
        ("garbage", "garbage".to_owned()),
        ("signed with another secret", foreign),
        ("expired", expired_token("bob")),
    ] {
        let (status, body) = api_messages(&node, "dm:alice:bob", "", Some(&t));
        assert_error(status, &body, 401, "unauthorized", what);
    }
    let answer = common::http::http_get(
        node.http,
        "/api/v1/conversations/dm:alice:bob/messages",
        Some(&format!("Basic {}", token("bob"))),
        common::history::HTTP_WAIT,
    );
    let (status, body) = (answer.status, answer.json());
    assert_error(
        status,
        &body,
        401,
        "unauthorized",
        "Basic instead of Bearer",
    );

    // 403: valid token, not a participant / not a member.
    let carol = token("carol");
    let (status, body) = api_messages(&node, "dm:alice:bob", "", Some(&carol));
    assert_error(
        status,
        &body,
        403,
        "forbidden",
        "carol reads alice and bob's DM",
    );
    let (status, body) = api_messages(&node, "grp:team", "", Some(&carol));
    assert_error(status, &body, 403, "forbidden", "carol reads team");
    // Group rights come from the token: bob without team in his token is refused.
    let (status, body) = api_messages(&node, "grp:team", "", Some(&token("bob")));
    assert_error(status, &body, 403, "forbidden", "bob's token without team");

    // 400: not conversation ids.
    for conv in [
        "dm:bob:alice",
        "dm:alice:alice",
        "bob",
        "grp:",
        "dm:alice",
        "grp:a%2Fb",
    ] {
        let (status, body) = api_messages(&node, conv, "", Some(&bob));
        assert_error(status, &body, 400, "invalid_request", conv);
    }
}

// ---- a DM to oneself ----------------------------------------------------------------------

/// `im/dm/{me}/{me}` passes the ACL, but has no conversation (`dm:{a}:{b}` needs a < b), so
/// it cannot be stored. The sender must hear so (an `error` about that id), or a client that
/// resends until acked would resend it forever; and nothing is stored.
#[tokio::test]
async fn a_dm_to_oneself_is_answered_with_an_error() {
    let node = HistNode::start(Backend::Sqlite);
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    alice.dm("alice", "self-1", "note to self").await;
    let notice = alice
        .notice("error about self-1", |n| {
            n["type"] == "error" || (n["type"] == "ack" && n["id"] == "self-1")
        })
        .await;
    assert_eq!(notice["type"], "error", "{notice}");
    assert_eq!(notice["id"], "self-1", "{notice}");
    assert!(notice["code"].is_string() && notice["message"].is_string());
    // Nothing stored: the next message is the first one.
    alice.dm("bob", "m1", "x").await;
    assert_ack(&alice.ack("m1").await, "m1", "dm:alice:bob", 1);
    assert_eq!(node.sql("SELECT count(*) FROM history_messages"), "1");
}

// ---- roost-cli history --------------------------------------------------------------------

fn roost_cli(node: &Node, token: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("60").arg(env!("CARGO_BIN_EXE_roost-cli"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ROOST_") {
            cmd.env_remove(key);
        }
    }
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        &node.mqtt.port().to_string(),
    ])
    .args(["--token", token])
    .args(args)
    .stdin(Stdio::null())
    .output()
    .expect("run roost-cli")
}

/// `roost-cli history --with bob` prints the conversation, `roost-cli history` the list of
/// conversations, and a conversation the user is not in is an error.
#[tokio::test]
async fn roost_cli_history_prints_the_conversation() {
    let node = HistNode::start(Backend::Sqlite);
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    let mut bob = Peer::connect(&node, "bob", &[]).await;
    alice.dm("bob", "m1", "hello bob").await;
    alice.ack("m1").await;
    bob.dm("alice", "m2", "hi alice").await;
    bob.ack("m2").await;

    let alice_token = token("alice");
    let out = roost_cli(&node, &alice_token, &["history", "--with", "bob"]);
    assert!(out.status.success(), "{}", describe(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines,
        ["#1 alice: hello bob", "#2 bob: hi alice"],
        "{}",
        describe(&out)
    );

    let out = roost_cli(
        &node,
        &alice_token,
        &["history", "--with", "bob", "--before", "2"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "#1 alice: hello bob"
    );

    let out = roost_cli(&node, &alice_token, &["history"]);
    assert!(out.status.success(), "{}", describe(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("dm:alice:bob") && shown.contains("last #2"),
        "{}",
        describe(&out)
    );

    let out = roost_cli(
        &node,
        &token("carol"),
        &["history", "--conv", "dm:alice:bob"],
    );
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forbidden"),
        "{}",
        describe(&out)
    );
}

// ---- roost history-worker -----------------------------------------------------------------

/// A node with `[history] service = false` stores nothing itself; a `roost history-worker`
/// connected to it stores, acks and answers requests, and the node's HTTP API serves what
/// the worker stored. (A worker that dies and returns: tests/history_faults.rs.)
#[tokio::test]
async fn history_worker_stores_acks_and_answers() {
    let node = HistNode::start_with(Backend::Postgres, "service = false", "");
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    bob.subscribe("im/dm/bob/+").await;

    let _worker = Worker::start(&node, "w1");
    let probe = send_until_acked(&mut alice, "bob", "probe").await;
    assert_eq!(probe["seq"], 1, "{probe}");

    let sent: Vec<String> = (1..=10).map(|n| format!("w{n}")).collect();
    for id in &sent {
        alice.dm("bob", id, id).await;
    }
    for (n, ack) in alice.acks(&sent).await.iter().enumerate() {
        assert_ack(ack, &sent[n], "dm:alice:bob", n as i64 + 2);
    }
    let page = bob.history("dm:alice:bob", json!({})).await;
    assert_eq!(seqs(&page["messages"]), (1..=11).collect::<Vec<_>>());
    let (status, body) = api_messages(&node, "dm:alice:bob", "", Some(&token("bob")));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, page);
    assert_eq!(node.sql("SELECT count(*) FROM history_messages"), "11");

    // The identity the node stamps reaches the worker over MQTT 5, and only that: group
    // rights from the token, none from a client's own properties.
    alice.grp("team", "g1", "team").await;
    assert_ack(&alice.ack("g1").await, "g1", "grp:team", 1);
    assert_eq!(
        ids(&bob.history("grp:team", json!({})).await["messages"]),
        ["g1"]
    );
    let mut mallory = Peer::connect(&node, "mallory", &[]).await;
    let answer = mallory
        .request_with(
            "history",
            json!({"conv": "grp:team"}),
            vec![
                ("roost-groups".to_owned(), "team".to_owned()),
                ("roost-user".to_owned(), "mallory".to_owned()),
            ],
        )
        .await;
    assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
}

/// Two workers on one node split the stored topics: both store some, nothing is stored
/// twice, every conversation's seqs are still gapless, and every message is acked.
#[tokio::test]
async fn two_history_workers_share_the_load() {
    let node = HistNode::start_with(Backend::Postgres, "service = false", "");
    let mut alice = Peer::connect(&node, "alice", &["team"]).await;
    let mut bob = Peer::connect(&node, "bob", &["team"]).await;
    let mut carol = Peer::connect(&node, "carol", &["team"]).await;

    let w1 = Worker::start(&node, "w1");
    send_until_acked(&mut alice, "bob", "probe-1").await;
    let w2 = Worker::start(&node, "w2");
    // Until the second worker has stored something, it may not be subscribed yet: keep
    // probing, one acked message at a time (the first worker stores what w2 does not).
    let mut probes = 1;
    while w2.stored() == 0 {
        assert!(
            probes < 60,
            "the second worker stored nothing after {probes} probes; its log:\n{}",
            w2.log_text()
        );
        probes += 1;
        send_until_acked(&mut alice, "bob", &format!("probe-{probes}")).await;
    }
    let before = (w1.stored(), w2.stored());

    // The load: three senders, two DMs and a group, all in flight at once.
    let per_sender = 60;
    let mut expected: Vec<(&str, Vec<String>)> = Vec::new();
    for (peer, tag) in [(&alice, "a"), (&bob, "b"), (&carol, "c")] {
        let ids: Vec<String> = (0..per_sender).map(|n| format!("{tag}{n}")).collect();
        for (n, id) in ids.iter().enumerate() {
            match (tag, n % 2) {
                ("a", 0) => peer.dm("bob", id, "x").await,
                ("b", 0) => peer.dm("alice", id, "x").await,
                ("c", 0) => peer.dm("alice", id, "x").await,
                _ => peer.grp("team", id, "x").await,
            }
        }
        expected.push((tag, ids));
    }
    for ((_, ids), peer) in expected.iter().zip([&mut alice, &mut bob, &mut carol]) {
        peer.acks(ids).await;
    }
    let total = probes + 3 * per_sender;

    // In the database: each message once, every seq once, 1..n per conversation.
    assert_eq!(
        node.sql("SELECT count(*), count(DISTINCT sender || '/' || msg_id) FROM history_messages"),
        format!("{total}|{total}")
    );
    let per_conv = node.sql(
        "SELECT conv, count(*), count(DISTINCT seq), min(seq), max(seq) FROM history_messages \
         GROUP BY conv ORDER BY conv",
    );
    let dm_ab = probes + per_sender / 2 + per_sender / 2;
    assert_eq!(
        per_conv.lines().collect::<Vec<_>>(),
        [
            format!("dm:alice:bob|{dm_ab}|{dm_ab}|1|{dm_ab}"),
            "dm:alice:carol|30|30|1|30".to_owned(),
            "grp:team|90|90|1|90".to_owned(),
        ]
    );
    // Both workers stored part of the load, and together exactly all of it.
    let deadline = std::time::Instant::now() + WAIT;
    while (w1.stored() + w2.stored()) < total as u64 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s1, s2) = (w1.stored(), w2.stored());
    assert_eq!(s1 + s2, total as u64, "w1 stored {s1}, w2 {s2}");
    assert!(
        s1 > before.0 && s2 > before.1,
        "both workers take part in the load: w1 {} -> {s1}, w2 {} -> {s2}",
        before.0,
        before.1
    );
}

// ---- retention ----------------------------------------------------------------------------

/// `max_messages` keeps the newest messages of each conversation and `max_age` drops old
/// ones, applied when the history service starts; seqs are never reused.
#[tokio::test]
async fn retention_keeps_the_newest_messages_and_never_reuses_seqs() {
    let db = PgDb::create();
    let start = |history: &str| {
        Node::builder()
            .toml(&format!(
                "[history]\ndatabase_url = \"{}\"\n{history}\n",
                db.url
            ))
            .start()
    };

    let node = start("");
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    let sent: Vec<String> = (1..=5).map(|n| format!("m{n}")).collect();
    for id in &sent {
        alice.dm("bob", id, id).await;
    }
    alice.acks(&sent).await;
    drop(alice);
    drop(node);

    // At most 3 per conversation.
    let node = start("max_messages = 3");
    node.wait_for_log(&["retention removed old messages"]).await;
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    let page = alice.history("dm:alice:bob", json!({})).await;
    assert_eq!(seqs(&page["messages"]), [3, 4, 5]);
    assert_eq!(page["more"], false);
    alice.dm("bob", "m6", "m6").await;
    assert_ack(&alice.ack("m6").await, "m6", "dm:alice:bob", 6);
    drop(alice);
    drop(node);

    // Nothing older than a millisecond: everything stored so far goes.
    let node = start("max_age = \"1ms\"");
    node.wait_for_log(&["retention removed old messages"]).await;
    let mut alice = Peer::connect(&node, "alice", &[]).await;
    let page = alice.history("dm:alice:bob", json!({})).await;
    assert_eq!(page["messages"], json!([]), "{page}");
    alice.dm("bob", "m7", "m7").await;
    assert_ack(&alice.ack("m7").await, "m7", "dm:alice:bob", 7);
    let list = alice.call("conversations", json!({})).await;
    assert_eq!(summary(&list, "dm:alice:bob")["last_seq"], 7);
}
