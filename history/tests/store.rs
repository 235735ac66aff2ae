//! The store's behaviour, each test run against SQLite and PostgreSQL.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{conv, msg, Backend, TestDb};
use roost_history::{Conv, HistoryError, NewMessage, Retention, Stored};

common::on_both_backends!(
    seq_is_gapless_per_conversation,
    duplicates_within_a_batch,
    duplicates_across_batches,
    invalid_message_refuses_the_batch,
    store_each_sets_apart_refused_messages,
    concurrent_writers_and_reader,
    history_paging,
    payloads_come_back_parsed,
    sync_pages_with_cursors,
    sync_cursor_skips_other_users_traffic,
    sync_over_many_conversations,
    conversations_with_unread_counts,
    conversations_page_with_cursors,
    answers_are_bounded_in_bytes,
    mark_read_is_monotonic_and_clamped,
    members_to_notify,
    retention_by_count,
    retention_by_age,
    schema_and_connect_are_repeatable,
);

fn groups(gs: &[&str]) -> Vec<String> {
    gs.iter().map(|g| g.to_string()).collect()
}

fn seqs(stored: &[Stored]) -> Vec<i64> {
    stored.iter().map(|s| s.seq).collect()
}

async fn seq_is_gapless_per_conversation(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let mut expected: HashMap<&str, i64> = HashMap::new();
    let convs = ["dm:alice:bob", "grp:team", "dm:bob:carol"];
    let senders = [
        ("dm:alice:bob", "alice"),
        ("grp:team", "dave"),
        ("dm:bob:carol", "carol"),
    ];
    let mut n = 0;
    for size in [1usize, 7, 30, 2, 120] {
        let batch: Vec<NewMessage> = (0..size)
            .map(|i| {
                let (c, from) = senders[(n + i * 7) % 3];
                msg(c, from, &format!("m{}", n + i))
            })
            .collect();
        n += size;
        let stored = store.store_batch(&batch).await.unwrap();
        assert_eq!(stored.len(), batch.len());
        for (m, s) in batch.iter().zip(&stored) {
            assert!(!s.duplicate);
            assert_eq!(
                (s.conv.as_str(), s.from.as_str(), s.id.as_str()),
                (m.conv.to_string().as_str(), m.from.as_str(), m.id.as_str())
            );
            let e = expected
                .entry(convs.iter().find(|c| **c == s.conv).unwrap())
                .or_insert(0);
            *e += 1;
            assert_eq!(s.seq, *e, "seq of {} in {}", s.id, s.conv);
            assert!(s.ts > 1_600_000_000_000, "ts is unix ms");
        }
    }
    for c in convs {
        let page = store.history(&conv(c), None, None, 100).await.unwrap();
        let got: Vec<i64> = page.messages.iter().map(|m| m.seq).collect();
        let want: Vec<i64> = (1..=expected[c]).collect();
        assert_eq!(got, want, "{c}");
        assert!(page.messages.windows(2).all(|w| w[0].ts <= w[1].ts));
    }
    assert!(store.store_batch(&[]).await.unwrap().is_empty());
}

async fn duplicates_within_a_batch(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let mut again = msg("grp:team", "alice", "x1");
    again.payload = r#"{"id":"x1","kind":"text","body":"changed"}"#.into();
    let batch = vec![
        msg("grp:team", "alice", "x1"),
        msg("grp:team", "bob", "x1"), // same id, other sender: another message
        again,
        msg("grp:team", "alice", "x2"),
        msg("grp:team", "alice", "x1"),
    ];
    let stored = store.store_batch(&batch).await.unwrap();
    assert_eq!(seqs(&stored), vec![1, 2, 1, 3, 1]);
    assert_eq!(
        stored.iter().map(|s| s.duplicate).collect::<Vec<_>>(),
        vec![false, false, true, false, true]
    );
    assert_eq!(stored[2].ts, stored[0].ts);
    let page = store
        .history(&conv("grp:team"), None, None, 10)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 3);
    assert_eq!(
        page.messages[0].payload["body"], "alice says x1",
        "the first copy is kept"
    );
    // The next batch continues at 4: duplicates consumed no seq.
    let next = store
        .store_batch(&[msg("grp:team", "carol", "y")])
        .await
        .unwrap();
    assert_eq!(next[0].seq, 4);
}

