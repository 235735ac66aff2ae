//! `roost-cli bench`: simulated users against a broker, measured.
//!
//! Scenarios:
//! - `connections`: N signed-in users subscribed as a phone would (inbox, own-sent, sys and
//!   a few presence topics), then idle. Reports the connect rate and the broker's memory.
//! - `dm`: the same users, then each sends `--messages` direct messages at QoS 1, one every
//!   `--interval`, to random others. Reports end-to-end latency and sent / received /
//!   lost / duplicated counts, and the broker's memory and CPU.
//! - `group`: `--groups` G groups of `--members` M users; each member also subscribes to
//!   `im/grp/{g}/+` and sends `--messages` to `im/grp/{g}/{me}`. Each message is due to the
//!   M - 1 other members (fan-out latency, per recipient) and once back to its sender.
//!
//! `--interval 0` sends as fast as the broker acknowledges, `--inflight` messages per user
//! at a time (throughput); otherwise sending is paced (open loop: latency under a load).
//!
//! One process drives its users with one small task each, no thread per client. A process
//! holds fewer sockets than its open-file limit; `--processes N` splits the users over N
//! processes ([`fleet`]). With `--plain` the same topic shapes run against any MQTT broker
//! (e.g. Mosquitto), each user then publishing its own retained presence (online, and
//! offline as its last will), which a roost node does for signed-in users.
//!
//! Live progress goes to stderr once a second, the summary to stdout (`--json`: one object).

mod fleet;
mod report;
mod user;
mod wire;

use crate::args::ConnArgs;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use fleet::{Children, Fleet, Local};
use report::{Counters, Histogram, Report};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Connections,
    Dm,
    Group,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    roost-cli --secret S bench connections --users 10000 --broker-pid PID\n  \
    roost-cli --secret S bench dm --users 4000 --messages 6 --interval 10s\n  \
    roost-cli --secret S bench group --groups 100 --members 20 --messages 5 --interval 5s\n  \
    roost-cli --plain --port 18830 bench dm --users 2000 --messages 500 --interval 0\n  \
    roost-cli --secret S bench dm --nodes 127.0.0.1:1883,127.0.0.1:1884 --users 4000 \
    --messages 6 --interval 10s (a cluster: users spread over the nodes)\n  \
    ROOST_BENCH_PASSWORD=pw roost-cli bench connections --users 1000 (users u0..u999 made \
    with roost user add)\n\
    In `group`, --groups G is the number of groups. The summary goes to stdout (--json: one \
    object), progress to stderr.")]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// `connections`, `dm`: simulated users (one connection each).
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// `group`: how many groups, given as `--groups G` (the global option, read here as a
    /// count; default 10).
    #[arg(skip = 10u32)]
    pub groups: u32,
    /// `group`: members of each group (users = groups x members).
    #[arg(long, default_value_t = 10)]
    pub members: u32,
    /// `dm`, `group`: messages each user sends.
    #[arg(long, default_value_t = 10)]
    pub messages: u32,
    /// `dm`, `group`: time between one user's messages (e.g. 10s, 500ms); 0: as fast as
    /// the broker acknowledges, --inflight at a time.
    #[arg(long, default_value = "10s", value_parser = crate::args::parse_duration)]
    pub interval: Duration,
    /// With `--interval 0`: unacknowledged messages each user keeps in flight.
    #[arg(long, default_value_t = 4)]
    pub inflight: u32,
    /// Characters of text in each message's body.
    #[arg(long, default_value_t = 32)]
    pub body: usize,
    /// Presence topics each user watches (friends online).
    #[arg(long, default_value_t = 3)]
    pub presence: u32,
    /// User ids are PREFIX0, PREFIX1, ...; group ids PREFIXg0, PREFIXg1, ...
    #[arg(long, default_value = "u")]
    pub prefix: String,
    /// Source addresses to connect from, comma separated (more local ports than one
    /// address has). Default: 127.0.0.1-4 above 20,000 users, else the OS's choice.
    #[arg(long, value_delimiter = ',')]
    pub sources: Vec<IpAddr>,
    /// Connections being set up at once (per process). Above about 100, Mosquitto's accept
    /// queue (listen backlog 100) overflows and connects wait for a SYN retry.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// `connections`: how long to hold the idle connections before measuring.
    #[arg(long, default_value = "0s", value_parser = crate::args::parse_duration)]
    pub hold: Duration,
    /// Split the users over this many processes (one process holds fewer sockets than its
    /// open-file limit, `ulimit -n`).
    #[arg(long, default_value_t = 1)]
    pub processes: u32,
    /// Longest the send phase may last, late deliveries included.
    #[arg(long, default_value = "10m", value_parser = crate::args::parse_duration)]
    pub max_send: Duration,
    /// The run moves on once nothing has happened for this long (late deliveries).
    #[arg(long, default_value = "5s", value_parser = crate::args::parse_duration)]
    pub drain: Duration,
    /// The broker's process id, to report its memory (RSS) and CPU time.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Measure the history service instead of delivery: latency is publish to the `ack`
    /// notice (the message is committed), and the run waits for every `ack`.
    #[arg(long)]
    pub ack: bool,
    /// Sign every user in with this account password (MQTT username = the user id) instead
    /// of a minted token: users PREFIX0, PREFIX1, ... made beforehand with `roost user add`
    /// (docs/operating.md, "Accounts"). Measures password sign-in (a login storm).
    #[arg(long, env = "ROOST_BENCH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// The MQTT addresses (HOST:PORT) of the nodes of a cluster, comma separated, instead
    /// of --host/--port: user i connects to node i mod N, so with 2 nodes about half of
    /// the random DMs cross between nodes.
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT")]
    pub nodes: Vec<String>,
    /// `dm` with --nodes: every DM goes to a user on another node (cross-node only).
    #[arg(long)]
    pub cross_node: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Internal (--processes): run the users K, K+N, ... and report to the parent.
    #[arg(long, hide = true, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Internal (--processes): the shared epoch of message timestamps, µs since 1970.
    #[arg(long, hide = true)]
    pub epoch_us: Option<u64>,
}

