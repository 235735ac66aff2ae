//! Shared subscriptions across the cluster (docs/cluster.md, "Shared subscriptions"):
//! `$share/{group}/{filter}` gets each message once in the whole cluster, from a member on
//! the node where the message entered when there is one, while plain subscribers beside
//! the group get every message. Real `roost serve` processes, a private three-server NATS
//! cluster, one PostgreSQL history.

mod common;

use common::client::{Client, Mqtt5};
use common::cluster_toml;
use common::nats::TestCluster;
use common::pg::PgDb;
use common::Node;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long interest may take to reach NATS after a SUBSCRIBE.
const INTEREST_WAIT: Duration = Duration::from_secs(15);

/// A node of the cluster where anyone may use topics under `jobs/`.
fn node(nats: &TestCluster, server: usize, node_id: &str, db: &PgDb) -> Node {
    let jobs = "\n[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"jobs/#\"\n";
    Node::builder()
        .toml(&cluster_toml(nats, server, node_id, db, jobs))
        .start()
}

/// Waits until node `node_id`'s NATS connection holds exactly `want` (subject, queue).
fn wait_subscriptions(nats: &TestCluster, node_id: &str, want: &[(&str, Option<&str>)]) {
    let name = format!("roost-{node_id}");
    let mut want: Vec<(String, Option<String>)> = want
        .iter()
        .map(|(s, q)| (s.to_string(), q.map(str::to_owned)))
        .collect();
    want.sort();
    let deadline = Instant::now() + INTEREST_WAIT;
    loop {
        let held: Vec<_> = nats
            .queue_subscriptions(&name)
            .into_iter()
            .filter(|(subject, _)| subject.starts_with("roost.m.jobs"))
            .collect();
        if held == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} holds {held:?}, not {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The NATS queue of `$share/g/jobs/+` (hex of `g/jobs/+`).
const QUEUE: &str = "share-672f6a6f62732f2b";

async fn member(node: &Node, user: &str, filter: &str) -> Client<Mqtt5> {
    let mut client = Client::<Mqtt5>::user(node, user).await;
    let granted = client.subscribe(filter).await;
    assert!(
        matches!(
            granted,
            rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
        ),
        "{user}: {filter} refused: {granted:?}"
    );
    client
}

fn payload(publish: &rumqttc::v5::mqttbytes::v5::Publish) -> String {
    String::from_utf8_lossy(&publish.payload).into_owned()
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

/// The payload of the next publish `client` gets before `deadline`, if any.
async fn publish_before(
    client: &mut Client<Mqtt5>,
    deadline: tokio::time::Instant,
) -> Option<String> {
    loop {
        match client.recv_until(deadline).await? {
            Ok(rumqttc::v5::mqttbytes::v5::Packet::Publish(p)) => return Some(payload(&p)),
            Ok(_) => {}
            Err(e) => panic!("connection ended: {e}"),
        }
    }
}

/// What two members of one group receive until, together, they have every one of
/// `expected` (duplicates included, to be found by the caller).
async fn group_receives(
    one: &mut Client<Mqtt5>,
    two: &mut Client<Mqtt5>,
    expected: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let (mut got_one, mut got_two) = (Vec::new(), Vec::new());
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !expected.is_subset(&seen) {
        let got = tokio::select! {
            p = publish_before(one, deadline) => p.map(|p| (p, &mut got_one)),
            p = publish_before(two, deadline) => p.map(|p| (p, &mut got_two)),
        };
        let Some((p, to)) = got else {
            panic!(
                "the group did not get everything; first member: {got_one:?}\nsecond: {got_two:?}"
            );
        };
        seen.insert(p.clone());
        to.push(p);
    }
    (got_one, got_two)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_group_gets_each_message_once_across_the_cluster() {
    let nats = TestCluster::start();
    let db = PgDb::create();
    let a = node(&nats, 0, "a", &db);
    let b = node(&nats, 1, "b", &db);
    let c = node(&nats, 2, "c", &db);
    let mut on_a = member(&a, "worker-a", "$share/g/jobs/+").await;
    let mut on_b = member(&b, "worker-b", "$share/g/jobs/+").await;
    let mut plain = member(&b, "watcher", "jobs/+").await;
    wait_subscriptions(&nats, "a", &[("roost.m.jobs.*", Some(QUEUE))]);
    wait_subscriptions(
        &nats,
        "b",
        &[("roost.m.jobs.*", None), ("roost.m.jobs.*", Some(QUEUE))],
    );

    let from_a = Client::<Mqtt5>::user(&a, "pub-a").await;
    let from_b = Client::<Mqtt5>::user(&b, "pub-b").await;
    let from_c = Client::<Mqtt5>::user(&c, "pub-c").await;
    let n = 20;
    for i in 1..=n {
        from_a.publish("jobs/a", &format!("a{i}")).await;
        from_b.publish("jobs/b", &format!("b{i}")).await;
        from_c.publish("jobs/c", &format!("c{i}")).await;
    }
    let all: Vec<String> = [numbered("a", n), numbered("b", n), numbered("c", n)].concat();
    let expected: BTreeSet<String> = all.iter().cloned().collect();

    let (got_a, got_b) = group_receives(&mut on_a, &mut on_b, &expected).await;
    let mut together = [got_a.clone(), got_b.clone()].concat();
    together.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(together, want, "each message once to the group");
    // The entry node's member is preferred; node c has none, so NATS picks one of the two.
    assert!(
        got_a.iter().all(|p| !p.starts_with('b')) && got_b.iter().all(|p| !p.starts_with('a')),
        "a message went to the other node's member although its entry node has one:\n\
         on a: {got_a:?}\non b: {got_b:?}"
    );
    for prefix in ["a", "b"] {
        let on = if prefix == "a" { &got_a } else { &got_b };
        let local: Vec<&String> = on.iter().filter(|p| p.starts_with(prefix)).collect();
        assert_eq!(local.len(), n, "{prefix}: {on:?}");
    }

    // The plain subscriber beside the group got every message, once: the per-publisher
    // order holds, so each sender's last message comes after all its others.
    let mut seen = Vec::new();
    while seen.len() < all.len() {
        seen.push(payload(&plain.next_publish().await));
    }
    seen.sort();
    assert_eq!(seen, want, "the plain subscriber got every message once");

    // A last message from each node: nothing arrived twice after all (one copy each).
    let ends: Vec<String> = ["end-a", "end-b", "end-c"].map(String::from).to_vec();
    for (from, end) in [&from_a, &from_b, &from_c].into_iter().zip(&ends) {
        from.publish("jobs/end", end).await;
    }
    let expected: BTreeSet<String> = ends.iter().cloned().collect();
    let (late_a, late_b) = group_receives(&mut on_a, &mut on_b, &expected).await;
    let mut late = [late_a, late_b].concat();
    late.sort();
    assert_eq!(late, ends, "the group got something twice");
    let mut late = Vec::new();
    while late.len() < ends.len() {
        late.push(payload(&plain.next_publish().await));
    }
    late.sort();
    assert_eq!(late, ends, "the plain subscriber got something twice");

    // A retained publish on c (no member there) reaches the group once, live, and the
    // plain subscriber once (it crosses through the retained stream for plain
    // subscribers, and live for the groups only).
    from_c
        .client
        .publish(
            "jobs/kept",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            true,
            "kept",
        )
        .await
        .expect("retained publish");
    from_a.publish("jobs/end", "after-kept").await;
    let expected: BTreeSet<String> = ["kept", "after-kept"].map(String::from).into();
    let (kept_a, kept_b) = group_receives(&mut on_a, &mut on_b, &expected).await;
    let mut kept = [kept_a, kept_b].concat();
    kept.sort();
    assert_eq!(
        kept,
        ["after-kept", "kept"],
        "the group got the retained one once"
    );
    let mut kept = Vec::new();
    while kept.len() < 2 {
        kept.push(payload(&plain.next_publish().await));
    }
    kept.sort();
    assert_eq!(
        kept,
        ["after-kept", "kept"],
        "the plain subscriber got it once"
    );
}