async fn duplicates_across_batches(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let first = store
        .store_batch(&[
            msg("dm:alice:bob", "alice", "a1"),
            msg("dm:alice:bob", "bob", "b1"),
        ])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // A retry of the same batch: everything is a duplicate with the original place.
    let retry = store
        .store_batch(&[
            msg("dm:alice:bob", "alice", "a1"),
            msg("dm:alice:bob", "bob", "b1"),
        ])
        .await
        .unwrap();
    for (a, b) in first.iter().zip(&retry) {
        assert!(!a.duplicate && b.duplicate);
        assert_eq!((&a.conv, a.seq, a.ts), (&b.conv, b.seq, b.ts));
    }
    // Mixed with new messages, and a duplicate claiming another conversation:
    // the original conversation and seq are reported.
    let mixed = store
        .store_batch(&[
            msg("dm:alice:bob", "alice", "a2"),
            msg("dm:alice:carol", "alice", "a1"),
            msg("dm:alice:bob", "bob", "b2"),
        ])
        .await
        .unwrap();
    assert_eq!(seqs(&mixed), vec![3, 1, 4]);
    assert_eq!(mixed[1].conv, "dm:alice:bob");
    assert!(mixed[1].duplicate && !mixed[0].duplicate && !mixed[2].duplicate);
    // Another Store on the same database sees the same.
    let other = db.store().await;
    let again = other
        .store_batch(&[msg("dm:alice:bob", "bob", "b2")])
        .await
        .unwrap();
    assert_eq!((again[0].seq, again[0].duplicate), (4, true));
    let page = store
        .history(&conv("dm:alice:bob"), None, None, 100)
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(store
        .history(&conv("dm:alice:carol"), None, None, 100)
        .await
        .unwrap()
        .messages
        .is_empty());
}

/// A message the database refuses as data (on PostgreSQL, an `id` with a NUL: 22021) or
/// that is invalid is set apart by `store_each`; every other message of the batch is
/// stored, in input order, with gapless seqs. Retrying the batch stores nothing twice.
async fn store_each_sets_apart_refused_messages(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let postgres = store.backend() == roost_history::Backend::Postgres;
    let mut batch: Vec<NewMessage> = (0..20)
        .map(|n| msg("grp:team", "alice", &format!("m{n}")))
        .collect();
    batch[3].id = "a\u{0}b".into();
    batch[9].id = "x".repeat(65);
    batch[17].id = "\u{0}".into();

    // store_batch is all or nothing: on PostgreSQL the NUL is a data error, not an outage.
    if postgres {
        let mut only_nul = batch.clone();
        only_nul.remove(9);
        let err = store.store_batch(&only_nul).await.unwrap_err();
        assert!(err.is_refused_data() && !err.is_transient(), "{err}");
    }

    let db_refused: &[usize] = if postgres { &[3, 17] } else { &[] };
    for attempt in 0..2 {
        let outcomes = store.store_each(&batch).await.unwrap();
        assert_eq!(outcomes.len(), batch.len());
        let mut expected_seq = 1;
        for (i, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Err(HistoryError::InvalidMessage { index, .. }) => assert_eq!((i, *index), (9, 9)),
                Err(e) => {
                    assert!(db_refused.contains(&i), "#{i}: {e}");
                    assert!(e.is_refused_data(), "#{i}: {e}");
                }
                Ok(stored) => {
                    assert!(i != 9 && !db_refused.contains(&i), "#{i} stored");
                    assert_eq!(stored.id, batch[i].id);
                    assert_eq!(stored.duplicate, attempt == 1, "#{i}");
                    if attempt == 0 {
                        assert_eq!(stored.seq, expected_seq, "#{i}");
                        expected_seq += 1;
                    }
                }
            }
        }
    }
    let stored = 20 - 1 - db_refused.len();
    let page = store
        .history(&conv("grp:team"), None, None, 100)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), stored);
    let want: Vec<String> = (0..20)
        .filter(|i| *i != 9 && !db_refused.contains(i))
        .map(|i| batch[i].id.clone())
        .collect();
    let got: Vec<String> = page.messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(got, want, "stored in input order");
}

async fn invalid_message_refuses_the_batch(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let mut bad_id = msg("grp:team", "alice", "ok");
    bad_id.id = "x".repeat(65);
    let mut empty_id = msg("grp:team", "alice", "ok");
    empty_id.id = String::new();
    let mut outsider = msg("dm:alice:bob", "alice", "ok");
    outsider.from = "carol".into();
    let mut bad_sender = msg("grp:team", "alice", "ok");
    bad_sender.from = "al/ice".into();
    let self_dm = NewMessage {
        conv: Conv::dm("alice", "alice"),
        ..msg("grp:team", "alice", "ok")
    };
    for bad in [bad_id, empty_id, outsider, bad_sender, self_dm] {
        let err = store
            .store_batch(&[msg("grp:team", "alice", "good"), bad.clone()])
            .await
            .unwrap_err();
        assert!(
            matches!(err, HistoryError::InvalidMessage { index: 1, .. }),
            "{err}"
        );
        assert!(err.is_bad_request() && !err.is_transient());
    }
    // Nothing of those batches was stored; a 64-char id is fine.
    assert!(store
        .history(&conv("grp:team"), None, None, 10)
        .await
        .unwrap()
        .messages
        .is_empty());
    let mut max_id = msg("grp:team", "alice", "ok");
    max_id.id = "é".repeat(64);
    assert_eq!(store.store_batch(&[max_id]).await.unwrap()[0].seq, 1);
    let err = store
        .history(&Conv::dm("bob", "bob"), None, None, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, HistoryError::InvalidConversation(_)) && err.is_bad_request());
}

