//! Who may publish and subscribe where (docs/protocol.md section 3), with real clients: every row
//! of the topic table allowed for the right user and denied for the wrong one, the denial
//! signals of each MQTT version, the `service` role, and `[[acl.rules]]` outside `im/`.
//!
//! A denied publish is proven undelivered, not assumed: a `service` watcher subscribed to
//! `im/#` sees everything under `im/`, and it must receive an allowed marker sent after the
//! denied publishes without having seen any of them.
mod common;

use common::client::{options, options5, Client, Mqtt3, Mqtt5};
use common::{token_with, Node};
use roost_auth::Role;
use rumqttc::v5::mqttbytes::v5::{Packet as Packet5, PubAckReason, SubscribeReasonCode};
use rumqttc::Packet;
use serde_json::Value;
use std::time::Duration;

// ---- helpers ------------------------------------------------------------------------------

const HOUR: Duration = Duration::from_secs(3600);

/// A v3.1.1 client for `user` (client id = user) in `groups`.
async fn v3(node: &Node, user: &str, groups: &[&str]) -> Client<Mqtt3> {
    let token = token_with(user, groups, Role::User, HOUR);
    Client::connect(options(node, user, user, &token))
        .await
        .expect("sign-in refused")
}

/// An MQTT 5 client for `user` (client id = user) in `groups`.
async fn v5(node: &Node, user: &str, groups: &[&str]) -> Client<Mqtt5> {
    let token = token_with(user, groups, Role::User, HOUR);
    Client::<Mqtt5>::connect(options5(node, user, user, &token))
        .await
        .expect("sign-in refused")
}

/// A v3.1.1 `role = service` client.
async fn service(node: &Node, name: &str) -> Client<Mqtt3> {
    let token = token_with(name, &[], Role::Service, HOUR);
    Client::connect(options(node, name, name, &token))
        .await
        .expect("sign-in refused")
}

/// A service client that sees every message under `im/`.
async fn watcher(node: &Node) -> Client<Mqtt3> {
    let mut w = service(node, "watcher").await;
    assert_eq!(w.subscribe("im/#").await, 1, "a service subscribes im/#");
    w
}