impl BenchArgs {
    pub fn total_users(&self) -> u32 {
        match self.scenario {
            Scenario::Group => self.groups.saturating_mul(self.members),
            _ => self.users,
        }
    }

    /// Recipients of each message besides its sender.
    fn fan_out(&self) -> u64 {
        match self.scenario {
            Scenario::Group => u64::from(self.members.saturating_sub(1)),
            _ => 1,
        }
    }
}

/// Which users a process runs: those with `index % count == index`.
#[derive(Debug, Clone, Copy)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s.split_once('/').ok_or("expected K/N")?;
        let (index, count) = (
            k.parse().map_err(|_| "bad K")?,
            n.parse().map_err(|_| "bad N")?,
        );
        if index >= count {
            return Err("K must be below N".into());
        }
        Ok(Shard { index, count })
    }
}

/// What every simulated user needs to know.
pub(crate) struct Plan {
    args: BenchArgs,
    /// One address, or the cluster's nodes (`--nodes`): user i connects to `i % len`.
    brokers: Vec<SocketAddr>,
    sources: Vec<IpAddr>,
    /// HS256 secret to mint each user's token; `None` with `--plain` or `--password`.
    secret: Option<String>,
    /// The account password every user signs in with (`--password`).
    password: Option<String>,
    /// Message timestamps count from here (the same instant in every process).
    epoch: Instant,
    body: String,
}

impl Plan {
    /// `--plain`: no token and no password, presence published by the users themselves.
    fn is_plain(&self) -> bool {
        self.secret.is_none() && self.password.is_none()
    }

    /// The node user `i` connects to.
    fn broker_of(&self, i: u32) -> SocketAddr {
        self.brokers[i as usize % self.brokers.len()]
    }