/// Two `Store`s on one database, three writer tasks each, all storing the same
/// messages in different orders (so every message races with five other
/// copies), while a reader syncs with small pages. Afterwards: every
/// conversation's seqs are exactly 1..=n, each (from, id) got one place that
/// every copy agrees on, and the reader saw every message exactly once.
async fn concurrent_writers_and_reader(backend: Backend) {
    let db = &TestDb::new(backend).await;
    const MESSAGES: usize = 600;
    const BATCH: usize = 25;
    let stores = [db.store().await, db.store().await];
    let convs = ["dm:alice:bob", "grp:g1", "grp:g2"];
    let universe: Arc<Vec<NewMessage>> = Arc::new(
        (0..MESSAGES)
            .map(|i| {
                let c = convs[i % 3];
                let from = if c.starts_with("dm:") {
                    ["alice", "bob"][i % 2]
                } else {
                    ["u0", "u1", "u2", "u3", "u4"][i % 5]
                };
                msg(c, from, &format!("m{i}"))
            })
            .collect(),
    );

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = stores[1].clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut cursor: Option<String> = None;
            let mut seen: Vec<(String, i64, String)> = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store
                    .sync("alice", &groups(&["g1", "g2"]), cursor.as_deref(), 37)
                    .await
                    .unwrap();
                for m in &page.messages {
                    seen.push((m.conv.clone(), m.message.seq, m.message.id.clone()));
                }
                cursor = Some(page.cursor);
                if finished && !page.more {
                    return seen;
                }
                if !page.more {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };

    let mut writers = Vec::new();
    for t in 0..6usize {
        let store = stores[t % 2].clone();
        let universe = universe.clone();
        writers.push(tokio::spawn(async move {
            // Each task walks the universe from its own offset, in its own direction.
            let mut order: Vec<usize> = (0..MESSAGES).map(|i| (i + t * 97) % MESSAGES).collect();
            if t % 2 == 1 {
                order.reverse();
            }
            let mut results = Vec::new();
            let mut retries = 0;
            for chunk in order.chunks(BATCH) {
                let batch: Vec<NewMessage> = chunk.iter().map(|&i| universe[i].clone()).collect();
                let stored = loop {
                    match store.store_batch(&batch).await {
                        Ok(s) => break s,
                        Err(e) if e.is_transient() && retries < 20 => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(e) => panic!("writer {t}: {e}"),
                    }
                };
                results.extend(stored);
            }
            results
        }));
    }
    let mut all: Vec<Stored> = Vec::new();
    for w in writers {
        all.extend(w.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    // Every copy of a message agrees on its place; exactly one copy stored it.
    let mut places: HashMap<(String, String), (String, i64, i64)> = HashMap::new();
    let mut originals = HashSet::new();
    for s in &all {
        let place = (s.conv.clone(), s.seq, s.ts);
        let prev = places
            .entry((s.from.clone(), s.id.clone()))
            .or_insert(place.clone());
        assert_eq!(*prev, place, "copies of {}/{} disagree", s.from, s.id);
        if !s.duplicate {
            assert!(
                originals.insert((s.from.clone(), s.id.clone())),
                "{}/{} stored twice",
                s.from,
                s.id
            );
        }
    }
    assert_eq!(places.len(), MESSAGES);
    assert_eq!(originals.len(), MESSAGES);

    // Gapless, no duplicate seq, in every conversation.
    let mut per_conv: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (conv, seq, _) in places.values() {
        per_conv.entry(conv.clone()).or_default().push(*seq);
    }
    for (c, mut s) in per_conv {
        s.sort();
        assert_eq!(
            s,
            (1..=(MESSAGES / 3) as i64).collect::<Vec<_>>(),
            "seqs of {c}"
        );
        let page = stores[0].history(&conv(&c), None, None, 100).await.unwrap();
        assert_eq!(page.messages.last().unwrap().seq, (MESSAGES / 3) as i64);
    }

    // The concurrent reader saw each message exactly once, each conversation in
    // seq order.
    assert_eq!(
        seen.len(),
        MESSAGES,
        "sync delivered {} of {MESSAGES}",
        seen.len()
    );
    let mut last_seq: HashMap<&str, i64> = HashMap::new();
    for (c, seq, _) in &seen {
        let prev = last_seq.insert(c.as_str(), *seq).unwrap_or(0);
        assert_eq!(*seq, prev + 1, "sync order in {c}");
    }
}

async fn history_paging(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let c = conv("grp:team");
    let batch: Vec<NewMessage> = (1..=130)
        .map(|i| msg("grp:team", "alice", &format!("p{i}")))
        .collect();
    store.store_batch(&batch[..60]).await.unwrap();
    store.store_batch(&batch[60..]).await.unwrap();
    let range =
        |p: &roost_history::Page| -> Vec<i64> { p.messages.iter().map(|m| m.seq).collect() };

    let latest = store.history(&c, None, None, 10).await.unwrap();
    assert_eq!(range(&latest), (121..=130).collect::<Vec<_>>());
    assert!(latest.more);
    let page = store.history(&c, Some(121), None, 10).await.unwrap();
    assert_eq!(range(&page), (111..=120).collect::<Vec<_>>());
    assert!(page.more);
    let page = store.history(&c, Some(6), None, 10).await.unwrap();
    assert_eq!(range(&page), (1..=5).collect::<Vec<_>>());
    assert!(!page.more);
    let page = store.history(&c, Some(11), None, 10).await.unwrap();
    assert_eq!(range(&page), (1..=10).collect::<Vec<_>>());
    assert!(!page.more, "exactly the rest: no more");
    let page = store.history(&c, Some(1), None, 10).await.unwrap();
    assert!(page.messages.is_empty() && !page.more);

    let page = store.history(&c, None, Some(0), 10).await.unwrap();
    assert_eq!(range(&page), (1..=10).collect::<Vec<_>>());
    assert!(page.more);
    let page = store.history(&c, None, Some(120), 10).await.unwrap();
    assert_eq!(range(&page), (121..=130).collect::<Vec<_>>());
    assert!(!page.more);
    let page = store.history(&c, None, Some(125), 10).await.unwrap();
    assert_eq!(range(&page), (126..=130).collect::<Vec<_>>());
    assert!(!page.more);
    let page = store.history(&c, None, Some(130), 10).await.unwrap();
    assert!(page.messages.is_empty() && !page.more);

    let page = store.history(&c, Some(20), Some(5), 10).await.unwrap();
    assert_eq!(range(&page), (6..=15).collect::<Vec<_>>());
    assert!(page.more);
    let page = store.history(&c, Some(9), Some(5), 10).await.unwrap();
    assert_eq!(range(&page), vec![6, 7, 8]);
    assert!(!page.more);

    // limit is clamped to 1..=100.
    let page = store.history(&c, None, None, 0).await.unwrap();
    assert_eq!(range(&page), vec![130]);
    let page = store.history(&c, None, None, 1000).await.unwrap();
    assert_eq!(range(&page), (31..=130).collect::<Vec<_>>());
    assert!(page.more);
    let page = store.history(&c, None, Some(0), u32::MAX).await.unwrap();
    assert_eq!(page.messages.len(), 100);

    // Walking back from the latest page visits everything once.
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = store.history(&c, before, None, 7).await.unwrap();
        before = page.messages.first().map(|m| m.seq);
        let mut seqs = range(&page);
        seqs.extend(all);
        all = seqs;
        if !page.more {
            break;
        }
    }
    assert_eq!(all, (1..=130).collect::<Vec<_>>());

    // An unknown conversation is simply empty.
    let page = store
        .history(&conv("grp:nobody"), None, None, 10)
        .await
        .unwrap();
    assert!(page.messages.is_empty() && !page.more);
}

async fn payloads_come_back_parsed(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let mut weird = msg("grp:team", "alice", "w");
    weird.payload = "not json {".into();
    let stored = store
        .store_batch(&[msg("grp:team", "alice", "j"), weird])
        .await
        .unwrap();
    let page = store
        .history(&conv("grp:team"), None, None, 10)
        .await
        .unwrap();
    let m = &page.messages[0];
    assert_eq!(
        (m.seq, m.id.as_str(), m.from.as_str(), m.ts),
        (1, "j", "alice", stored[0].ts)
    );
    assert_eq!(
        m.payload,
        serde_json::json!({"id": "j", "kind": "text", "body": "alice says j"})
    );
    assert_eq!(page.messages[1].payload, serde_json::json!("not json {"));
    // The wire shapes of docs/protocol.md section 5.
    let json = serde_json::to_value(&page).unwrap();
    assert_eq!(json["more"], false);
    assert_eq!(json["messages"][0]["seq"], 1);
    assert_eq!(json["messages"][0]["from"], "alice");
    let sync = store.sync("x", &groups(&["team"]), None, 10).await.unwrap();
    let json = serde_json::to_value(&sync).unwrap();
    assert_eq!(json["messages"][0]["conv"], "grp:team");
    assert_eq!(json["messages"][0]["id"], "j");
    assert_eq!(json["messages"][0]["payload"]["body"], "alice says j");
    assert!(json["cursor"].is_string());
}

async fn sync_pages_with_cursors(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    // alice reads dm:alice:bob, dm:alice:carol, grp:g1; not dm:bob:carol nor grp:g2.
    let plan = [
        ("dm:alice:bob", "bob"),
        ("dm:bob:carol", "bob"),
        ("grp:g1", "dave"),
        ("grp:g2", "dave"),
        ("dm:alice:carol", "alice"),
        ("grp:g1", "alice"),
    ];
    let mut expected = Vec::new();
    for round in 0..5 {
        let batch: Vec<NewMessage> = plan
            .iter()
            .enumerate()
            .map(|(i, (c, f))| msg(c, f, &format!("r{round}i{i}")))
            .collect();
        for s in store.store_batch(&batch).await.unwrap() {
            if ["dm:alice:bob", "dm:alice:carol", "grp:g1"].contains(&s.conv.as_str()) {
                expected.push((s.conv, s.seq, s.id));
            }
        }
    }
    let mine = groups(&["g1", "not a valid id!", "g1"]);
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .sync("alice", &mine, cursor.as_deref(), 4)
            .await
            .unwrap();
        pages += 1;
        assert!(page.messages.len() <= 4);
        got.extend(
            page.messages
                .iter()
                .map(|m| (m.conv.clone(), m.message.seq, m.message.id.clone())),
        );
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    assert_eq!(got, expected, "oldest first, only alice's conversations");
    assert_eq!(pages, expected.len().div_ceil(4));

    // Caught up: nothing new, the same answer again.
    let page = store
        .sync("alice", &mine, cursor.as_deref(), 4)
        .await
        .unwrap();
    assert!(page.messages.is_empty() && !page.more);
    // New messages appear after the cursor, and only those.
    store
        .store_batch(&[msg("grp:g1", "bob", "late")])
        .await
        .unwrap();
    let page = store
        .sync("alice", &mine, cursor.as_deref(), 4)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].message.id, "late");

    // Without groups, only DMs.
    let page = store.sync("alice", &[], None, 500).await.unwrap();
    assert!(page
        .messages
        .iter()
        .all(|m| m.conv.starts_with("dm:alice:")));
    assert_eq!(page.messages.len(), 10);
    // limit is clamped to 1..=500.
    let page = store.sync("alice", &mine, None, 0).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert!(page.more);

    // A cursor the store did not make is a bad request.
    for bad in ["", "garbage", "v1:-3", "v1:1x", "1"] {
        let err = store.sync("alice", &mine, Some(bad), 10).await.unwrap_err();
        assert!(
            matches!(err, HistoryError::InvalidCursor(_)),
            "{bad}: {err}"
        );
        assert!(err.is_bad_request() && !err.is_transient());
    }
}