/// A chat payload whose id names it.
fn msg(id: &str) -> String {
    format!(r#"{{"id":"{id}","kind":"text","body":"x"}}"#)
}

/// The `id` of a delivered chat payload: recipients get the stamped copy (docs/protocol.md
/// section 4), and a service subscribed to `im/#` also sees the raw one on `im/ingress/...`.
fn id_of(payload: impl AsRef<[u8]>) -> String {
    let v: Value = serde_json::from_slice(payload.as_ref()).unwrap_or_default();
    v["id"].as_str().unwrap_or_default().to_owned()
}

/// (topic, chat id) of a v3.1.1 delivery.
fn chat_of((topic, payload): (String, String)) -> (String, String) {
    (topic, id_of(payload))
}

/// SUBACK codes on the wire: granted QoS, 0x80 (v3.1.1 failure), 0x87 (v5 not authorized).
fn code5(reason: SubscribeReasonCode) -> u8 {
    match reason {
        SubscribeReasonCode::Success(q) => q as u8,
        SubscribeReasonCode::Failure | SubscribeReasonCode::Unspecified => 0x80,
        SubscribeReasonCode::NotAuthorized => 0x87,
        SubscribeReasonCode::TopicFilterInvalid => 0x8F,
        SubscribeReasonCode::QuotaExceeded => 0x97,
        other => panic!("unexpected SUBACK reason {other:?}"),
    }
}

/// The SUBACK codes of one SUBSCRIBE with `filters`, from a v3.1.1 client.
async fn suback3(c: &mut Client<Mqtt3>, filters: &[&str]) -> Vec<u8> {
    let filters: Vec<rumqttc::SubscribeFilter> = filters
        .iter()
        .map(|f| rumqttc::SubscribeFilter::new(f.to_string(), rumqttc::QoS::AtLeastOnce))
        .collect();
    c.client.subscribe_many(filters).await.unwrap();
    match c.next_where(|p| matches!(p, Packet::SubAck(_))).await {
        Packet::SubAck(ack) => ack
            .return_codes
            .iter()
            .map(|r| match r {
                rumqttc::SubscribeReasonCode::Success(q) => *q as u8,
                rumqttc::SubscribeReasonCode::Failure => 0x80,
            })
            .collect(),
        _ => unreachable!(),
    }
}

/// The SUBACK codes of one SUBSCRIBE with `filters`, from an MQTT 5 client.
async fn suback5(c: &mut Client<Mqtt5>, filters: &[&str]) -> Vec<u8> {
    c.subscribe_many(filters)
        .await
        .into_iter()
        .map(code5)
        .collect()
}

/// Asserts each filter subscribes with `expected` (one SUBSCRIBE per filter).
async fn subs3(c: &mut Client<Mqtt3>, expected: u8, filters: &[&str]) {
    for filter in filters {
        assert_eq!(
            suback3(c, &[filter]).await,
            [expected],
            "subscribe {filter:?}"
        );
    }
}

async fn subs5(c: &mut Client<Mqtt5>, expected: u8, filters: &[&str]) {
    for filter in filters {
        assert_eq!(
            suback5(c, &[filter]).await,
            [expected],
            "subscribe {filter:?}"
        );
    }
}

/// Whether `payload` on `topic` is an `error` notice, about message `id` if one is given.
fn is_error(topic: &[u8], payload: &[u8], id: Option<&str>) -> Option<Value> {
    if !topic.starts_with(b"im/sys/") {
        return None;
    }
    let notice: Value = serde_json::from_slice(payload).ok()?;
    let about = id.is_none_or(|id| notice["id"] == id);
    (notice["type"] == "error" && about).then_some(notice)
}

/// The next `error` notice a v3.1.1 client subscribed to its `im/sys/{me}` receives; with
/// `id`, the next one about that chat message (notices about other things are skipped).
async fn next_error3(c: &mut Client<Mqtt3>, id: Option<&str>) -> Value {
    loop {
        let (topic, payload) = c.next_publish().await;
        if let Some(notice) = is_error(topic.as_bytes(), payload.as_bytes(), id) {
            return notice;
        }
    }
}

async fn next_error5(c: &mut Client<Mqtt5>, id: Option<&str>) -> Value {
    loop {
        let p = c.next_publish().await;
        if let Some(notice) = is_error(&p.topic, &p.payload, id) {
            return notice;
        }
    }
}

/// Receives publishes until the chat message `marker` (its id); panics if any of `denied`
/// (their ids) comes first.
async fn marker_before_any(watcher: &mut Client<Mqtt3>, denied: &[String], marker: &str) {
    let denied: Vec<String> = denied.iter().map(id_of).collect();
    loop {
        let (topic, payload) = watcher.next_publish().await;
        if topic.starts_with("im/sys/") {
            // Notices (the `forbidden` ones name the denied message's id).
            continue;
        }
        assert!(
            !denied.contains(&id_of(&payload)),
            "a denied publish was delivered on {topic}: {payload}"
        );
        if id_of(&payload) == id_of(marker) {
            return;
        }
    }
}

/// v3.1.1: publishes each `denied` topic from `from` (each answered by a normal PUBACK, as
/// v3.1.1 cannot say no), expects a `forbidden` notice for each on `im/sys/{me}` (`from` must
/// be subscribed there), then proves with `marker_topic` that none was delivered.
async fn denied_publishes3(
    from: &mut Client<Mqtt3>,
    watcher: &mut Client<Mqtt3>,
    denied: &[&str],
    marker_topic: &str,
) {
    let mut payloads = Vec::new();
    for (n, topic) in denied.iter().enumerate() {
        let id = format!("denied-{n}");
        from.publish(topic, &msg(&id)).await;
        match from.next_where(|p| matches!(p, Packet::PubAck(_))).await {
            Packet::PubAck(_) => {}
            _ => unreachable!(),
        }
        let notice = next_error3(from, Some(&id)).await;
        assert_eq!(notice["code"], "forbidden", "publish to {topic}: {notice}");
        assert_eq!(notice["id"], id.as_str(), "publish to {topic}: {notice}");
        payloads.push(msg(&id));
    }
    let marker = msg("marker");
    from.publish(marker_topic, &marker).await;
    marker_before_any(watcher, &payloads, &marker).await;
}

/// MQTT 5: each `denied` publish gets PUBACK 0x87 and a `forbidden` notice; then the marker
/// proves none was delivered.
async fn denied_publishes5(
    from: &mut Client<Mqtt5>,
    watcher: &mut Client<Mqtt3>,
    denied: &[&str],
    marker_topic: &str,
) {
    let mut payloads = Vec::new();
    for (n, topic) in denied.iter().enumerate() {
        let id = format!("denied5-{n}");
        from.publish(topic, &msg(&id)).await;
        match from.next_where(|p| matches!(p, Packet5::PubAck(_))).await {
            Packet5::PubAck(ack) => {
                assert_eq!(
                    ack.reason,
                    PubAckReason::NotAuthorized,
                    "publish to {topic}"
                )
            }
            _ => unreachable!(),
        }
        let notice = next_error5(from, Some(&id)).await;
        assert_eq!(notice["code"], "forbidden", "publish to {topic}: {notice}");
        assert_eq!(notice["id"], id.as_str(), "publish to {topic}: {notice}");
        payloads.push(msg(&id));
    }
    let marker = msg("marker5");
    from.publish(marker_topic, &marker).await;
    match from.next_where(|p| matches!(p, Packet5::PubAck(_))).await {
        Packet5::PubAck(ack) => assert_eq!(ack.reason, PubAckReason::Success),
        _ => unreachable!(),
    }
    marker_before_any(watcher, &payloads, &marker).await;
}

// ---- direct messages ----------------------------------------------------------------------

/// §3 `im/dm/{to}/{from}`: a user publishes only with `from` = self, to anyone. Spoofed,
/// reversed and malformed DM topics are dropped silently in v3.1.1 (normal PUBACK) with a
/// `forbidden` notice; the recipient gets the real one.
#[tokio::test]
async fn dm_publish_only_as_own_from_v311() {
    let node = Node::start();
    let mut watcher = watcher(&node).await;
    let mut bob = v3(&node, "bob", &[]).await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let mut alice = v3(&node, "alice", &[]).await;
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);

    denied_publishes3(
        &mut alice,
        &mut watcher,
        &[
            "im/dm/bob/carol",
            "im/dm/bob/bob",
            "im/dm/alice/bob",
            "im/dm/bob",
            "im/dm/bob/alice/x",
        ],
        "im/dm/bob/alice",
    )
    .await;
    assert_eq!(
        chat_of(bob.next_publish().await),
        ("im/dm/bob/alice".into(), "marker".into())
    );
}

