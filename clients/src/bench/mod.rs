//! `roost-cli bench`: simulated users against a broker, measured.
//!
//! Scenarios:
//! - `connections`: N signed-in users subscribed as a phone would (inbox, own-sent, sys and
//!   a few presence topics), then idle. Reports the connect rate and the broker's memory.
//! - `dm`: the same users, then each sends M direct messages at QoS 1, one every
//!   `--interval`, to random others. Reports end-to-end latency and sent / received /
//!   lost / duplicated counts, and the broker's memory before and after.
//!
//! One process drives all users: one small task per user, no thread per client. With
//! `--plain` it runs the same topic shapes against any MQTT broker (e.g. Mosquitto).

mod report;
mod wire;

use crate::args::ConnArgs;
use crate::identity;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rand::Rng;
use report::{Report, Stats};
use rumqttc::mqttbytes::v4::Packet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use wire::Wire;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Connections,
    Dm,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Simulated users (one connection each).
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// `dm`: messages each user sends.
    #[arg(long, default_value_t = 10)]
    pub messages: u32,
    /// `dm`: time between one user's messages (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = crate::args::parse_duration)]
    pub interval: Duration,
    /// Presence topics each user watches (friends online).
    #[arg(long, default_value_t = 3)]
    pub presence: u32,
    /// User ids are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "u")]
    pub prefix: String,
    /// Source addresses to connect from, comma separated (more local ports than one
    /// address has). Default: 127.0.0.1-4 above 20,000 users, else the OS's choice.
    #[arg(long, value_delimiter = ',')]
    pub sources: Vec<IpAddr>,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// `connections`: how long to hold the idle connections before measuring.
    #[arg(long, default_value = "0s", value_parser = crate::args::parse_duration)]
    pub hold: Duration,
    /// The broker's process id, to report its memory (RSS) and CPU time.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What every simulated user needs to know.
struct Plan {
    args: BenchArgs,
    broker: SocketAddr,
    sources: Vec<IpAddr>,
    /// HS256 secret to mint each user's token; `None` with `--plain`.
    secret: Option<String>,
    epoch: Instant,
}

/// Where the run is; users follow it through a watch channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd)]
enum Phase {
    Connect,
    Send,
    Stop,
}

pub async fn run(conn: &ConnArgs, args: BenchArgs) -> Result<()> {
    let broker = (conn.host.as_str(), conn.port)
        .to_socket_addrs()?
        .next()
        .context("broker address")?;
    let secret = match (conn.plain, &conn.secret) {
        (true, _) => None,
        (false, Some(secret)) => Some(secret.clone()),
        (false, None) => bail!("bench mints a token per user: give --secret (or --plain)"),
    };
    if args.users < 2 {
        bail!("--users must be at least 2");
    }
    let sources = match (&args.sources[..], args.users) {
        ([], n) if n > 20_000 => (1..=4).map(|i| IpAddr::from([127, 0, 0, i])).collect(),
        (s, _) => s.to_vec(),
    };
    let plan = Arc::new(Plan {
        args: args.clone(),
        broker,
        sources,
        secret,
        epoch: Instant::now(),
    });
    let stats = Arc::new(Stats::default());
    let mut report = Report::new(&args, broker, plan.args.broker_pid);

    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.users as usize);
    for i in 0..args.users {
        let (plan, stats, phase, gate) =
            (plan.clone(), stats.clone(), phase_rx.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = user(i, &plan, &stats, phase, gate).await {
                stats.fail(e);
            }
        }));
    }

    // Connect everyone.
    progress_until(&stats, &report, |s| {
        s.connected.load(Ordering::Relaxed) + s.failed.load(Ordering::Relaxed)
            >= u64::from(args.users)
    })
    .await;
    report.connected(&stats, started.elapsed());
    if let Some(e) = stats.first_error() {
        let _ = phase_tx.send(Phase::Stop);
        bail!(
            "{} of {} users failed to connect; first error: {e}",
            stats.failed.load(Ordering::Relaxed),
            args.users
        );
    }
    if args.scenario == Scenario::Connections {
        tokio::time::sleep(args.hold).await;
        report.measure_idle();
    } else {
        report.measure_idle();
        let sending = Instant::now();
        let _ = phase_tx.send(Phase::Send);
        let total = u64::from(args.users) * u64::from(args.messages);
        progress_until(&stats, &report, |s| {
            s.acked.load(Ordering::Relaxed) + s.failed.load(Ordering::Relaxed) >= total
        })
        .await;
        // Deliveries trail the acks a little; wait until they stop coming.
        let mut last = (stats.received.load(Ordering::Relaxed), Instant::now());
        while stats.received.load(Ordering::Relaxed) < total
            && last.1.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = stats.received.load(Ordering::Relaxed);
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        report.sent(&stats, sending.elapsed());
    }
    let _ = phase_tx.send(Phase::Stop);
    for task in tasks {
        let _ = task.await;
    }
    report.print(plan.args.json);
    Ok(())
}