async fn sync_cursor_skips_other_users_traffic(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    store
        .store_batch(&[msg("dm:alice:bob", "bob", "hi")])
        .await
        .unwrap();
    let first = store.sync("alice", &[], None, 10).await.unwrap();
    assert_eq!(first.messages.len(), 1);
    // Lots of traffic that is not alice's: her cursor moves past it.
    let noise: Vec<NewMessage> = (0..50)
        .map(|i| msg("dm:bob:carol", "carol", &format!("n{i}")))
        .collect();
    store.store_batch(&noise).await.unwrap();
    let quiet = store
        .sync("alice", &[], Some(&first.cursor), 10)
        .await
        .unwrap();
    assert!(quiet.messages.is_empty() && !quiet.more);
    assert_ne!(
        quiet.cursor, first.cursor,
        "the cursor moved to the head of the log"
    );
    store
        .store_batch(&[msg("dm:alice:bob", "bob", "again")])
        .await
        .unwrap();
    let next = store
        .sync("alice", &[], Some(&quiet.cursor), 10)
        .await
        .unwrap();
    assert_eq!(next.messages.len(), 1);
    assert_eq!(next.messages[0].message.id, "again");
    // A new user with no conversations gets an empty page and a valid cursor.
    let nobody = store.sync("zed", &[], None, 10).await.unwrap();
    assert!(nobody.messages.is_empty() && !nobody.more);
    store
        .sync("zed", &[], Some(&nobody.cursor), 10)
        .await
        .unwrap();
}