/// §3, MQTT 5: a spoofed DM gets PUBACK 0x87 and a `forbidden` notice; an allowed one
/// PUBACK success and is delivered.
#[tokio::test]
async fn dm_publish_as_someone_else_gets_puback_0x87_v5() {
    let node = Node::start();
    let mut watcher = watcher(&node).await;
    let mut bob = v3(&node, "bob", &[]).await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);
    let mut alice = v5(&node, "alice", &[]).await;
    assert_eq!(code5(alice.subscribe("im/sys/alice").await), 1);

    denied_publishes5(
        &mut alice,
        &mut watcher,
        &["im/dm/bob/carol", "im/dm/alice/bob"],
        "im/dm/bob/alice",
    )
    .await;
    assert_eq!(id_of(bob.next_publish().await.1), "marker5");
}

/// §3 `im/dm`: a user subscribes to DMs to them (`im/dm/{me}/+`) and to those they sent
/// (`im/dm/+/{me}`, their other devices); nobody else's. Denied filters get SUBACK 0x80 and a
/// `forbidden` notice.
#[tokio::test]
async fn dm_subscribe_own_conversations_only_v311() {
    let node = Node::start();
    let mut bob = v3(&node, "bob", &[]).await;
    assert_eq!(bob.subscribe("im/sys/bob").await, 1);
    subs3(
        &mut bob,
        1,
        &[
            "im/dm/bob/+",
            "im/dm/+/bob",
            "im/dm/bob/alice",
            "im/dm/alice/bob",
        ],
    )
    .await;
    for filter in [
        "im/dm/carol/+",
        "im/dm/+/carol",
        "im/dm/+/+",
        "im/dm/#",
        "im/dm/carol/alice",
    ] {
        assert_eq!(
            suback3(&mut bob, &[filter]).await,
            [0x80],
            "subscribe {filter:?}"
        );
        let notice = next_error3(&mut bob, None).await;
        assert_eq!(notice["code"], "forbidden", "subscribe {filter}: {notice}");
    }

    // `im/dm/+/{me}` is how a user's other devices see what they sent.
    let bob_token = token_with("bob", &[], Role::User, HOUR);
    let mut laptop = Client::connect(options(&node, "bob:laptop", "bob", &bob_token))
        .await
        .unwrap();
    assert_eq!(laptop.subscribe("im/dm/+/bob").await, 1);
    bob.publish("im/dm/carol/bob", &msg("sent")).await;
    assert_eq!(
        chat_of(laptop.next_publish().await),
        ("im/dm/carol/bob".into(), "sent".into())
    );
}