/// Prints a progress line every second until `done`.
async fn progress_until(stats: &Stats, report: &Report, done: impl Fn(&Stats) -> bool) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => report.progress(stats),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if done(stats) {
            return;
        }
    }
}

/// One simulated user: connect, subscribe like a phone, then chat when told to.
async fn user(
    i: u32,
    plan: &Plan,
    stats: &Stats,
    mut phase: watch::Receiver<Phase>,
    gate: Arc<Semaphore>,
) -> Result<()> {
    let args = &plan.args;
    let me = format!("{}{i}", args.prefix);
    let token = match &plan.secret {
        Some(secret) => Some(identity::mint(
            secret,
            &me,
            &[],
            "user",
            Duration::from_secs(24 * 3600),
        )?),
        None => None,
    };
    let source = (!plan.sources.is_empty()).then(|| plan.sources[i as usize % plan.sources.len()]);
    let mut filters = vec![
        format!("im/dm/{me}/+"),
        format!("im/dm/+/{me}"),
        format!("im/sys/{me}"),
    ];
    for _ in 0..args.presence {
        let friend = rand::thread_rng().gen_range(0..args.users);
        filters.push(format!("im/presence/{}{friend}", args.prefix));
    }

    let mut wire = {
        let _permit = gate.acquire().await?;
        let login = token.as_deref().map(|t| (me.as_str(), t));
        let mut wire = Wire::connect(plan.broker, source, &me, login, 60).await?;
        wire.subscribe(&filters).await?;
        wire
    };
    stats.connected.fetch_add(1, Ordering::Relaxed);

    let mut seen = std::collections::HashSet::new();
    let mut sent = 0u32;
    // Spread the first messages over one interval so users don't send in lockstep.
    let offset = args.interval.mul_f64(rand::thread_rng().gen::<f64>());
    let mut next_send = tokio::time::Instant::now() + offset;
    let mut keepalive = tokio::time::interval(Duration::from_secs(30));
    loop {
        let sending =
            *phase.borrow() == Phase::Send && args.scenario == Scenario::Dm && sent < args.messages;
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Stop { return Ok(()); }
                next_send = tokio::time::Instant::now() + offset;
            }
            packet = wire.recv() => {
                match packet? {
                    Packet::Publish(p) => {
                        wire.ack_delivery(&p);
                        stats.delivery(&me, &p.topic, &p.payload, plan.epoch, &mut seen);
                    }
                    Packet::PubAck(_) => { stats.acked.fetch_add(1, Ordering::Relaxed); }
                    _ => {}
                }
                while let Some(packet) = wire.try_decode()? {
                    if let Packet::Publish(p) = packet {
                        wire.ack_delivery(&p);
                        stats.delivery(&me, &p.topic, &p.payload, plan.epoch, &mut seen);
                    } else if let Packet::PubAck(_) = packet {
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            () = tokio::time::sleep_until(next_send), if sending => {
                let to = loop {
                    let j = rand::thread_rng().gen_range(0..args.users);
                    if j != i { break j; }
                };
                let id = format!("{i}-{sent}");
                let payload = serde_json::json!({
                    "id": id,
                    "kind": "text",
                    "body": "bench",
                    "ts": crate::payload::now_ms(),
                    "bench_us": plan.epoch.elapsed().as_micros() as u64,
                });
                wire.publish(&format!("im/dm/{}{to}/{me}", args.prefix), payload.to_string().into_bytes())?;
                sent += 1;
                stats.sent.fetch_add(1, Ordering::Relaxed);
                next_send += args.interval;
            }
            _ = keepalive.tick() => wire.ping(),
        }
        wire.flush().await?;
    }
}