/// More conversations than fit one statement: the pages still come oldest
/// first, each message once.
async fn sync_over_many_conversations(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let batch: Vec<NewMessage> = (0..1300)
        .map(|i| msg(&format!("grp:g{}", i % 1200), "dave", &format!("m{i}")))
        .collect();
    let stored = store.store_batch(&batch).await.unwrap();
    store
        .store_batch(&[msg("dm:alice:bob", "bob", "last")])
        .await
        .unwrap();
    let mine: Vec<String> = (0..1200).map(|i| format!("g{i}")).collect();
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .sync("alice", &mine, cursor.as_deref(), 500)
            .await
            .unwrap();
        got.extend(page.messages.into_iter().map(|m| m.message.id));
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    let mut want: Vec<String> = stored.into_iter().map(|s| s.id).collect();
    want.push("last".into());
    assert_eq!(got, want);
}

/// A user with many conversations gets them a page at a time, newest first, each page
/// continuing where the last one stopped: every conversation once.
async fn conversations_page_with_cursors(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let batch: Vec<NewMessage> = (0..250)
        .map(|n| {
            let other = format!("u{n:03}");
            msg(
                &Conv::dm("alice", &other).to_string(),
                "alice",
                &format!("m{n}"),
            )
        })
        .collect();
    store.store_batch(&batch).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = store
            .conversations("alice", &[], cursor.as_deref(), 100)
            .await
            .unwrap();
        pages.push(page.conversations.len());
        seen.extend(page.conversations.iter().map(|s| s.conv.clone()));
        if !page.more {
            assert_eq!(page.cursor, None);
            break;
        }
        cursor = page.cursor;
        assert!(cursor.is_some());
    }
    assert_eq!(pages, [100, 100, 50]);
    // Newest first, each once.
    let want: Vec<String> = (0..250)
        .rev()
        .map(|n| Conv::dm("alice", &format!("u{n:03}")).to_string())
        .collect();
    assert_eq!(seen, want);
    // The limit is clamped to 200; a bad cursor is a bad request.
    let page = store
        .conversations("alice", &[], None, 10_000)
        .await
        .unwrap();
    assert_eq!(page.conversations.len(), 200);
    let err = store
        .conversations("alice", &[], Some("nope"), 10)
        .await
        .unwrap_err();
    assert!(err.is_bad_request(), "{err}");
}