/// §3, MQTT 5: the same denials get SUBACK 0x87.
#[tokio::test]
async fn dm_subscribe_denied_is_0x87_v5() {
    let node = Node::start();
    let mut bob = v5(&node, "bob", &[]).await;
    assert_eq!(code5(bob.subscribe("im/sys/bob").await), 1);
    subs5(&mut bob, 1, &["im/dm/bob/+", "im/dm/+/bob"]).await;
    for filter in ["im/dm/carol/+", "im/dm/+/carol", "im/dm/+/+", "im/dm/#"] {
        assert_eq!(
            suback5(&mut bob, &[filter]).await,
            [0x87],
            "subscribe {filter:?}"
        );
        let notice = next_error5(&mut bob, None).await;
        assert_eq!(notice["code"], "forbidden", "subscribe {filter}: {notice}");
    }
}

// ---- groups and signals -------------------------------------------------------------------

/// §3 `im/grp/{group}/{from}`: members (token `groups`) publish as themselves and subscribe;
/// a non-member does neither, and a member cannot post as another member.
#[tokio::test]
async fn group_topics_for_members_only() {
    let node = Node::start();
    let mut watcher = watcher(&node).await;
    let mut bob = v3(&node, "bob", &["team"]).await;
    assert_eq!(bob.subscribe("im/grp/team/+").await, 1);
    let mut carol = v3(&node, "carol", &["other"]).await;
    assert_eq!(carol.subscribe("im/sys/carol").await, 1);
    assert_eq!(suback3(&mut carol, &["im/grp/team/+"]).await, [0x80]);
    assert_eq!(suback3(&mut carol, &["im/grp/+/+"]).await, [0x80]);
    let mut alice = v3(&node, "alice", &["team"]).await;
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);

    // A member posts as themselves.
    alice.publish("im/grp/team/alice", &msg("hello-team")).await;
    assert_eq!(
        chat_of(bob.next_publish().await),
        ("im/grp/team/alice".into(), "hello-team".into())
    );

    // Not as another member, nor to a group they are not in.
    denied_publishes3(
        &mut alice,
        &mut watcher,
        &["im/grp/team/bob", "im/grp/other/alice"],
        "im/grp/team/alice",
    )
    .await;
    // A non-member does not post at all.
    denied_publishes3(
        &mut carol,
        &mut watcher,
        &["im/grp/team/carol"],
        "im/grp/other/carol",
    )
    .await;
    assert_eq!(id_of(bob.next_publish().await.1), "marker");
}

/// §3 `im/sig/dm/...` and `im/sig/grp/...`: the same shapes as DMs and groups.
#[tokio::test]
async fn signal_topics_follow_the_same_rules() {
    let node = Node::start();
    let mut watcher = watcher(&node).await;
    let mut bob = v3(&node, "bob", &["team"]).await;
    subs3(
        &mut bob,
        1,
        &[
            "im/sig/dm/bob/+",
            "im/sig/dm/+/bob",
            "im/sig/grp/team/+",
            "im/dm/bob/+",
        ],
    )
    .await;
    subs3(
        &mut bob,
        0x80,
        &[
            "im/sig/dm/carol/+",
            "im/sig/dm/+/+",
            "im/sig/grp/other/+",
            "im/sig/#",
        ],
    )
    .await;

    let mut alice = v3(&node, "alice", &["team"]).await;
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);
    // A signal payload (tests/signals.rs checks them).
    let typing = r#"{"type":"typing","state":"start"}"#;
    alice.publish("im/sig/dm/bob/alice", typing).await;
    assert_eq!(
        bob.next_publish().await,
        ("im/sig/dm/bob/alice".into(), typing.into())
    );
    alice.publish("im/sig/grp/team/alice", typing).await;
    assert_eq!(
        bob.next_publish().await,
        ("im/sig/grp/team/alice".into(), typing.into())
    );

    denied_publishes3(
        &mut alice,
        &mut watcher,
        &[
            "im/sig/dm/bob/carol",
            "im/sig/grp/team/bob",
            "im/sig/grp/other/alice",
        ],
        // The marker is a chat message: a DM (a signal carries none).
        "im/dm/bob/alice",
    )
    .await;
    assert_eq!(id_of(bob.next_publish().await.1), "marker");
}

