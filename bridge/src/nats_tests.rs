//! The NATS side of the bridge against a real private NATS cluster (three servers with
//! JetStream): two "nodes" connected to different servers exchange messages by interest,
//! heartbeat, keep retained messages, and survive the loss of a server.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use roost_config::{Cluster, Secret};
use tokio::time::timeout;

use crate::dedup::Dedup;
use crate::headers::Meta;
use crate::interest::{Action, Interest};
use crate::liveness::Liveness;
use crate::nats::{Incoming, Nats};
use crate::subject::Subjects;
use crate::test_cluster::TestCluster;

const WAIT: Duration = Duration::from_secs(30);

fn cluster_config(node: &str, urls: Vec<String>) -> Cluster {
    Cluster {
        node_id: Some(node.into()),
        nats: urls,
        subject_prefix: "roosttest".into(),
        node_timeout: Duration::from_secs(3),
        ..Cluster::default()
    }
}

async fn node(node: &str, urls: Vec<String>) -> Nats {
    Nats::connect(&cluster_config(node, urls))
        .await
        .unwrap_or_else(|e| panic!("node {node} connects: {e}"))
}

/// Subscribes `receiver` to everything its `filters` need, as the bridge would.
async fn subscribe(receiver: &Nats, filters: &[&str]) -> Vec<async_nats::Subscriber> {
    let mut interest = Interest::new(Subjects::new("roosttest"));
    let mut subscribers = Vec::new();
    for filter in filters {
        for action in interest.subscribe(filter) {
            let Action::Subscribe(sub) = action else {
                panic!("{action:?}")
            };
            subscribers.push(receiver.subscribe(&sub).await.unwrap());
        }
    }
    subscribers
}

/// Waits until `receiver`'s earlier subscriptions are known on `sender`'s server: NATS
/// propagates interest between servers asynchronously but in order, so once a probe
/// subscribed after them gets through, they do too.
async fn interest_propagated(sender: &Nats, receiver: &Nats) {
    let mut probe = subscribe(receiver, &["probe/sync"]).await.remove(0);
    let deadline = Instant::now() + WAIT;
    loop {
        sender
            .publish("probe/sync", Meta::default(), Bytes::new())
            .await
            .unwrap();
        if timeout(Duration::from_millis(100), probe.next())
            .await
            .is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "interest never propagated");
    }
}