/// Pages of big messages stop at about MAX_ANSWER_BYTES (with `more`), never empty.
async fn answers_are_bounded_in_bytes(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let big = "x".repeat(60 * 1024);
    let batch: Vec<NewMessage> = (0..12)
        .map(|n| {
            let id = format!("b{n}");
            let mut m = msg(&format!("grp:g{n}"), "alice", &id);
            m.payload = serde_json::json!({"id": id, "kind": "text", "body": big}).to_string();
            m
        })
        .collect();
    store.store_batch(&batch).await.unwrap();
    let bound = roost_proto::limits::MAX_ANSWER_BYTES;
    let all: Vec<String> = (0..12).map(|n| format!("g{n}")).collect();

    let page = store.conversations("alice", &all, None, 100).await.unwrap();
    let n = page.conversations.len();
    assert!(page.more && (1..12).contains(&n), "{n}");
    assert!(
        n * big.len() <= bound,
        "{n} conversations of {} bytes",
        big.len()
    );
    let rest = store
        .conversations("alice", &all, page.cursor.as_deref(), 100)
        .await
        .unwrap();
    assert_eq!(rest.conversations[0].conv, format!("grp:g{}", 11 - n));

    let mut synced = 0;
    let mut cursor = None;
    loop {
        let page = store
            .sync("alice", &all, cursor.as_deref(), 500)
            .await
            .unwrap();
        assert!(!page.messages.is_empty() && page.messages.len() * big.len() <= bound);
        synced += page.messages.len();
        cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    assert_eq!(synced, 12, "sync pages through everything");

    // history: one conversation of big messages, paged back from the latest.
    let more: Vec<NewMessage> = (0..8)
        .map(|n| {
            let id = format!("h{n}");
            let mut m = msg("grp:g0", "alice", &id);
            m.payload = serde_json::json!({"id": id, "kind": "text", "body": big}).to_string();
            m
        })
        .collect();
    store.store_batch(&more).await.unwrap();
    let page = store
        .history(&conv("grp:g0"), None, None, 100)
        .await
        .unwrap();
    let n = page.messages.len();
    assert!(page.more && n >= 1 && n * big.len() <= bound, "{n}");
    assert_eq!(
        page.messages.last().unwrap().seq,
        9,
        "the latest ones are kept"
    );
}

async fn conversations_with_unread_counts(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    assert!(store
        .conversations("alice", &groups(&["g1"]), None, 100)
        .await
        .unwrap()
        .conversations
        .is_empty());
    store
        .store_batch(&[
            msg("dm:alice:bob", "bob", "d1"),
            msg("dm:alice:bob", "alice", "d2"),
            msg("dm:alice:bob", "bob", "d3"),
        ])
        .await
        .unwrap();
    store
        .store_batch(&[msg("grp:g2", "dave", "x")])
        .await
        .unwrap(); // not alice's group
    let g1: Vec<NewMessage> = (1..=5)
        .map(|i| msg("grp:g1", "dave", &format!("g{i}")))
        .collect();
    store.store_batch(&g1).await.unwrap();
    store
        .store_batch(&[msg("dm:bob:carol", "carol", "c")])
        .await
        .unwrap(); // not alice's DM
    store
        .store_batch(&[msg("dm:alice:carol", "carol", "newest")])
        .await
        .unwrap();

    let list = store
        .conversations("alice", &groups(&["g1", "g3"]), None, 100)
        .await
        .unwrap()
        .conversations;
    let ids: Vec<&str> = list.iter().map(|s| s.conv.as_str()).collect();
    assert_eq!(
        ids,
        vec!["dm:alice:carol", "grp:g1", "dm:alice:bob"],
        "newest last message first"
    );
    assert_eq!(
        (list[0].last_seq, list[0].read_seq, list[0].unread),
        (1, 0, 1)
    );
    assert_eq!((list[1].last_seq, list[1].unread), (5, 5));
    let last = list[1].last.as_ref().unwrap();
    assert_eq!(
        (last.seq, last.id.as_str(), last.from.as_str()),
        (5, "g5", "dave")
    );
    assert_eq!(last.payload["body"], "dave says g5");

    assert_eq!(
        store.mark_read(&conv("grp:g1"), "alice", 3).await.unwrap(),
        3
    );
    assert_eq!(
        store
            .mark_read(&conv("dm:alice:bob"), "alice", 99)
            .await
            .unwrap(),
        3
    );
    let list = store
        .conversations("alice", &groups(&["g1"]), None, 100)
        .await
        .unwrap()
        .conversations;
    let by_id: HashMap<&str, &roost_history::Summary> =
        list.iter().map(|s| (s.conv.as_str(), s)).collect();
    assert_eq!((by_id["grp:g1"].read_seq, by_id["grp:g1"].unread), (3, 2));
    assert_eq!(
        (by_id["dm:alice:bob"].read_seq, by_id["dm:alice:bob"].unread),
        (3, 0)
    );
    // bob's view of the same DM has his own cursor.
    let bob = store
        .conversations("bob", &[], None, 100)
        .await
        .unwrap()
        .conversations;
    assert_eq!(
        bob.iter().map(|s| s.conv.as_str()).collect::<Vec<_>>(),
        vec!["dm:bob:carol", "dm:alice:bob"]
    );
    // bob sent d3, the last message: what you send, you have read.
    assert_eq!((bob[1].read_seq, bob[1].unread), (3, 0));
    // The wire shape.
    let json = serde_json::to_value(&list[0]).unwrap();
    for key in ["conv", "last_seq", "read_seq", "unread", "last"] {
        assert!(json.get(key).is_some(), "{key}");
    }
}

async fn mark_read_is_monotonic_and_clamped(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let c = conv("dm:alice:bob");
    assert_eq!(
        store.mark_read(&c, "alice", 5).await.unwrap(),
        0,
        "no messages yet"
    );
    let batch: Vec<NewMessage> = (1..=4)
        .map(|i| msg("dm:alice:bob", "bob", &format!("m{i}")))
        .collect();
    store.store_batch(&batch).await.unwrap();
    assert_eq!(store.mark_read(&c, "alice", 2).await.unwrap(), 2);
    assert_eq!(
        store.mark_read(&c, "alice", 1).await.unwrap(),
        2,
        "never backwards"
    );
    assert_eq!(store.mark_read(&c, "alice", -7).await.unwrap(), 2);
    assert_eq!(
        store.mark_read(&c, "alice", 1000).await.unwrap(),
        4,
        "clamped to last_seq"
    );
    assert_eq!(
        store.mark_read(&c, "bob", 1).await.unwrap(),
        4,
        "per user, and a sender has read what they sent"
    );
    store
        .store_batch(&[msg("dm:alice:bob", "bob", "m5")])
        .await
        .unwrap();
    assert_eq!(store.mark_read(&c, "alice", 3).await.unwrap(), 4);
    assert_eq!(store.mark_read(&c, "alice", 5).await.unwrap(), 5);
    let summary = &store
        .conversations("alice", &[], None, 100)
        .await
        .unwrap()
        .conversations[0];
    assert_eq!((summary.read_seq, summary.unread), (5, 0));
}

async fn members_to_notify(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let dm = conv("dm:alice:bob");
    assert_eq!(
        store.members_to_notify(&dm, "alice").await.unwrap(),
        vec!["bob"]
    );
    assert_eq!(
        store.members_to_notify(&dm, "bob").await.unwrap(),
        vec!["alice"]
    );
    let g = conv("grp:team");
    assert!(store
        .members_to_notify(&g, "alice")
        .await
        .unwrap()
        .is_empty());
    store
        .store_batch(&[
            msg("grp:team", "carol", "1"),
            msg("grp:team", "bob", "2"),
            msg("grp:team", "carol", "3"),
        ])
        .await
        .unwrap();
    store.mark_read(&g, "erin", 3).await.unwrap(); // a reader who never sent
    store
        .store_batch(&[msg("grp:other", "zoe", "z")])
        .await
        .unwrap();
    assert_eq!(
        store.members_to_notify(&g, "alice").await.unwrap(),
        vec!["bob", "carol", "erin"]
    );
    assert_eq!(
        store.members_to_notify(&g, "carol").await.unwrap(),
        vec!["bob", "erin"]
    );
}

async fn retention_by_count(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let mut batch: Vec<NewMessage> = (1..=10)
        .map(|i| msg("grp:big", "alice", &format!("b{i}")))
        .collect();
    batch.extend((1..=3).map(|i| msg("grp:small", "alice", &format!("s{i}"))));
    store.store_batch(&batch).await.unwrap();
    let keep4 = Retention {
        max_age: None,
        max_messages: Some(4),
    };
    assert_eq!(store.apply_retention(&keep4).await.unwrap(), 6);
    let page = store
        .history(&conv("grp:big"), None, None, 100)
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![7, 8, 9, 10]
    );
    assert!(!page.more);
    assert_eq!(
        store
            .history(&conv("grp:small"), None, None, 100)
            .await
            .unwrap()
            .messages
            .len(),
        3
    );
    assert_eq!(
        store.apply_retention(&keep4).await.unwrap(),
        0,
        "nothing more to do"
    );
    // Seqs are never reused.
    let s = store
        .store_batch(&[msg("grp:big", "alice", "b11")])
        .await
        .unwrap();
    assert_eq!(s[0].seq, 11);
    assert_eq!(store.apply_retention(&keep4).await.unwrap(), 1);
    let page = store
        .history(&conv("grp:big"), None, None, 100)
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![8, 9, 10, 11]
    );
    // Summaries keep counting from the real last seq.
    let list = store
        .conversations("x", &groups(&["big"]), None, 100)
        .await
        .unwrap()
        .conversations;
    assert_eq!((list[0].last_seq, list[0].unread), (11, 11));
    // Keep nothing: the conversation stays, without a last message.
    let keep0 = Retention {
        max_age: None,
        max_messages: Some(0),
    };
    assert_eq!(store.apply_retention(&keep0).await.unwrap(), 7);
    let list = store
        .conversations("x", &groups(&["big"]), None, 100)
        .await
        .unwrap()
        .conversations;
    assert_eq!((list[0].last_seq, list[0].last.is_none()), (11, true));
    assert_eq!(
        store
            .store_batch(&[msg("grp:big", "alice", "b12")])
            .await
            .unwrap()[0]
            .seq,
        12
    );
    assert_eq!(
        store.apply_retention(&Retention::default()).await.unwrap(),
        0
    );
}