// ---- presence, requests, system -----------------------------------------------------------

/// §3 `im/presence/{user}`: any signed-in user subscribes to anyone's presence; a user
/// publishes their own status only.
#[tokio::test]
async fn presence_readable_by_all_writable_by_owner() {
    let node = Node::start();
    let mut watcher = watcher(&node).await;
    let mut carol = v3(&node, "carol", &[]).await;
    subs3(&mut carol, 1, &["im/presence/alice", "im/presence/+"]).await;
    let mut alice = v3(&node, "alice", &[]).await;
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);

    let status = r#"{"status":"away"}"#;
    alice.publish("im/presence/alice", status).await;
    loop {
        let (topic, payload) = carol.next_publish().await;
        if payload == status {
            assert_eq!(topic, "im/presence/alice");
            break;
        }
    }
    // The marker is a chat message, so it goes where chat messages go (a status is checked
    // as a status).
    denied_publishes3(
        &mut alice,
        &mut watcher,
        &["im/presence/bob"],
        "im/dm/bob/alice",
    )
    .await;
}

/// §3 `im/req/{me}`: a user publishes requests to their own request topic only; nobody but
/// the server side (`role = service`) subscribes there, not even the user.
#[tokio::test]
async fn request_topic_publish_own_subscribe_service_only() {
    let node = Node::start();
    let mut server = service(&node, "server").await;
    assert_eq!(server.subscribe("im/req/+").await, 1);
    let mut watcher = watcher(&node).await;

    let mut alice = v5(&node, "alice", &[]).await;
    assert_eq!(code5(alice.subscribe("im/sys/alice").await), 1);
    subs5(
        &mut alice,
        0x87,
        &["im/req/alice", "im/req/+", "im/req/bob"],
    )
    .await;
    let request = r#"{"req":"r1","method":"conversations","params":{}}"#;
    alice.publish("im/req/alice", request).await;
    match alice.next_where(|p| matches!(p, Packet5::PubAck(_))).await {
        Packet5::PubAck(ack) => assert_eq!(ack.reason, PubAckReason::Success),
        _ => unreachable!(),
    }
    assert_eq!(
        server.next_publish().await,
        ("im/req/alice".into(), request.into())
    );
    denied_publishes5(&mut alice, &mut watcher, &["im/req/bob"], "im/req/alice").await;

    let mut bob = v3(&node, "bob", &[]).await;
    subs3(&mut bob, 0x80, &["im/req/bob", "im/req/alice"]).await;
}

/// §3 `im/sys/{me}`: a user subscribes to their own system topic only, and nobody but the
/// server publishes there, not even to their own (v3.1.1: dropped; v5: PUBACK 0x87).
#[tokio::test]
async fn system_topic_subscribe_own_publish_never() {
    let node = Node::start();
    let mut watcher = watcher(&node).await;
    let mut alice = v3(&node, "alice", &[]).await;
    subs3(&mut alice, 1, &["im/sys/alice"]).await;
    subs3(&mut alice, 0x80, &["im/sys/bob", "im/sys/+", "im/sys/#"]).await;
    denied_publishes3(
        &mut alice,
        &mut watcher,
        &["im/sys/alice", "im/sys/bob"],
        "im/dm/bob/alice",
    )
    .await;

    let mut bob = v5(&node, "bob", &[]).await;
    subs5(&mut bob, 1, &["im/sys/bob"]).await;
    subs5(&mut bob, 0x87, &["im/sys/alice", "im/sys/+"]).await;
    denied_publishes5(
        &mut bob,
        &mut watcher,
        &["im/sys/bob", "im/sys/alice"],
        "im/dm/alice/bob",
    )
    .await;
}

// ---- SUBACK shapes and wildcards ----------------------------------------------------------

const MIXED: [&str; 6] = [
    "im/dm/bob/+",   // allowed
    "im/dm/carol/+", // someone else's
    "im/presence/+", // allowed
    "#",             // everything
    "im/sys/bob",    // allowed
    "im/sys/alice",  // someone else's
];