    /// The group of user `i` in the `group` scenario.
    fn group_of(&self, i: u32) -> String {
        format!("{}g{}", self.args.prefix, i / self.args.members.max(1))
    }
}

/// Where the run is; users follow it through a watch channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd)]
enum Phase {
    Connect,
    Send,
    Stop,
}

pub async fn run(conn: &ConnArgs, mut args: BenchArgs) -> Result<()> {
    match &conn.groups[..] {
        [] => {}
        [count] if args.scenario == Scenario::Group => {
            args.groups =
                count.parse().ok().filter(|&g| g > 0).with_context(|| {
                    format!("bench group: --groups takes a count, not {count:?}")
                })?;
        }
        _ => bail!("bench: --groups is a count, for the `group` scenario only"),
    }
    let brokers = if args.nodes.is_empty() {
        vec![(conn.host.as_str(), conn.port)
            .to_socket_addrs()?
            .next()
            .context("broker address")?]
    } else {
        args.nodes
            .iter()
            .map(|node| {
                node.to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .with_context(|| format!("--nodes: {node:?} is not a HOST:PORT address"))
            })
            .collect::<Result<Vec<_>>>()?
    };
    if args.cross_node && (brokers.len() < 2 || args.scenario != Scenario::Dm) {
        bail!("--cross-node needs `dm` and at least two --nodes");
    }
    let secret = match (conn.plain, &conn.secret, &args.password) {
        (true, _, _) | (false, _, Some(_)) => None,
        (false, Some(secret), None) => Some(secret.clone()),
        (false, None, None) => {
            bail!("bench mints a token per user: give --secret (or --password, or --plain)")
        }
    };
    let password = if conn.plain {
        None
    } else {
        args.password.clone()
    };
    let users = args.total_users();
    if users < 2 {
        bail!("a run needs at least 2 users");
    }
    if args.scenario == Scenario::Group && args.members < 2 {
        bail!("--members must be at least 2");
    }
    if !args.interval.is_zero() && args.interval < Duration::from_millis(1) {
        bail!("--interval must be 0 or at least 1ms");
    }
    let sources = match (&args.sources[..], users) {
        ([], n) if n > 20_000 => (1..=4).map(|i| IpAddr::from([127, 0, 0, i])).collect(),
        (s, _) => s.to_vec(),
    };
    let now_us = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    };
    let epoch_us = args.epoch_us.unwrap_or_else(now_us);
    let since_epoch = Duration::from_micros(now_us().saturating_sub(epoch_us));
    let plan = Arc::new(Plan {
        args: args.clone(),
        brokers: brokers.clone(),
        sources,
        secret,
        password,
        epoch: Instant::now()
            .checked_sub(since_epoch)
            .unwrap_or_else(Instant::now),
        body: "x".repeat(args.body),
    });
    if let Some(shard) = args.shard {
        return fleet::child(plan, shard).await;
    }

    let broker = brokers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut report = Report::new(&args, broker, plan.is_plain());
    let started = Instant::now();
    let processes = args.processes.clamp(1, 64);
    let mut fleet = if processes > 1 {
        Fleet::Children(Children::start(processes, epoch_us)?)
    } else {
        let all = Shard { index: 0, count: 1 };
        Fleet::Local(Local::start(plan.clone(), all))
    };
    let mut progress = Progress::new(started);

    // 1. Connect everyone; give up when nothing has moved for 30 s.
    let total = u64::from(users);
    let connect = wait(
        &fleet,
        &mut progress,
        "connect",
        None,
        Duration::from_secs(30),
        |c| c.connected + c.failed >= total,
    )
    .await;
    report.connected(
        &fleet.counters(),
        connect.saturating_duration_since(started),
    );
    let failed = fleet.counters().failed;
    if failed > 0 || fleet.counters().connected < total {
        let (_, error) = fleet.stop(&Histogram::default()).await;
        report.set_error(error.clone());
        report.print(args.json);
        bail!(
            "{} of {users} users did not connect; first error: {}",
            total - report.connected_count(),
            error.unwrap_or_else(|| "none reported (timed out)".into())
        );
    }

    // Let presence and subscriptions settle, so that idle memory is idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if args.scenario == Scenario::Connections {
        let until = Instant::now() + args.hold;
        wait(
            &fleet,
            &mut progress,
            "hold",
            Some(until),
            args.hold * 2,
            |_| false,
        )
        .await;
        report.measure_idle();
        // In a `connections` run the users record their connect-to-CONNACK times there.
        let connack = Histogram::default();
        let (_, error) = fleet.stop(&connack).await;
        report.connack(&connack);
        report.set_error(error);
    } else {
        report.measure_idle();
        let pids = fleet.pids();
        let sending = Instant::now();
        let cpu_before = report::cpu_of(&pids);
        fleet.set_phase(Phase::Send).await;
        let deadline = sending + args.max_send;
        let sends = total * u64::from(args.messages);
        let fan_out = args.fan_out();
        // Everything sent and acknowledged...
        wait(
            &fleet,
            &mut progress,
            "send",
            Some(deadline),
            args.drain,
            |c| c.acked >= sends,
        )
        .await;
        // ... and delivered (what is late is lost once nothing moves for --drain), and with
        // --ack, stored.
        let last = wait(
            &fleet,
            &mut progress,
            "deliver",
            Some(deadline),
            args.drain,
            |c| {
                c.received >= c.sent * fan_out
                    && c.own_copies >= c.sent
                    && (!args.ack || c.stored >= c.sent)
            },
        )
        .await;
        let took = last.saturating_duration_since(sending);
        report.measure_after(took, report::cpu_of(&pids) - cpu_before);
        let latency = Histogram::default();
        let (counters, error) = fleet.stop(&latency).await;
        report.finish(&counters, &latency, fan_out);
        report.set_error(error);
    }
    report.print(args.json);
    Ok(())
}

