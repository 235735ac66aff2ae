//! The session rules without sockets: packets in, actions out.

use super::*;
use roost_auth::Role;
use rumqttd::protocol::{PubRel, PubRelReason, QoS};

const CHAT: &[u8] = br#"{"id":"m1","kind":"text","body":"hi"}"#;

struct World {
    acl: Acl,
    registry: Registry,
    limits: Limits,
    retained: Retained,
    stamped: bool,
}

impl World {
    fn new() -> World {
        World {
            acl: Acl::new(&[]).expect("built-in rules"),
            registry: Registry::default(),
            limits: Limits::default(),
            retained: Retained::new(Limits::default().max_retained_per_user),
            stamped: false,
        }
    }

    fn env(&self) -> Env<'_> {
        Env {
            acl: &self.acl,
            registry: &self.registry,
            limits: &self.limits,
            retained: &self.retained,
            stamped: self.stamped,
        }
    }
}

fn alice(version: Version) -> Session {
    let identity = Identity {
        user: "alice".into(),
        groups: Vec::new(),
        role: Role::User,
        expires_at: u64::MAX,
    };
    Session::new(version, identity, "alice".into(), false, 30, None)
}

/// A PUBLISH as the client sends it, decoded from its bytes.
fn publish(topic: &str, qos: QoS, pkid: u16) -> Packet {
    // Signals have a payload of their own (roost_proto::signal).
    let payload: &[u8] = if topic.starts_with("im/sig/") {
        br#"{"type":"typing","state":"start"}"#
    } else {
        CHAT
    };
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic.as_bytes());
    if qos != QoS::AtMostOnce {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut frame = vec![0x30 | ((qos as u8) << 1), body.len() as u8];
    frame.extend(body);
    let mut buf = bytes::BytesMut::from(&frame[..]);
    crate::codec::Codec::new(Version::V311, 1024)
        .decode(&mut buf)
        .expect("a valid PUBLISH")
        .expect("a whole PUBLISH")
}

fn client(s: &mut Session, w: &World, packet: Packet) -> Result<Actions, Close> {
    let mut out = Actions::default();
    s.on_client(packet, &w.env(), &mut out)?;
    Ok(out)
}

fn router_ack(s: &mut Session, packet: Packet) -> Actions {
    let mut out = Actions::default();
    s.on_ack(packet, &mut out);
    out
}

fn pubrec(pkid: u16) -> Packet {
    let reason = PubRecReason::Success;
    Packet::PubRec(PubRec { pkid, reason }, None)
}

fn pubrel(pkid: u16) -> Packet {
    let reason = PubRelReason::Success;
    Packet::PubRel(PubRel { pkid, reason }, None)
}

fn pubcomp(pkid: u16) -> Packet {
    let reason = PubCompReason::Success;
    Packet::PubComp(PubComp { pkid, reason }, None)
}

#[test]
fn allowed_publish_goes_to_the_router() {
    let w = World::new();
    let mut s = alice(Version::V5);
    let out = client(&mut s, &w, publish("im/dm/bob/alice", QoS::AtLeastOnce, 1)).unwrap();
    assert!(matches!(out.to_router[..], [Packet::Publish(..)]));
    assert!(out.to_client.is_empty() && out.notices.is_empty());
}

/// The topic and user properties of the one publish routed.
fn routed(out: &Actions) -> (String, Vec<(String, String)>) {
    let [Packet::Publish(p, props)] = &out.to_router[..] else {
        panic!("{:?}", out.to_router)
    };
    let props = props.as_ref().map(|p| p.user_properties.clone());
    (
        String::from_utf8(p.topic.to_vec()).unwrap(),
        props.unwrap_or_default(),
    )
}