/// §3: one SUBSCRIBE with allowed and denied filters gets one code per filter, in order
/// (v3.1.1: granted QoS or 0x80), and the allowed ones work.
#[tokio::test]
async fn mixed_subscribe_gets_per_filter_codes_in_order_v311() {
    let node = Node::start();
    let mut bob = v3(&node, "bob", &[]).await;
    assert_eq!(suback3(&mut bob, &MIXED).await, [1, 0x80, 1, 0x80, 1, 0x80]);
    let alice = v3(&node, "alice", &[]).await;
    alice.publish("im/dm/bob/alice", &msg("m1")).await;
    loop {
        let (topic, payload) = bob.next_publish().await;
        if topic == "im/dm/bob/alice" {
            assert_eq!(id_of(payload), "m1");
            break;
        }
    }
}

/// §3, MQTT 5: the same with 0x87 for the denied filters.
#[tokio::test]
async fn mixed_subscribe_gets_per_filter_codes_in_order_v5() {
    let node = Node::start();
    let mut bob = v5(&node, "bob", &[]).await;
    assert_eq!(suback5(&mut bob, &MIXED).await, [1, 0x87, 1, 0x87, 1, 0x87]);
    let alice = v3(&node, "alice", &[]).await;
    alice.publish("im/dm/bob/alice", &msg("m1")).await;
    loop {
        let p = bob.next_publish().await;
        if p.topic == "im/dm/bob/alice" {
            assert_eq!(id_of(&p.payload), "m1");
            break;
        }
    }
}

/// §3: users never get wildcards over `im/` nor shared subscriptions there: `im/#`, `#`,
/// `+/...`, `im/+/...` and `$share/...` are refused (0x80 / 0x87).
#[tokio::test]
async fn wide_wildcards_and_shares_denied_for_users() {
    let node = Node::start();
    let filters = [
        "im/#",
        "#",
        "+/dm/bob/+",
        "im/+/bob/+",
        "im/+",
        "$share/g/im/dm/bob/+",
        "$share/g/#",
        "$SYS/#",
    ];
    let mut bob = v3(&node, "bob", &[]).await;
    subs3(&mut bob, 0x80, &filters).await;
    let mut bob5 = v5(&node, "carol", &[]).await;
    subs5(&mut bob5, 0x87, &filters).await;
}

// ---- the service role ---------------------------------------------------------------------

/// §3 `role = service`: publishes as any `from`, subscribes anywhere under `im/` including
/// `im/#` and shared subscriptions (`$share/{group}/im/dm/+/+`).
#[tokio::test]
async fn service_publishes_as_anyone_and_subscribes_everywhere() {
    let node = Node::start();
    let mut all = service(&node, "archiver").await;
    assert_eq!(all.subscribe("im/#").await, 1);
    let mut worker = service(&node, "worker").await;
    assert_eq!(worker.subscribe("$share/history/im/dm/+/+").await, 1);
    let mut bob = v3(&node, "bob", &[]).await;
    assert_eq!(bob.subscribe("im/dm/bob/+").await, 1);

    let bot = service(&node, "bot").await;
    bot.publish("im/dm/bob/alice", &msg("as-alice")).await;
    assert_eq!(
        chat_of(bob.next_publish().await),
        ("im/dm/bob/alice".into(), "as-alice".into())
    );
    assert_eq!(
        chat_of(worker.next_publish().await),
        ("im/dm/bob/alice".into(), "as-alice".into())
    );
    // `im/#` sees it on the ingress (raw), then on the DM topic (stamped).
    let mut topics = Vec::new();
    while topics.len() < 2 {
        let (topic, payload) = all.next_publish().await;
        if id_of(&payload) == "as-alice" {
            topics.push(topic);
        }
    }
    assert_eq!(topics, ["im/ingress/dm/bob/alice", "im/dm/bob/alice"]);
    bot.publish("im/grp/anygroup/carol", &msg("grp")).await;
    loop {
        let (_, payload) = all.next_publish().await;
        if id_of(&payload) == "grp" {
            break;
        }
    }
}

// ---- config rules outside im/ -------------------------------------------------------------

const RULES: &str = r#"
[[acl.rules]]
permission = "deny"
action = "publish"
topic = "devices/{user}/firmware"

[[acl.rules]]
permission = "allow"
action = "all"
topic = "devices/{user}/#"