/// Progress lines on stderr, once a second.
struct Progress {
    started: Instant,
    last: Instant,
    last_received: u64,
    error_shown: bool,
}

impl Progress {
    fn new(started: Instant) -> Progress {
        Progress {
            started,
            last: started,
            last_received: 0,
            error_shown: false,
        }
    }

    fn tick(&mut self, phase: &str, c: &Counters) {
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_secs(1) {
            return;
        }
        let rate = (c.received - self.last_received.min(c.received)) as f64
            / now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.last_received = c.received;
        eprintln!(
            "[{:>5.0}s {phase:>7}] connected {:>6} failed {:>4} | sent {:>8} acked {:>8} received {:>9} ({:>7.0}/s) own {:>8} dup {:>3} presence {:>7}",
            now.duration_since(self.started).as_secs_f64(),
            c.connected,
            c.failed,
            c.sent,
            c.acked,
            c.received,
            rate,
            c.own_copies,
            c.duplicates,
            c.presence,
        );
    }
}

/// Waits until `done`, the deadline, nothing having changed for `stall`, or the fleet
/// being gone, printing progress. Returns when the counters last changed (or now, when
/// `done`).
async fn wait(
    fleet: &Fleet,
    progress: &mut Progress,
    phase: &str,
    deadline: Option<Instant>,
    stall: Duration,
    done: impl Fn(&Counters) -> bool,
) -> Instant {
    let mut last = (fleet.counters(), Instant::now());
    loop {
        let now = Instant::now();
        let c = fleet.counters();
        if c != last.0 {
            last = (c, now);
        }
        progress.tick(phase, &c);
        if !progress.error_shown {
            if let Some(e) = fleet.first_error() {
                eprintln!("first error: {e}");
                progress.error_shown = true;
            }
        }
        if done(&c) {
            return now;
        }
        if deadline.is_some_and(|d| now >= d) || now.duration_since(last.1) >= stall {
            return last.1;
        }
        if fleet.gone() {
            return last.1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