fn with_props(packet: Packet, user_properties: &[(&str, &str)]) -> Packet {
    let Packet::Publish(p, _) = packet else {
        unreachable!()
    };
    let props = PublishProperties {
        user_properties: user_properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    Packet::Publish(p, Some(props))
}

#[test]
fn stamped_delivery_routes_chat_to_the_ingress() {
    let mut w = World::new();
    w.stamped = true;
    let mut s = alice(Version::V5);
    let out = client(&mut s, &w, publish("im/dm/bob/alice", QoS::AtLeastOnce, 1)).unwrap();
    assert_eq!(routed(&out).0, "im/ingress/dm/bob/alice");
    // Signals are not stored: they go as they are.
    let out = client(
        &mut s,
        &w,
        publish("im/sig/dm/bob/alice", QoS::AtMostOnce, 0),
    )
    .unwrap();
    assert_eq!(routed(&out).0, "im/sig/dm/bob/alice");
    // A user cannot pass a message off as a stamped copy: the marker is dropped.
    let forged = with_props(
        publish("im/dm/bob/alice", QoS::AtLeastOnce, 2),
        &[("roost-stamped", "1")],
    );
    let out = client(&mut s, &w, forged).unwrap();
    assert_eq!(routed(&out), ("im/ingress/dm/bob/alice".into(), vec![]));
    // QoS 2 is marked: the history service reads at QoS 1.
    let out = client(&mut s, &w, publish("im/dm/bob/alice", QoS::ExactlyOnce, 4)).unwrap();
    assert_eq!(
        routed(&out),
        (
            "im/ingress/dm/bob/alice".into(),
            vec![("roost-qos".into(), "2".into())]
        )
    );
    // Direct delivery: as sent.
    w.stamped = false;
    let out = client(&mut s, &w, publish("im/dm/bob/alice", QoS::AtLeastOnce, 3)).unwrap();
    assert_eq!(routed(&out).0, "im/dm/bob/alice");
}

#[test]
fn a_history_workers_stamped_copy_goes_to_the_recipients() {
    let mut w = World::new();
    w.stamped = true;
    let identity = Identity {
        user: "history".into(),
        groups: Vec::new(),
        role: Role::Service,
        expires_at: u64::MAX,
    };
    let mut s = Session::new(Version::V5, identity, "history:w".into(), false, 30, None);
    let copy = with_props(
        publish("im/dm/bob/alice", QoS::AtLeastOnce, 1),
        &[("roost-stamped", "1"), ("x", "y")],
    );
    let out = client(&mut s, &w, copy).unwrap();
    assert_eq!(
        routed(&out),
        ("im/dm/bob/alice".into(), vec![("x".into(), "y".into())])
    );
    // Without the marker a service's chat message is stored first like anyone's.
    let out = client(&mut s, &w, publish("im/dm/bob/alice", QoS::AtLeastOnce, 2)).unwrap();
    assert_eq!(routed(&out).0, "im/ingress/dm/bob/alice");
}

#[test]
fn denied_publish_is_answered_not_routed() {
    let w = World::new();
    let mut s = alice(Version::V5);
    let out = client(&mut s, &w, publish("im/dm/bob/carol", QoS::AtLeastOnce, 1)).unwrap();
    assert!(out.to_router.is_empty());
    assert_eq!(out.notices.len(), 1);
    let [Packet::PubAck(ack, _)] = &out.to_client[..] else {
        panic!("{:?}", out.to_client)
    };
    assert_eq!(ack.reason, PubAckReason::NotAuthorized);
}

#[test]
fn qos2_duplicate_is_answered_again_and_not_routed_again() {
    let w = World::new();
    let mut s = alice(Version::V311);
    let first = client(&mut s, &w, publish("im/dm/bob/alice", QoS::ExactlyOnce, 7)).unwrap();
    assert_eq!(first.to_router.len(), 1);
    // A copy before the router's PUBREC: the PUBREC on its way answers both.
    let early = client(&mut s, &w, publish("im/dm/bob/alice", QoS::ExactlyOnce, 7)).unwrap();
    assert!(early.to_router.is_empty() && early.to_client.is_empty());
    let rec = router_ack(&mut s, pubrec(7));
    assert!(matches!(rec.to_client[..], [Packet::PubRec(..)]));
    // A copy after it: PUBREC again, from the session.
    let late = client(&mut s, &w, publish("im/dm/bob/alice", QoS::ExactlyOnce, 7)).unwrap();
    assert!(late.to_router.is_empty());
    assert!(matches!(late.to_client[..], [Packet::PubRec(..)]));
    // PUBREL goes to the router; after its PUBCOMP the id is free for a new message.
    let rel = client(&mut s, &w, pubrel(7)).unwrap();
    assert!(matches!(rel.to_router[..], [Packet::PubRel(..)]));
    router_ack(&mut s, pubcomp(7));
    let next = client(&mut s, &w, publish("im/dm/bob/alice", QoS::ExactlyOnce, 7)).unwrap();
    assert_eq!(next.to_router.len(), 1);
}

#[test]
fn qos1_resend_is_routed_again() {
    // At least once: a QoS 1 copy may be delivered twice, as MQTT allows.
    let w = World::new();
    let mut s = alice(Version::V5);
    for _ in 0..2 {
        let out = client(&mut s, &w, publish("im/dm/bob/alice", QoS::AtLeastOnce, 3)).unwrap();
        assert_eq!(out.to_router.len(), 1);
    }
}

#[test]
fn receive_maximum_bounds_inflight_publishes() {
    let mut w = World::new();
    w.limits.receive_maximum = 2;
    let mut s = alice(Version::V5);
    client(&mut s, &w, publish("im/dm/bob/alice", QoS::ExactlyOnce, 1)).unwrap();
    client(&mut s, &w, publish("im/dm/bob/alice", QoS::AtLeastOnce, 2)).unwrap();
    // The same ids again do not count twice.
    client(&mut s, &w, publish("im/dm/bob/alice", QoS::ExactlyOnce, 1)).unwrap();
    let over = client(&mut s, &w, publish("im/dm/bob/alice", QoS::AtLeastOnce, 3));
    assert!(matches!(
        over,
        Err(Close::Protocol(
            DisconnectReasonCode::ReceiveMaximumExceeded,
            _
        ))
    ));
    // An acknowledged id makes room.
    router_ack(
        &mut s,
        Packet::PubAck(
            PubAck {
                pkid: 2,
                reason: PubAckReason::Success,
            },
            None,
        ),
    );
    client(&mut s, &w, publish("im/dm/bob/alice", QoS::AtLeastOnce, 3)).unwrap();
}

#[test]
fn refused_v311_qos2_is_finished_by_the_session() {
    let w = World::new();
    let mut s = alice(Version::V311);
    let out = client(&mut s, &w, publish("im/dm/bob/carol", QoS::ExactlyOnce, 4)).unwrap();
    assert!(matches!(out.to_client[..], [Packet::PubRec(..)]));
    let again = client(&mut s, &w, publish("im/dm/bob/carol", QoS::ExactlyOnce, 4)).unwrap();
    assert!(matches!(again.to_client[..], [Packet::PubRec(..)]));
    assert!(again.notices.is_empty(), "a duplicate is not refused twice");
    let rel = client(&mut s, &w, pubrel(4)).unwrap();
    assert!(rel.to_router.is_empty());
    assert!(matches!(rel.to_client[..], [Packet::PubComp(..)]));
}

#[test]
fn protocol_breaches_close() {
    let w = World::new();
    let mut s = alice(Version::V5);
    let wild = client(&mut s, &w, publish("im/dm/+/alice", QoS::AtMostOnce, 0));
    assert!(matches!(
        wild,
        Err(Close::Protocol(DisconnectReasonCode::TopicNameInvalid, _))
    ));
    let pingresp = client(&mut s, &w, Packet::PingResp(PingResp));
    assert!(matches!(
        pingresp,
        Err(Close::Protocol(DisconnectReasonCode::ProtocolError, _))
    ));
}

#[test]
fn ping_is_answered() {
    let w = World::new();
    let mut s = alice(Version::V311);
    let out = client(&mut s, &w, Packet::PingReq(rumqttd::protocol::PingReq)).unwrap();
    assert!(matches!(out.to_client[..], [Packet::PingResp(_)]));
}

#[test]
fn will_follows_the_close() {
    let will = || Will {
        topic: "im/status/alice".into(),
        payload: b"gone".to_vec(),
        retain: false,
        delay_secs: 0,
        user: "alice".into(),
        properties: None,
    };
    let mut s = alice(Version::V5);
    s.will = Some(Box::new(will()));
    assert!(s.on_close(&Close::Disconnect { will: false }).is_none());
    s.will = Some(Box::new(will()));
    assert!(s.on_close(&Close::Disconnect { will: true }).is_some());
    s.will = Some(Box::new(will()));
    assert!(s.on_close(&Close::KeepAlive).is_some());
}

#[test]
fn keepalive_is_one_and_a_half_times() {
    let s = alice(Version::V311);
    assert_eq!(s.silence_limit(), Some(Duration::from_secs(45)));
    assert!(matches!(s.on_timer(true), Close::TokenExpired));
    assert!(matches!(s.on_timer(false), Close::KeepAlive));
}

fn subscribe(filter: &str) -> Packet {
    let filter = protocol::Filter {
        path: filter.into(),
        qos: QoS::AtLeastOnce,
        nolocal: false,
        preserve_retain: false,
        retain_forward_rule: protocol::RetainForwardRule::OnEverySubscribe,
    };
    let filters = vec![filter];
    Packet::Subscribe(Subscribe { pkid: 7, filters }, None)
}

fn delivery(topic: &str, pkid: u16) -> Notification {
    let Packet::Publish(publish, _) = publish(topic, QoS::AtLeastOnce, pkid) else {
        unreachable!("publish() makes a PUBLISH")
    };
    Notification::Forward(rumqttd::Forward {
        cursor: None,
        size: 0,
        publish,
        properties: None,
    })
}

fn topics_and_pkids(packets: &[Packet]) -> Vec<(String, u16)> {
    packets
        .iter()
        .map(|p| match p {
            Packet::Publish(p, _) => (String::from_utf8_lossy(&p.topic).into(), p.pkid()),
            Packet::PubAck(a, _) => ("puback".into(), a.pkid),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_root_wildcard_is_granted_and_each_delivery_checked() {
    let mut w = World::new();
    let all = roost_auth::AclRule {
        permission: roost_auth::Permission::Allow,
        action: roost_auth::Action::All,
        topic: "#".into(),
    };
    w.acl = Acl::new(&[all]).expect("valid rule");
    let mut s = alice(Version::V5);
    // Granted whole: nothing to check.
    client(&mut s, &w, subscribe("news/#")).unwrap();
    assert!(s.revoked.is_none());
    let out = client(&mut s, &w, subscribe("#")).unwrap();
    assert!(matches!(out.to_router.as_slice(), [Packet::Subscribe(..)]));

    let mut out = Actions::default();
    for (topic, pkid) in [("news", 1), ("im/dm/bob/carol", 2), ("im/dm/alice/bob", 3)] {
        s.on_router(delivery(topic, pkid), &w.acl, &mut out)
            .unwrap();
    }
    assert_eq!(
        topics_and_pkids(&out.to_client),
        [("news".into(), 1), ("im/dm/alice/bob".into(), 3)]
    );
    // The node's ack of the dropped pkid 2 waits for the client's ack of pkid 1.
    assert!(out.to_router.is_empty());
    let reason = PubAckReason::Success;
    let out = client(&mut s, &w, Packet::PubAck(PubAck { pkid: 1, reason }, None)).unwrap();
    assert_eq!(
        topics_and_pkids(&out.to_router),
        [("puback".into(), 1), ("puback".into(), 2)]
    );
}

#[test]
fn session_state_is_compact() {
    // Identity, client id, two maps, keepalive, the boxed will, revoked filters, topic
    // aliases, the client's Maximum Packet Size and the outbound ack counters: 240 bytes on
    // 64-bit.
    let size = std::mem::size_of::<Session>();
    assert!(size <= 240, "Session grew to {size} bytes");
}

/// A v5 QoS 0 PUBLISH of a chat message with `alias` as its Topic Alias.
fn aliased(topic: &str, alias: u16) -> Packet {
    let props = PublishProperties {
        topic_alias: Some(alias),
        ..Default::default()
    };
    let publish = Publish::new(topic.as_bytes().to_vec(), CHAT.to_vec(), false);
    Packet::Publish(publish, Some(props))
}

/// The topic of the one PUBLISH passed to the router, which carries no topic alias.
fn routed_topic(out: &Actions) -> String {
    let [Packet::Publish(publish, props)] = &out.to_router[..] else {
        panic!("{:?}", out.to_router)
    };
    assert!(
        props.as_ref().is_none_or(|p| p.topic_alias.is_none()),
        "alias passed on"
    );
    String::from_utf8(publish.topic.to_vec()).unwrap()
}

#[test]
fn topic_aliases_are_resolved_and_stripped() {
    let w = World::new();
    let mut s = alice(Version::V5);
    let max = w.limits.topic_alias_maximum;
    let steps = [
        (("im/dm/bob/alice", 1), "im/dm/bob/alice"),
        (("", 1), "im/dm/bob/alice"),
        (("im/dm/carol/alice", 1), "im/dm/carol/alice"),
        (("", 1), "im/dm/carol/alice"),
        (("im/dm/bob/alice", max), "im/dm/bob/alice"),
        (("", max), "im/dm/bob/alice"),
        (("", 1), "im/dm/carol/alice"),
    ];
    for ((topic, alias), expected) in steps {
        let out = client(&mut s, &w, aliased(topic, alias)).unwrap();
        assert_eq!(routed_topic(&out), expected, "{topic:?} with alias {alias}");
    }
    // The ACL judges the topic an alias stands for.
    client(&mut s, &w, aliased("im/dm/bob/carol", 2)).unwrap();
    let out = client(&mut s, &w, aliased("", 2)).unwrap();
    assert!(
        out.to_router.is_empty(),
        "an aliased publish got past the ACL"
    );
}

#[test]
fn invalid_topic_aliases_close() {
    let w = World::new();
    let max = w.limits.topic_alias_maximum;
    for (topic, alias, code) in [
        (
            "im/dm/bob/alice",
            0,
            DisconnectReasonCode::TopicAliasInvalid,
        ),
        (
            "im/dm/bob/alice",
            max + 1,
            DisconnectReasonCode::TopicAliasInvalid,
        ),
        ("", 3, DisconnectReasonCode::ProtocolError),
    ] {
        let mut s = alice(Version::V5);
        match client(&mut s, &w, aliased(topic, alias)) {
            Err(Close::Protocol(got, _)) => assert_eq!(got, code, "alias {alias}"),
            other => panic!("alias {alias}: {other:?}"),
        }
    }
}

fn unsubscribe(filters: &[&str]) -> Packet {
    let unsubscribe = rumqttd::protocol::Unsubscribe {
        pkid: 9,
        filters: filters.iter().map(|f| f.to_string()).collect(),
    };
    Packet::Unsubscribe(unsubscribe, None)
}

#[test]
fn unsuback_says_which_filters_existed() {
    let w = World::new();
    let mut s = alice(Version::V5);
    let filter = rumqttd::protocol::Filter {
        path: "im/dm/alice/+".into(),
        qos: QoS::AtLeastOnce,
        nolocal: false,
        preserve_retain: false,
        retain_forward_rule: rumqttd::protocol::RetainForwardRule::OnEverySubscribe,
    };
    let subscribe = Subscribe {
        pkid: 8,
        filters: vec![filter],
    };
    client(&mut s, &w, Packet::Subscribe(subscribe, None)).unwrap();
    let reasons = |out: Actions| {
        let [Packet::UnsubAck(ack, _)] = &out.to_client[..] else {
            panic!("{:?}", out.to_client)
        };
        ack.reasons.clone()
    };
    let out = client(&mut s, &w, unsubscribe(&["im/dm/alice/+", "im/presence/+"])).unwrap();
    use UnsubAckReason::{NoSubscriptionExisted, Success};
    assert_eq!(reasons(out), [Success, NoSubscriptionExisted]);
    let out = client(&mut s, &w, unsubscribe(&["im/dm/alice/+"])).unwrap();
    assert_eq!(reasons(out), [NoSubscriptionExisted], "unsubscribing twice");
}

#[test]
fn pubrel_for_an_unknown_packet_id_is_completed_by_the_session() {
    let w = World::new();
    for (version, reason) in [
        (Version::V5, PubCompReason::PacketIdentifierNotFound),
        (Version::V311, PubCompReason::Success),
    ] {
        let mut s = alice(version);
        let out = client(&mut s, &w, pubrel(42)).unwrap();
        assert!(out.to_router.is_empty(), "the router would close the link");
        let [Packet::PubComp(comp, _)] = &out.to_client[..] else {
            panic!("{:?}", out.to_client)
        };
        assert_eq!((comp.pkid, comp.reason), (42, reason));
    }
}

#[test]
fn dollar_topics_other_than_sys_follow_the_rules() {
    let mut w = World::new();
    let rule = |topic: &str| roost_auth::AclRule {
        permission: roost_auth::Permission::Allow,
        action: roost_auth::Action::All,
        topic: topic.into(),
    };
    w.acl = Acl::new(&[rule("$app/#"), rule("#")]).expect("rules");
    let mut s = alice(Version::V5);
    let out = client(&mut s, &w, publish("$app/x", QoS::AtLeastOnce, 1)).unwrap();
    assert!(
        matches!(out.to_router[..], [Packet::Publish(..)]),
        "{out:?}"
    );
    for reserved in ["$SYS/x", "$share/g/x"] {
        let mut s = alice(Version::V5);
        let out = client(&mut s, &w, publish(reserved, QoS::AtLeastOnce, 1));
        assert!(
            matches!(
                out,
                Err(Close::Protocol(DisconnectReasonCode::TopicNameInvalid, _))
            ),
            "{reserved}: {out:?}"
        );
    }
}
