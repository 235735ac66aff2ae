//! Conversation ids, messages from publishes, and error classes (no database
//! needed, except the in-memory SQLite and an unreachable server).

use roost_history::{Conv, HistoryError, NewMessage, Store};

fn g(gs: &[&str]) -> Vec<String> {
    gs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn parse_and_display() {
    let dm = Conv::parse("dm:alice:bob").unwrap();
    assert_eq!(
        dm,
        Conv::Dm {
            a: "alice".into(),
            b: "bob".into()
        }
    );
    assert_eq!(dm.to_string(), "dm:alice:bob");
    assert_eq!(
        Conv::parse("grp:team-1.x_y").unwrap(),
        Conv::Group("team-1.x_y".into())
    );
    assert_eq!(Conv::parse("grp:team").unwrap().to_string(), "grp:team");
    // Byte order: uppercase sorts before lowercase, digits before letters.
    assert!(Conv::parse("dm:Zed:alice").is_some());
    assert!(Conv::parse("dm:alice:Zed").is_none());
    assert!(Conv::parse("dm:1:a").is_some());
    let long = "x".repeat(64);
    assert!(Conv::parse(&format!("grp:{long}")).is_some());
    for bad in [
        "",
        "dm:",
        "dm:alice",
        "dm:bob:alice", // not a < b
        "dm:alice:alice",
        "dm:alice:bob:carol",
        "dm::bob",
        "dm:alice:",
        "dm:al ice:bob",
        "dm:alice:b/ob",
        "grp:",
        "grp:a:b",
        "grp:a/b",
        "grp:+",
        "grp:#",
        "GRP:team",
        "group:team",
        "team",
        &format!("grp:{long}x"),
        &format!("dm:a:{long}x"),
    ] {
        assert!(Conv::parse(bad).is_none(), "{bad:?} should not parse");
        assert!(bad.parse::<Conv>().is_err());
    }
    let err = "dm:b:a".parse::<Conv>().unwrap_err();
    assert!(matches!(err, HistoryError::InvalidConversation(_)) && err.is_bad_request());
}

#[test]
fn dm_orders_its_users() {
    assert_eq!(
        Conv::dm("bob", "alice"),
        Conv::parse("dm:alice:bob").unwrap()
    );
    assert_eq!(
        Conv::dm("alice", "bob"),
        Conv::parse("dm:alice:bob").unwrap()
    );
    assert_eq!(Conv::dm("b", "B").to_string(), "dm:B:b");
    assert!(Conv::dm("alice", "bob").is_valid());
    assert!(!Conv::dm("alice", "alice").is_valid());
    assert!(!Conv::dm("alice", "b:ob").is_valid());
}

#[test]
fn from_topic() {
    assert_eq!(
        Conv::from_topic("im/dm/bob/alice"),
        Some((Conv::parse("dm:alice:bob").unwrap(), "alice".to_string()))
    );
    assert_eq!(
        Conv::from_topic("im/dm/alice/bob"),
        Some((Conv::parse("dm:alice:bob").unwrap(), "bob".to_string()))
    );
    assert_eq!(
        Conv::from_topic("im/grp/team/carol"),
        Some((Conv::Group("team".into()), "carol".to_string()))
    );
    for bad in [
        "im/dm/alice/alice",
        "im/dm/bob",
        "im/dm/bob/alice/x",
        "im/dm//alice",
        "im/dm/bob/",
        "im/dm/b:b/alice",
        "im/grp/team",
        "im/grp/+/alice",
        "im/sig/dm/bob/alice",
        "im/sig/grp/team/alice",
        "im/presence/alice",
        "im/req/alice",
        "im/sys/alice",
        "/im/dm/bob/alice",
        "xx/dm/bob/alice",
        "",
    ] {
        assert!(Conv::from_topic(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn can_read() {
    let dm = Conv::parse("dm:alice:bob").unwrap();
    assert!(dm.can_read("alice", &[]));
    assert!(dm.can_read("bob", &g(&["x"])));
    assert!(!dm.can_read("carol", &g(&["alice", "bob"])));
    let grp = Conv::Group("team".into());
    assert!(grp.can_read("carol", &g(&["other", "team"])));
    assert!(!grp.can_read("carol", &g(&["other", "teams", "tea"])));
    assert!(!grp.can_read("team", &[]));
}

#[test]
fn new_message_from_publish() {
    let m = NewMessage::from_publish(
        "im/dm/bob/alice",
        br#"{"id":"m1","kind":"text","body":"hi"}"#,
    )
    .unwrap();
    assert_eq!(m.conv.to_string(), "dm:alice:bob");
    assert_eq!((m.from.as_str(), m.id.as_str()), ("alice", "m1"));
    assert_eq!(m.payload, r#"{"id":"m1","kind":"text","body":"hi"}"#);
    let m = NewMessage::from_publish("im/grp/team/carol", br#"{"id":"x"}"#).unwrap();
    assert_eq!(m.conv, Conv::Group("team".into()));
    let long_id = format!(r#"{{"id":"{}"}}"#, "a".repeat(65));
    for (topic, payload) in [
        ("im/sig/dm/bob/alice", &br#"{"id":"m1"}"#[..]),
        ("im/dm/bob/alice", b"not json"),
        ("im/dm/bob/alice", b"[1,2]"),
        ("im/dm/bob/alice", br#"{"body":"no id"}"#),
        ("im/dm/bob/alice", br#"{"id":7}"#),
        ("im/dm/bob/alice", br#"{"id":""}"#),
        ("im/dm/bob/alice", long_id.as_bytes()),
        ("im/dm/bob/alice", b"\xff\xfe"),
    ] {
        assert!(
            NewMessage::from_publish(topic, payload).is_err(),
            "{topic} {payload:?}"
        );
    }
}

#[tokio::test]
async fn unsupported_url_is_a_configuration_error() {
    for url in ["mysql://root@localhost/db", "history.db", "http://x"] {
        let err = Store::connect(url).await.unwrap_err();
        assert!(
            matches!(err, HistoryError::UnsupportedUrl(_)),
            "{url}: {err}"
        );
        assert!(!err.is_transient() && !err.is_bad_request());
    }
}

#[tokio::test]
async fn unreachable_database_is_transient() {
    // Nothing listens on port 1 of the loopback address.
    let err = Store::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(!err.is_bad_request());
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), roost_history::Backend::Sqlite);
    let m = NewMessage::from_publish("im/grp/team/carol", br#"{"id":"x"}"#).unwrap();
    let stored = store.store_batch(&[m.clone(), m]).await.unwrap();
    assert_eq!(
        (stored[0].seq, stored[1].seq, stored[1].duplicate),
        (1, 1, true)
    );
    // Several tasks share the single in-memory connection.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let m = NewMessage::from_publish(
                "im/grp/team/carol",
                format!(r#"{{"id":"t{t}"}}"#).as_bytes(),
            )
            .unwrap();
            store.store_batch(&[m]).await.unwrap();
            store
                .history(&Conv::Group("team".into()), None, None, 10)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let page = store
        .history(&Conv::Group("team".into()), None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
}