async fn retention_by_age(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let store = db.store().await;
    let old: Vec<NewMessage> = (1..=1500)
        .map(|i| msg(["grp:a", "grp:b"][i % 2], "alice", &format!("old{i}")))
        .collect();
    for chunk in old.chunks(500) {
        store.store_batch(chunk).await.unwrap();
    }
    // Age everything stored so far by two days (the head's last_ts too, so ts
    // stays non-decreasing along the log).
    db.execute("UPDATE history_messages SET ts = ts - 172800000")
        .await;
    db.execute("UPDATE history_head SET last_ts = last_ts - 172800000")
        .await;
    let fresh = store
        .store_batch(&[msg("grp:a", "bob", "new1"), msg("grp:b", "bob", "new2")])
        .await
        .unwrap();
    let one_day = Retention {
        max_age: Some(Duration::from_secs(86_400)),
        max_messages: None,
    };
    assert_eq!(store.apply_retention(&one_day).await.unwrap(), 1500);
    for (c, s) in [("grp:a", &fresh[0]), ("grp:b", &fresh[1])] {
        let page = store.history(&conv(c), None, None, 100).await.unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].seq, s.seq);
        assert_eq!(s.seq, 751);
    }
    assert_eq!(store.apply_retention(&one_day).await.unwrap(), 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM history_messages").await, 2);
    // Both limits at once.
    let both = Retention {
        max_age: Some(Duration::from_secs(86_400)),
        max_messages: Some(0),
    };
    assert_eq!(store.apply_retention(&both).await.unwrap(), 2);
}

