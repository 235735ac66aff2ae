//! Counting what the simulated users saw, and printing it.

use super::{BenchArgs, Scenario};
use roost_proto::topic::Topic;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Latencies in microseconds, in log-linear buckets: exact below 1,024 µs, then 128
/// buckets per power of two (under 0.8 % error). Lock-free, and mergeable across the
/// processes of a `--processes` run.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
}

const LINEAR: u64 = 1024;
const SUB_BITS: u32 = 7;
const BUCKETS: usize = LINEAR as usize + (64 - 10) * (1 << SUB_BITS);

fn bucket_of(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // >= 10
    let sub = (us >> (exp - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    LINEAR as usize + ((exp - 10) as usize) * (1 << SUB_BITS) + sub as usize
}

/// The middle of a bucket, in microseconds.
fn value_of(bucket: usize) -> u64 {
    if bucket < LINEAR as usize {
        return bucket as u64;
    }
    let i = bucket - LINEAR as usize;
    let exp = (i >> SUB_BITS) as u32 + 10;
    let sub = (i & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (exp - SUB_BITS);
    (1u64 << exp) + sub * width + width / 2
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, us: u64) {
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }

    /// The non-empty buckets, to send to the parent process.
    pub fn export(&self) -> Buckets {
        Buckets {
            counts: self
                .buckets
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let c = c.load(Ordering::Relaxed);
                    (c > 0).then_some((i as u32, c))
                })
                .collect(),
            max_us: self.max.load(Ordering::Relaxed),
        }
    }

    pub fn merge(&self, other: &Buckets) {
        for &(i, c) in &other.counts {
            if let Some(b) = self.buckets.get(i as usize) {
                b.fetch_add(c, Ordering::Relaxed);
            }
        }
        self.max.fetch_max(other.max_us, Ordering::Relaxed);
    }

    fn percentiles(&self) -> Option<Latency> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let max = self.max.load(Ordering::Relaxed);
        let at = |q: f64| {
            let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return value_of(i).min(max) as f64 / 1000.0;
                }
            }
            max as f64 / 1000.0
        };
        Some(Latency {
            samples: total,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: max as f64 / 1000.0,
        })
    }
}

/// A histogram's non-empty buckets: (bucket, count).
#[derive(Serialize, Deserialize, Default)]
pub struct Buckets {
    counts: Vec<(u32, u64)>,
    max_us: u64,
}

/// Plain counts, summed over processes.
#[derive(Serialize, Deserialize, Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    pub connected: u64,
    pub failed: u64,
    pub sent: u64,
    pub acked: u64,
    /// Deliveries of others' messages (each counted once per recipient, by message id).
    pub received: u64,
    pub duplicates: u64,
    /// Copies of a user's own messages (`im/dm/+/{me}`, or its group's `im/grp/{g}/+`).
    pub own_copies: u64,
    /// Presence updates delivered (`im/presence/...`).
    pub presence: u64,
    /// Server notices delivered (`im/sys/{me}`) other than `ack`: refusals show here.
    pub notices: u64,
    /// `ack` notices: messages the history service committed.
    #[serde(default)]
    pub stored: u64,
}

impl std::ops::AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.connected += o.connected;
        self.failed += o.failed;
        self.sent += o.sent;
        self.acked += o.acked;
        self.received += o.received;
        self.duplicates += o.duplicates;
        self.own_copies += o.own_copies;
        self.presence += o.presence;
        self.notices += o.notices;
        self.stored += o.stored;
    }
}

/// Counters shared by the simulated users of one process.
#[derive(Default)]
pub struct Stats {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub received: AtomicU64,
    pub duplicates: AtomicU64,
    pub own_copies: AtomicU64,
    pub presence: AtomicU64,
    pub notices: AtomicU64,
    pub stored: AtomicU64,
    pub latency: Histogram,
    first_error: Mutex<Option<String>>,
}

/// Where a delivery came from, read from its topic.
enum Kind {
    Chat,
    Own,
    Presence,
    Notice,
    Other,
}

fn kind_of(me: &str, topic: &str) -> Kind {
    match Topic::parse(topic) {
        Topic::Dm { to, from } if from == me && to != me => Kind::Own,
        Topic::Dm { .. } => Kind::Chat,
        Topic::Group { from, .. } if from == me => Kind::Own,
        Topic::Group { .. } => Kind::Chat,
        Topic::Presence { .. } => Kind::Presence,
        Topic::Sys { .. } => Kind::Notice,
        _ => Kind::Other,
    }
}