async fn next(subscribers: &mut [async_nats::Subscriber], receiver: &Nats) -> Incoming {
    let merged = futures_util::stream::select_all(subscribers.iter_mut());
    let mut merged = std::pin::pin!(merged);
    let message = timeout(WAIT, merged.next())
        .await
        .expect("a message in time")
        .expect("subscription open");
    receiver.incoming(&message).expect("a roost message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_cross_servers_to_nodes_with_interest() {
    let nats = TestCluster::start();
    let a = node("a", vec![nats.url(0)]).await;
    let b = node("b", vec![nats.url(2)]).await;

    let mut subs = subscribe(&b, &["im/c/+", "odd/#"]).await;
    interest_propagated(&a, &b).await;

    let meta = Meta {
        qos: 1,
        content_type: Some("application/json".into()),
        response_topic: Some("im/sys/alice".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        user_properties: vec![("k".into(), "v w".into())],
        ..Meta::default()
    };
    // Nobody on b wants `other/...`: it does not reach b, the next one does.
    a.publish("other/topic", meta.clone(), "no".into())
        .await
        .unwrap();
    a.publish("im/c/x", meta.clone(), "hello".into())
        .await
        .unwrap();
    let got = next(&mut subs, &b).await;
    assert_eq!(got.topic, "im/c/x");
    assert_eq!(got.payload, "hello");
    assert_eq!(
        got.meta,
        Meta {
            origin: "a".into(),
            seq: got.meta.seq,
            ..meta
        },
        "origin and MQTT properties cross"
    );
    let mut last_seq = got.meta.seq;

    // Odd topics come out as they went in.
    let odd = [
        "odd/a.b",
        "odd/a b",
        "odd/*",
        "odd/>",
        "odd//",
        "odd/",
        "odd/%2E",
        "odd/$x",
        "odd/ünï/日本/🐦",
        "odd/tab\there",
    ];
    for topic in odd {
        a.publish(topic, Meta::default(), Bytes::from(topic))
            .await
            .unwrap();
    }
    for topic in odd {
        let got = next(&mut subs, &b).await;
        assert_eq!(got.topic, topic);
        assert_eq!(got.payload, topic);
        assert_eq!(
            got.meta.seq,
            last_seq + 1,
            "a's sequence counts its messages"
        );
        last_seq = got.meta.seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_filters_deliver_one_copy() {
    let nats = TestCluster::start();
    let a = node("a", vec![nats.url(0)]).await;
    let b = node("b", vec![nats.url(1)]).await;

    // `a/+` and `a/#` both match `a/b`: NATS sends one copy per subscription.
    let mut subs = subscribe(&b, &["a/+", "a/#"]).await;
    interest_propagated(&a, &b).await;
    a.publish("a/b", Meta::default(), "1".into()).await.unwrap();
    a.publish("a/c", Meta::default(), "2".into()).await.unwrap();

    let mut dedup = Dedup::new(1024);
    let mut delivered = Vec::new();
    for _ in 0..4 {
        let got = next(&mut subs, &b).await;
        if dedup.first(&got.meta.origin, got.meta.seq) {
            delivered.push(got.payload);
        }
    }
    delivered.sort();
    assert_eq!(delivered, ["1", "2"], "four copies, two messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_reach_every_node() {
    let nats = TestCluster::start();
    let a = node("a", vec![nats.url(0)]).await;
    let b = node("b", vec![nats.url(2)]).await;

    a.heartbeat("{}".into()).await.unwrap();
    let mut beats = std::pin::pin!(b.heartbeats().await.unwrap());
    let mut liveness = Liveness::new("b", Duration::from_secs(3));
    b.heartbeat("{}".into()).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while liveness.alive(Instant::now()) != ["a", "b"] {
        let beat = timeout(WAIT, beats.next()).await.unwrap().unwrap();
        liveness.heard(&beat.node, Instant::now());
        assert!(Instant::now() < deadline);
    }
    // A later heartbeat of a is seen live, not only the stored one.
    a.heartbeat("{}".into()).await.unwrap();
    let last = loop {
        let beat = timeout(WAIT, beats.next()).await.unwrap().unwrap();
        if beat.node == "a" {
            break beat.revision;
        }
    };
    // A watch made again delivers that heartbeat again, with the same revision: the judge
    // tells it from a new one by that (`Liveness::replayed`).
    let mut again = std::pin::pin!(b.heartbeats().await.unwrap());
    loop {
        let beat = timeout(WAIT, again.next()).await.unwrap().unwrap();
        if beat.node == "a" {
            assert_eq!(beat.revision, last);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_keeps_the_last_value_per_topic() {
    let nats = TestCluster::start();
    let a = node("a", vec![nats.url(0)]).await;
    let b = node("b", vec![nats.url(2)]).await;
    let meta = Meta {
        qos: 1,
        content_type: Some("application/json".into()),
        ..Meta::default()
    };

    let first = a
        .retain("im/presence/alice", meta.clone(), "online".into(), None)
        .await
        .unwrap();
    let second = a
        .retain("im/presence/alice", meta.clone(), "offline".into(), None)
        .await
        .unwrap();
    a.retain("im/presence/bob", meta.clone(), "online".into(), None)
        .await
        .unwrap();
    a.retain("im/presence", meta.clone(), "parent".into(), None)
        .await
        .unwrap();
    assert!(second > first);

    let found = b.retained("im/presence/+", 100).await.unwrap();
    let mut seen: Vec<(String, Bytes)> = found
        .iter()
        .map(|m| (m.topic.clone(), m.payload.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("im/presence/alice".to_string(), Bytes::from("offline")),
            ("im/presence/bob".to_string(), Bytes::from("online")),
        ],
        "last value per topic, nothing outside the filter"
    );
    let alice = found.iter().find(|m| m.topic.ends_with("alice")).unwrap();
    assert_eq!(alice.seq, second);
    assert!(alice.meta.retain);
    assert_eq!(alice.meta.origin, "a");
    assert_eq!(alice.meta.content_type, meta.content_type);

    // `#` also matches its parent level, as in MQTT; `max` bounds the answer.
    assert_eq!(b.retained("im/presence/#", 100).await.unwrap().len(), 3);
    assert_eq!(b.retained("im/presence/#", 2).await.unwrap().len(), 2);

    // An empty payload deletes.
    b.retain("im/presence/bob", Meta::default(), Bytes::new(), None)
        .await
        .unwrap();
    let left: Vec<String> = b
        .retained("im/presence/+", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.topic)
        .collect();
    assert_eq!(left, ["im/presence/alice"]);
    assert!(b.retained("nothing/#", 100).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_of_a_dead_node_never_overwrites_a_newer_online() {
    let nats = TestCluster::start();
    let dead = node("dead", vec![nats.url(0)]).await;
    let survivor = node("survivor", vec![nats.url(1)]).await;
    let other = node("other", vec![nats.url(2)]).await;

    let seen = dead
        .retain("im/presence/alice", Meta::default(), "online".into(), None)
        .await
        .unwrap();
    // alice reconnects on another node before the survivor acts on what it saw.
    other
        .retain("im/presence/alice", Meta::default(), "online".into(), None)
        .await
        .unwrap();
    let refused = survivor
        .retain(
            "im/presence/alice",
            Meta::default(),
            "offline".into(),
            Some(seen),
        )
        .await;
    assert!(refused.is_err(), "stale offline must not be stored");
    let now = survivor.retained("im/presence/alice", 10).await.unwrap();
    assert_eq!(now[0].payload, "online");
    assert_eq!(now[0].meta.origin, "other");

    // Without a newer message, the conditional offline goes through.
    let current = now[0].seq;
    survivor
        .retain(
            "im/presence/alice",
            Meta::default(),
            "offline".into(),
            Some(current),
        )
        .await
        .unwrap();
    let now = other.retained("im/presence/alice", 10).await.unwrap();
    assert_eq!(now[0].payload, "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_server_keeps_messages_and_retained() {
    let mut nats = TestCluster::start();
    // a knows two servers, as `cluster.nats` may list a subset.
    let a = node("a", vec![nats.url(0), nats.url(1)]).await;
    let b = node("b", vec![nats.url(2)]).await;
    a.retain("keep/me", Meta::default(), "kept".into(), None)
        .await
        .unwrap();
    let mut subs = subscribe(&b, &["live/#"]).await;
    interest_propagated(&a, &b).await;

    nats.kill(0);

    // a reconnects to the other server it knows and its messages reach b again. Core NATS
    // is at most once: a publish written to the dying connection before a noticed it is
    // gone is lost, so a publishes until one arrives.
    let deadline = Instant::now() + WAIT;
    let got = loop {
        a.publish("live/after", Meta::default(), "still here".into())
            .await
            .unwrap();
        let merged = futures_util::stream::select_all(subs.iter_mut());
        let mut merged = std::pin::pin!(merged);
        if let Ok(Some(message)) = timeout(Duration::from_millis(200), merged.next()).await {
            break b.incoming(&message).expect("a roost message");
        }
        assert!(
            Instant::now() < deadline,
            "no message crossed after the failover"
        );
    };
    assert_eq!(got.topic, "live/after");
    assert!(b.is_connected());

    // The retained stream is replicated: two of three servers keep serving it. A new
    // JetStream leader may take a moment to be elected; poll until it answers (bounded
    // more loosely than WAIT: on a loaded 2-core machine the election once took over 30 s).
    let deadline = Instant::now() + 2 * WAIT;
    let kept = loop {
        match b.retained("keep/+", 10).await {
            Ok(found) => break found,
            Err(error) => assert!(Instant::now() < deadline, "{error}"),
        }
    };
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].payload, "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_used_and_bad_ones_refused() {
    let nats = TestCluster::start_with_token(Some("s3cret-token"));
    let with_token = |token: &str| Cluster {
        nats_token: Some(Secret::new(token.into())),
        ..cluster_config("a", vec![nats.url(0)])
    };
    assert!(Nats::connect(&with_token("s3cret-token")).await.is_ok());

    let error = Nats::connect(&with_token("wrong"))
        .await
        .err()
        .expect("refused");
    let shown = error.to_string();
    assert!(shown.contains("connecting to NATS"), "{shown}");
    assert!(!shown.contains("wrong"), "the token is not shown: {shown}");
    let error = Nats::connect(&cluster_config("a", vec![nats.url(0)]))
        .await
        .err()
        .expect("no credentials, refused");
    assert!(error.to_string().contains("connecting to NATS"), "{error}");

    let missing = Cluster {
        nats_creds: Some("/nonexistent/roost.creds".into()),
        ..cluster_config("a", vec![nats.url(0)])
    };
    let error = Nats::connect(&missing).await.err().expect("refused");
    assert!(error.to_string().contains("cluster.nats_creds"), "{error}");
}

/// A heartbeat watch whose consumer failed for good (here: its bucket's stream deleted
/// under it) ends, so that the judge watches again. It used to skip the error, and a
/// failed consumer fails at every read at once: the reader spun without yielding its
/// thread and logged without end (72 GB in 12 minutes in a benchmark).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_heartbeat_watch_ends() {
    let nats = TestCluster::start();
    let a = node("a", vec![nats.url(0)]).await;
    a.heartbeat("{}".into()).await.unwrap();
    let mut beats = Box::pin(a.heartbeats().await.unwrap());
    let beat = timeout(WAIT, beats.next()).await.unwrap().unwrap();
    assert_eq!(beat.node, "a");

    let js = async_nats::jetstream::new(a.client().clone());
    js.delete_stream("KV_roosttest_nodes").await.unwrap();
    // On a thread of its own: a reader that spins never returns from its poll, and would
    // hold a worker of this runtime (and its shutdown) forever.
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { while beats.next().await.is_some() {} });
        let _ = done.send(());
    });
    ended
        .recv_timeout(Duration::from_secs(120))
        .expect("the failed watch ends");
}