[[acl.rules]]
permission = "allow"
action = "publish"
topic = "clients/{client}/out"

[[acl.rules]]
permission = "allow"
action = "subscribe"
topic = "clients/+/out"

[[acl.rules]]
permission = "allow"
action = "all"
topic = "teams/{group}/#"
"#;

/// docs/operating.md `[[acl.rules]]` with `{user}`: `devices/{user}/#` lets a user publish and
/// subscribe under their own device tree only; the first matching rule decides (a deny
/// before the allow wins); a topic no rule covers is denied. Denials are signalled as for
/// `im/` (SUBACK 0x80, dropped publish, `forbidden` notice).
#[tokio::test]
async fn config_rules_user_placeholder_first_match_and_default_deny() {
    let node = Node::builder().toml(RULES).start();
    let token = token_with("alice", &[], Role::User, HOUR);
    let mut alice = Client::connect(options(&node, "alice", "alice", &token))
        .await
        .unwrap();
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);
    // Her other device subscribes to her device tree; so does bob to his.
    let mut tablet = Client::connect(options(&node, "alice:tablet", "alice", &token))
        .await
        .unwrap();
    subs3(&mut tablet, 1, &["devices/alice/#"]).await;
    subs3(&mut alice, 1, &["devices/alice/temp"]).await;
    subs3(
        &mut tablet,
        0x80,
        &[
            "devices/bob/#",
            "devices/+/temp",
            "devices/#",
            "other/#",
            "x",
        ],
    )
    .await;
    let mut bob = v3(&node, "bob", &[]).await;
    assert_eq!(bob.subscribe("devices/bob/#").await, 1);

    alice.publish("devices/alice/temp", "21").await;
    assert_eq!(
        tablet.next_publish().await,
        ("devices/alice/temp".into(), "21".into())
    );

    // Into bob's tree; a firmware push into her own (the deny rule comes first, so the
    // allow after it never applies); a topic no rule covers.
    for (topic, id) in [
        ("devices/bob/temp", "d1"),
        ("devices/alice/firmware", "d2"),
        ("other/topic", "d3"),
    ] {
        alice.publish(topic, &msg(id)).await;
        let notice = next_error3(&mut alice, Some(id)).await;
        assert_eq!(notice["code"], "forbidden", "publish to {topic}: {notice}");
    }
    alice.publish("devices/alice/temp", &msg("marker")).await;
    assert_eq!(
        tablet.next_publish().await,
        ("devices/alice/temp".into(), msg("marker"))
    );
    bob.publish("devices/bob/temp", &msg("marker")).await;
    assert_eq!(
        bob.next_publish().await,
        ("devices/bob/temp".into(), msg("marker"))
    );
}

/// docs/operating.md `[[acl.rules]]` with `{client}` (the MQTT client id) and `{group}` (any group
/// in the token).
#[tokio::test]
async fn config_rules_client_and_group_placeholders() {
    let node = Node::builder().toml(RULES).start();
    let mut observer = v3(&node, "observer", &[]).await;
    assert_eq!(observer.subscribe("clients/+/out").await, 1);

    let token = token_with("alice", &["red"], Role::User, HOUR);
    let mut alice = Client::connect(options(&node, "alice:phone", "alice", &token))
        .await
        .unwrap();
    assert_eq!(alice.subscribe("im/sys/alice").await, 1);
    for (topic, id) in [("clients/alice/out", "c1"), ("clients/bob/out", "c2")] {
        alice.publish(topic, &msg(id)).await;
        let notice = next_error3(&mut alice, Some(id)).await;
        assert_eq!(notice["code"], "forbidden", "publish to {topic}: {notice}");
    }
    alice
        .publish("clients/alice:phone/out", &msg("own-client"))
        .await;
    assert_eq!(
        observer.next_publish().await,
        ("clients/alice:phone/out".into(), msg("own-client"))
    );

    subs3(&mut alice, 1, &["teams/red/#"]).await;
    subs3(&mut alice, 0x80, &["teams/blue/#", "teams/+/x", "teams/#"]).await;
    alice.publish("teams/blue/x", &msg("blue")).await;
    assert_eq!(
        next_error3(&mut alice, Some("blue")).await["code"],
        "forbidden"
    );
    alice.publish("teams/red/x", &msg("red")).await;
    assert_eq!(
        alice.next_publish().await,
        ("teams/red/x".into(), msg("red"))
    );
}