impl Stats {
    pub fn fail(&self, e: anyhow::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.note_error(format!("{e:#}"));
    }

    pub fn note_error(&self, e: String) {
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn counters(&self) -> Counters {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            connected: l(&self.connected),
            failed: l(&self.failed),
            sent: l(&self.sent),
            acked: l(&self.acked),
            received: l(&self.received),
            duplicates: l(&self.duplicates),
            own_copies: l(&self.own_copies),
            presence: l(&self.presence),
            notices: l(&self.notices),
            stored: l(&self.stored),
        }
    }

    /// Accounts one delivery to user `me`. `seen` holds the message ids `me` has had
    /// (sender index << 32 | sequence number), to tell duplicates.
    pub fn delivery(
        &self,
        me: &str,
        topic: &str,
        payload: &[u8],
        epoch: Instant,
        seen: &mut HashSet<u64>,
        ack_latency: bool,
    ) {
        match kind_of(me, topic) {
            Kind::Chat => {}
            Kind::Notice if is_ack(payload).is_some() => {
                self.stored.fetch_add(1, Ordering::Relaxed);
                if let (true, Some(sent_us)) = (ack_latency, is_ack(payload).flatten()) {
                    let now = epoch.elapsed().as_micros() as u64;
                    self.latency.record(now.saturating_sub(sent_us));
                }
                return;
            }
            Kind::Own => {
                self.own_copies.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Kind::Presence => {
                self.presence.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Kind::Notice => {
                self.notices.fetch_add(1, Ordering::Relaxed);
                if self.notices.load(Ordering::Relaxed) == 1 {
                    let text = String::from_utf8_lossy(payload);
                    self.note_error(format!("notice to {me}: {text}"));
                }
                return;
            }
            Kind::Other => return,
        }
        #[derive(Deserialize)]
        struct Sent<'a> {
            id: &'a str,
            bench_us: u64,
        }
        let Ok(sent) = serde_json::from_slice::<Sent>(payload) else {
            return;
        };
        let Some(key) = message_key(sent.id) else {
            return;
        };
        if !seen.insert(key) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        if !ack_latency {
            let now = epoch.elapsed().as_micros() as u64;
            self.latency.record(now.saturating_sub(sent.bench_us));
        }
    }
}

/// For an `ack` notice: `Some(send time)` (`None` inside when the id is not one of ours).
fn is_ack(payload: &[u8]) -> Option<Option<u64>> {
    #[derive(Deserialize)]
    struct Ack<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        id: &'a str,
    }
    let ack = serde_json::from_slice::<Ack>(payload).ok()?;
    (ack.kind == "ack").then(|| ack.id.rsplit('-').next()?.parse().ok())
}

/// `"{sender}-{seq}-{sent_us}"` as one number (sender and seq).
fn message_key(id: &str) -> Option<u64> {
    let mut parts = id.split('-');
    let (sender, seq) = (parts.next()?, parts.next()?);
    Some((sender.parse::<u64>().ok()? << 32) | seq.parse::<u64>().ok()?)
}

#[derive(Serialize, Clone, Copy)]
struct Latency {
    samples: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

/// A process's memory and CPU, read from /proc.
#[derive(Serialize, Clone, Copy, Default)]
pub struct Usage {
    pub rss_kib: u64,
    /// Peak RSS since the process started (VmHWM).
    pub rss_peak_kib: u64,
    pub cpu_secs: f64,
}

pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let rss_kib = field("VmRSS:")?;
    let rss_peak_kib = field("VmHWM:").unwrap_or(rss_kib);
    // utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Usage {
        rss_kib,
        rss_peak_kib,
        cpu_secs: ticks as f64 / 100.0,
    })
}

/// CPU seconds the whole machine has spent busy (user, nice and system time of every
/// core), from /proc/stat.
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    Some(ticks.get(..3)?.iter().sum::<u64>() as f64 / 100.0)
}

/// CPU seconds of several processes (the load generator's), summed.
pub fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|&p| usage(p))
        .map(|u| u.cpu_secs)
        .sum()
}

