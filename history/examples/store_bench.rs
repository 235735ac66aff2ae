//! Store throughput: inserts N messages in batches of B into a history database
//! and prints messages per second. Not a test: nothing is asserted.
//!
//! ```text
//! cargo run --release -p roost-history --example store_bench -- URL [N] [B] [CONVS] [WRITERS]
//! cargo run --release -p roost-history --example store_bench -- postgres://postgres@127.0.0.1:5432/bench 100000 250
//! cargo run --release -p roost-history --example store_bench -- sqlite:///tmp/bench/history.db 100000 250
//! ```
//!
//! N defaults to 100000, B to 250, CONVS (conversations the messages are spread
//! over, half DMs, half groups) to 100, WRITERS (concurrent tasks, each storing
//! its share of batches) to 1. Message ids are unique per run, so the database
//! may be reused; the numbers are for fresh inserts, not duplicates.

use std::time::Instant;

use roost_history::{Conv, NewMessage, Store};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = args.first().cloned() else {
        eprintln!("usage: store_bench URL [N=100000] [B=250] [CONVS=100] [WRITERS=1]");
        std::process::exit(2);
    };
    let arg = |i: usize, default: usize| -> usize {
        args.get(i)
            .map(|s| s.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (n, b, convs, writers) = (
        arg(1, 100_000),
        arg(2, 250).max(1),
        arg(3, 100).max(1),
        arg(4, 1).max(1),
    );

    let store = Store::connect(&url).await.expect("connect");
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let messages: Vec<NewMessage> = (0..n)
        .map(|i| {
            let c = i % convs;
            let (conv, from) = if c % 2 == 0 {
                (
                    Conv::dm(&format!("user{c}"), &format!("peer{c}")),
                    format!("user{c}"),
                )
            } else {
                (Conv::Group(format!("group{c}")), format!("member{}", i % 7))
            };
            let id = format!("{run}-{i}");
            let payload = serde_json::json!({
                "id": id,
                "kind": "text",
                "body": format!("benchmark message number {i}, about as long as a short chat line"),
            })
            .to_string();
            NewMessage {
                conv,
                from,
                id,
                payload,
            }
        })
        .collect();
    let batches: Vec<Vec<NewMessage>> = messages.chunks(b).map(|c| c.to_vec()).collect();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let mine: Vec<Vec<NewMessage>> = batches.iter().skip(w).step_by(writers).cloned().collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(mine.len());
            for batch in &mine {
                let t = Instant::now();
                let stored = store.store_batch(batch).await.expect("store_batch");
                assert!(stored.iter().all(|s| !s.duplicate));
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("writer"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct =
        |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "backend={:?} messages={n} batch={b} conversations={convs} writers={writers}: {:.2} s, {:.0} msgs/s; batch commit p50 {:.1} ms, p99 {:.1} ms",
        store.backend(),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
    );
    store.close().await;
}
