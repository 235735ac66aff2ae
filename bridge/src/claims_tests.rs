//! Client-id claims against a real private NATS cluster: two nodes on different servers
//! claiming one client id at the same moment read all claims in one and the same order,
//! which is what lets both agree on the winner (`claims`).

use std::sync::Arc;
use std::time::Duration;

use roost_config::Cluster;
use tokio::time::timeout;

use crate::claims::{Claim, ClaimWatch, Claims};
use crate::nats::Nats;
use crate::test_cluster::TestCluster;

const WAIT: Duration = Duration::from_secs(30);

async fn claims(node: &str, url: String) -> Claims {
    let cluster = Cluster {
        node_id: Some(node.into()),
        nats: vec![url],
        subject_prefix: "roosttest".into(),
        node_timeout: Duration::from_secs(3),
        ..Cluster::default()
    };
    let nats = Nats::connect(&cluster)
        .await
        .unwrap_or_else(|e| panic!("node {node} connects: {e}"));
    Claims::new(Arc::new(nats))
}

async fn read(watch: &mut ClaimWatch, n: usize) -> Vec<Claim> {
    let mut claims = Vec::new();
    while claims.len() < n {
        let claim = timeout(WAIT, watch.next())
            .await
            .expect("a claim in time")
            .expect("the reader is open")
            .expect("a good claim");
        claims.push(claim);
    }
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_claims_are_read_in_one_order_everywhere() {
    let nats = TestCluster::start();
    let a = claims("a", nats.url(0)).await;
    let b = claims("b", nats.url(2)).await;
    let mut on_a = a.watch().await.unwrap();
    let mut on_b = b.watch().await.unwrap();
    let rounds = 20;
    for epoch in 1..=rounds {
        let (from_a, from_b) = tokio::join!(
            a.announce("dev/ä x", epoch),
            b.announce("dev/ä x", 1000 + epoch)
        );
        from_a.unwrap();
        from_b.unwrap();
    }
    let seen_a = read(&mut on_a, 2 * rounds as usize).await;
    let seen_b = read(&mut on_b, 2 * rounds as usize).await;
    let order = |seen: &[Claim]| -> Vec<(String, u64)> {
        seen.iter().map(|c| (c.node.clone(), c.epoch)).collect()
    };
    assert_eq!(order(&seen_a), order(&seen_b), "both nodes read one order");
    for claim in &seen_a {
        assert_eq!(claim.client_id, "dev/ä x");
        assert_eq!(claim.own, claim.node == "a", "{claim:?}");
    }
    for claim in &seen_b {
        assert_eq!(claim.own, claim.node == "b", "{claim:?}");
    }
}

/// A reader replaced (after it ended) starts after the last claim it read, or where it
/// started if it read none, so no claim is missed; a reader whose consumer failed for good (here: the claims stream deleted
/// under it) ends, instead of failing at every read (its caller looped on it at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_reader_misses_no_claim_and_a_failed_one_ends() {
    let cluster = TestCluster::start();
    let nats = Arc::new(
        Nats::connect(&Cluster {
            node_id: Some("a".into()),
            nats: vec![cluster.url(0)],
            subject_prefix: "roosttest".into(),
            ..Cluster::default()
        })
        .await
        .expect("connects"),
    );
    let a = Claims::new(nats.clone());
    let mut first = a.watch().await.unwrap();
    a.announce("x", 1).await.unwrap();
    assert_eq!(read(&mut first, 1).await[0].epoch, 1);
    // Claims the first reader has not read when it is replaced.
    a.announce("x", 2).await.unwrap();
    a.announce("x", 3).await.unwrap();
    let mut second = a.watch_after(first.last_seq()).await.unwrap();
    drop(first);
    let epochs: Vec<u64> = read(&mut second, 2).await.iter().map(|c| c.epoch).collect();
    assert_eq!(epochs, [2, 3]);
    // A reader replaced before it read any claim resumes from where it started.
    let unread = a.watch().await.unwrap();
    a.announce("x", 4).await.unwrap();
    let mut third = a.watch_after(unread.last_seq()).await.unwrap();
    drop(unread);
    assert_eq!(read(&mut third, 1).await[0].epoch, 4);

    let stream = nats.claims_stream().cached_info().config.name.clone();
    let js = async_nats::jetstream::new(nats.client().clone());
    js.delete_stream(&stream).await.unwrap();
    let deadline = std::time::Instant::now() + 4 * WAIT;
    loop {
        if let Ok(None) = timeout(WAIT, second.next()).await {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failed reader does not end"
        );
    }
}