#[derive(Serialize)]
pub struct Report {
    scenario: &'static str,
    broker: String,
    plain: bool,
    users: u32,
    groups: Option<u32>,
    members: Option<u32>,
    messages_per_user: u32,
    interval_ms: u128,
    inflight: Option<u32>,
    processes: u32,
    #[serde(skip)]
    broker_pid: Option<u32>,
    broker_before: Option<Usage>,
    connect_secs: f64,
    connects_per_sec: f64,
    /// `connections` runs: each user's TCP connect to CONNACK (a sign-in's wait, queueing
    /// for the node's password hashing included).
    connack: Option<Latency>,
    connected: u64,
    failed: u64,
    broker_idle: Option<Usage>,
    rss_per_connection_kib: Option<f64>,
    send_secs: Option<f64>,
    sent: u64,
    acked: u64,
    /// Deliveries of others' messages the users should have had.
    expected: u64,
    received: u64,
    lost: u64,
    duplicates: u64,
    own_copies: u64,
    own_copies_expected: u64,
    presence_updates: u64,
    notices: u64,
    /// Messages the history service acknowledged as stored (`ack` notices).
    stored: u64,
    /// Stored messages per second (`--ack` runs).
    stored_per_sec: Option<f64>,
    /// What `latency` measures: "delivery" (publish to each recipient) or "ack" (publish to
    /// the history service's `ack`).
    latency_to: &'static str,
    /// Sent (published and acknowledged) messages per second.
    sent_per_sec: Option<f64>,
    /// Deliveries to recipients per second (fan-out counted; own copies not).
    delivered_per_sec: Option<f64>,
    latency: Option<Latency>,
    broker_after: Option<Usage>,
    broker_cpu_secs: Option<f64>,
    broker_cpu_secs_per_1000_messages: Option<f64>,
    /// The load generator's CPU use over the send phase, in cores (1.0 = one core busy).
    generator_cpu_cores: Option<f64>,
    /// CPU used over the send phase by everything but the broker and the load generator,
    /// in cores: other work on the machine that may have disturbed the measurement.
    other_cpu_cores: Option<f64>,
    #[serde(skip)]
    machine_busy_at_idle: Option<f64>,
    first_error: Option<String>,
}

impl Report {
    pub fn new(args: &BenchArgs, broker: String, plain: bool) -> Report {
        let group = args.scenario == Scenario::Group;
        Report {
            scenario: match args.scenario {
                Scenario::Connections => "connections",
                Scenario::Dm => "dm",
                Scenario::Group => "group",
            },
            broker,
            plain,
            users: args.total_users(),
            groups: group.then_some(args.groups),
            members: group.then_some(args.members),
            messages_per_user: if args.scenario == Scenario::Connections {
                0
            } else {
                args.messages
            },
            interval_ms: args.interval.as_millis(),
            inflight: args.interval.is_zero().then_some(args.inflight),
            processes: args.processes.max(1),
            broker_pid: args.broker_pid,
            broker_before: args.broker_pid.and_then(usage),
            connect_secs: 0.0,
            connects_per_sec: 0.0,
            connack: None,
            connected: 0,
            failed: 0,
            broker_idle: None,
            rss_per_connection_kib: None,
            send_secs: None,
            sent: 0,
            acked: 0,
            expected: 0,
            received: 0,
            lost: 0,
            duplicates: 0,
            own_copies: 0,
            stored: 0,
            stored_per_sec: None,
            latency_to: if args.ack { "ack" } else { "delivery" },
            own_copies_expected: 0,
            presence_updates: 0,
            notices: 0,
            sent_per_sec: None,
            delivered_per_sec: None,
            latency: None,
            broker_after: None,
            broker_cpu_secs: None,
            broker_cpu_secs_per_1000_messages: None,
            generator_cpu_cores: None,
            other_cpu_cores: None,
            machine_busy_at_idle: None,
            first_error: None,
        }
    }

    pub fn connected(&mut self, c: &Counters, took: Duration) {
        self.connected = c.connected;
        self.failed = c.failed;
        self.connect_secs = took.as_secs_f64();
        self.connects_per_sec = self.connected as f64 / took.as_secs_f64().max(1e-9);
    }

    /// The connect-to-CONNACK latencies of a `connections` run.
    pub fn connack(&mut self, latency: &Histogram) {
        self.connack = latency.percentiles();
    }