async fn schema_and_connect_are_repeatable(backend: Backend) {
    let db = &TestDb::new(backend).await;
    let a = db.store().await;
    a.store_batch(&[msg("grp:g", "u", "1")]).await.unwrap();
    a.ping().await.unwrap();
    drop(a);
    // Connecting again (migrations already applied) keeps the data.
    let b = db.store().await;
    assert_eq!(
        b.history(&conv("grp:g"), None, None, 10)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    let (c, d) = tokio::join!(db.store(), db.store());
    c.ping().await.unwrap();
    d.ping().await.unwrap();
    b.close().await;
    let err = b.ping().await.unwrap_err();
    assert!(matches!(err, HistoryError::Database(_)));
}

/// PostgreSQL kills the store's connections (as in a restart or failover):
/// any error is transient, nothing half-written shows, and the store recovers
/// by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_loss_is_transient_and_recovers() {
    let db = TestDb::postgres().await;
    let store = db.store().await;
    store
        .store_batch(&[msg("grp:g", "u", "before")])
        .await
        .unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    for round in 0..3 {
        common::terminate_connections(&name).await;
        let batch = vec![
            msg("grp:g", "u", &format!("r{round}a")),
            msg("grp:g", "u", &format!("r{round}b")),
        ];
        let mut attempts = 0;
        let stored = loop {
            attempts += 1;
            match store.store_batch(&batch).await {
                Ok(s) => break s,
                Err(e) => {
                    assert!(e.is_transient(), "not transient: {e:?}");
                    assert!(attempts < 10, "no recovery: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert_eq!(seqs(&stored), vec![2 + 2 * round, 3 + 2 * round]);
    }
    let page = store
        .history(&conv("grp:g"), None, None, 100)
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
}