    pub fn measure_idle(&mut self) {
        self.broker_idle = self.broker_pid.and_then(usage);
        self.machine_busy_at_idle = machine_busy_secs();
        if let (Some(before), Some(idle)) = (self.broker_before, self.broker_idle) {
            let grown = idle.rss_kib.saturating_sub(before.rss_kib) as f64;
            self.rss_per_connection_kib = Some(grown / self.connected.max(1) as f64);
        }
    }

    pub fn connected_count(&self) -> u64 {
        self.connected
    }

    /// Reads the broker's usage at the end of the send phase, which took `took`, and the
    /// load generator's CPU seconds spent in it.
    pub fn measure_after(&mut self, took: Duration, generator_cpu: f64) {
        let secs = took.as_secs_f64().max(1e-9);
        self.send_secs = Some(took.as_secs_f64());
        self.generator_cpu_cores = Some(generator_cpu / secs);
        self.broker_after = self.broker_pid.and_then(usage);
        if let (Some(idle), Some(after)) = (self.broker_idle, self.broker_after) {
            self.broker_cpu_secs = Some(after.cpu_secs - idle.cpu_secs);
        }
        if let (Some(before), Some(now)) = (self.machine_busy_at_idle, machine_busy_secs()) {
            let ours = generator_cpu + self.broker_cpu_secs.unwrap_or(0.0);
            self.other_cpu_cores = Some(((now - before) - ours).max(0.0) / secs);
        }
    }

    /// Fills in the counts of the send phase. `fan_out`: recipients of each message other
    /// than its sender.
    pub fn finish(&mut self, c: &Counters, latency: &Histogram, fan_out: u64) {
        let secs = self.send_secs.unwrap_or(0.0).max(1e-9);
        self.sent = c.sent;
        self.acked = c.acked;
        self.received = c.received;
        self.duplicates = c.duplicates;
        self.own_copies = c.own_copies;
        self.presence_updates = c.presence;
        self.notices = c.notices;
        self.stored = c.stored;
        self.stored_per_sec = (c.stored > 0).then(|| c.stored as f64 / secs);
        // Every message sent should reach each recipient, acknowledged or not.
        self.expected = c.sent * fan_out;
        self.own_copies_expected = c.sent;
        self.lost = self.expected.saturating_sub(self.received);
        self.sent_per_sec = Some(c.acked as f64 / secs);
        self.delivered_per_sec = Some(c.received as f64 / secs);
        self.latency = latency.percentiles();
        if let Some(cpu) = self.broker_cpu_secs {
            let messages = self.received.max(1) as f64;
            self.broker_cpu_secs_per_1000_messages = Some(cpu / messages * 1000.0);
        }
    }

    pub fn set_error(&mut self, e: Option<String>) {
        self.first_error = e;
    }

    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string(self).unwrap_or_default());
            return;
        }
        let mib = |u: Option<Usage>| {
            u.map_or("-".to_owned(), |u| {
                format!(
                    "{:.1} MiB (peak {:.1} MiB)",
                    u.rss_kib as f64 / 1024.0,
                    u.rss_peak_kib as f64 / 1024.0
                )
            })
        };
        println!("scenario              {}", self.scenario);
        println!(
            "broker                {}{}",
            self.broker,
            if self.plain {
                " (plain: no tokens)"
            } else {
                ""
            }
        );
        if let (Some(g), Some(m)) = (self.groups, self.members) {
            println!("groups                {g} of {m} members");
        }
        println!(
            "users                 {} connected, {} failed ({} process{})",
            self.connected,
            self.failed,
            self.processes,
            if self.processes == 1 { "" } else { "es" }
        );
        println!(
            "connect               {:.2} s ({:.0} connections/s)",
            self.connect_secs, self.connects_per_sec
        );
        if let Some(l) = self.connack {
            println!(
                "connect to CONNACK    p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            );
        }
        println!("broker rss before     {}", mib(self.broker_before));
        println!("broker rss idle       {}", mib(self.broker_idle));
        if let Some(per) = self.rss_per_connection_kib {
            println!("rss per connection    {per:.1} KiB");
        }
        if let Some(secs) = self.send_secs {
            println!(
                "messages              {} sent, {} acked; {} of {} deliveries received, {} lost, {} duplicated",
                self.sent, self.acked, self.received, self.expected, self.lost, self.duplicates
            );
            println!(
                "own copies            {} of {}",
                self.own_copies, self.own_copies_expected
            );
            println!(
                "presence, notices     {} presence updates, {} notices",
                self.presence_updates, self.notices
            );
            println!(
                "send phase            {secs:.2} s: {:.0} sent/s, {:.0} delivered/s",
                self.sent_per_sec.unwrap_or(0.0),
                self.delivered_per_sec.unwrap_or(0.0)
            );
            if let Some(stored) = self.stored_per_sec {
                println!(
                    "stored (acked)        {} of {} sent, {stored:.0} stored/s",
                    self.stored, self.sent
                );
            }
            if let Some(l) = self.latency {
                println!("latency to            {}", self.latency_to);
                println!(
                    "latency               p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
                );
            }
            println!("broker rss after      {}", mib(self.broker_after));
            if let (Some(cpu), Some(per)) =
                (self.broker_cpu_secs, self.broker_cpu_secs_per_1000_messages)
            {
                println!("broker cpu            {cpu:.2} s, {per:.3} s per 1000 deliveries");
            }
            if let Some(cores) = self.generator_cpu_cores {
                println!("generator cpu         {cores:.2} cores");
            }
            if let Some(cores) = self.other_cpu_cores {
                println!("other cpu             {cores:.2} cores (the rest of the machine)");
            }
        }
        if let Some(e) = &self.first_error {
            println!("first error           {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_one_percent() {
        for us in [0, 1, 999, 1023, 1024, 1500, 20_000, 1_000_000, 123_456_789] {
            let v = value_of(bucket_of(us));
            let err = (v as f64 - us as f64).abs() / (us.max(1) as f64);
            assert!(err < 0.01, "{us} -> {v}");
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles_and_merge() {
        let a = Histogram::default();
        for us in 1..=1000 {
            a.record(us);
        }
        let b = Histogram::default();
        b.merge(&a.export());
        let l = b.percentiles().unwrap();
        assert_eq!(l.samples, 1000);
        assert!((l.p50_ms - 0.5).abs() < 0.002);
        assert!((l.p99_ms - 0.99).abs() < 0.002);
        assert!((l.max_ms - 1.0).abs() < 1e-9);
    }

    /// Under stamped delivery (docs/protocol.md section 4) recipients get the sent payload
    /// plus the server's fields, `ts` replaced: the latency still comes from `bench_us`,
    /// and the message still counts once.
    #[test]
    fn a_stamped_copy_is_timed_from_bench_us() {
        let sent = br#"{"id":"3-7-1000","kind":"text","body":"x","ts":5,"bench_us":1000}"#;
        let stamp = roost_proto::delivered::Stamp {
            conv: "dm:u1:u3",
            seq: 9,
            ts: 1_700_000_000_000,
            from: "u3",
        };
        let copy = roost_proto::delivered::stamped(sent, &stamp).unwrap();
        let stats = Stats::default();
        let epoch = Instant::now() - Duration::from_micros(5000);
        let mut seen = HashSet::new();
        stats.delivery("u1", "im/dm/u1/u3", &copy, epoch, &mut seen, false);
        stats.delivery("u1", "im/dm/u1/u3", &copy, epoch, &mut seen, false);
        let c = stats.counters();
        assert_eq!((c.received, c.duplicates), (1, 1));
        let l = stats.latency.percentiles().unwrap();
        assert_eq!(l.samples, 1);
        // Sent at 1 ms after the epoch, received at 5 ms or later.
        assert!(l.p50_ms >= 3.9 && l.p50_ms < 1000.0, "{}", l.p50_ms);
    }

    #[test]
    fn kinds() {
        assert!(matches!(kind_of("a", "im/dm/a/b"), Kind::Chat));
        assert!(matches!(kind_of("a", "im/dm/b/a"), Kind::Own));
        assert!(matches!(kind_of("a", "im/grp/g/a"), Kind::Own));
        assert!(matches!(kind_of("a", "im/grp/g/b"), Kind::Chat));
        assert!(matches!(kind_of("a", "im/presence/b"), Kind::Presence));
        assert!(matches!(kind_of("a", "im/sys/a"), Kind::Notice));
        assert_eq!(message_key("3-7"), Some((3 << 32) | 7));
    }
}
