//! Counting what the simulated users saw, and printing it.

use super::{BenchArgs, Scenario};
use serde::Serialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters shared by every simulated user.
#[derive(Default)]
pub struct Stats {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// Deliveries to a recipient's inbox (each counted once, by message id).
    pub received: AtomicU64,
    pub duplicates: AtomicU64,
    /// Copies of a user's own messages on `im/dm/+/{me}` (multi-device sync).
    pub own_copies: AtomicU64,
    /// Publish-to-delivery times in microseconds.
    latencies: Mutex<Vec<u32>>,
    first_error: Mutex<Option<String>>,
}

impl Stats {
    pub fn fail(&self, e: anyhow::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| format!("{e:#}"));
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Accounts one delivery to user `me`.
    pub fn delivery(
        &self,
        me: &str,
        topic: &str,
        payload: &[u8],
        epoch: Instant,
        seen: &mut HashSet<String>,
    ) {
        let mut levels = topic.split('/');
        let (Some("im"), Some("dm"), Some(to), Some(from)) =
            (levels.next(), levels.next(), levels.next(), levels.next())
        else {
            return;
        };
        if from == me && to != me {
            self.own_copies.fetch_add(1, Ordering::Relaxed);
            return;
        }
        #[derive(serde::Deserialize)]
        struct Sent {
            id: String,
            bench_us: u64,
        }
        let Ok(sent) = serde_json::from_slice::<Sent>(payload) else {
            return;
        };
        if !seen.insert(sent.id) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        let now = epoch.elapsed().as_micros() as u64;
        let latency = now.saturating_sub(sent.bench_us).min(u64::from(u32::MAX)) as u32;
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(latency);
    }

    fn percentiles(&self) -> Option<Latency> {
        let mut all = self
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if all.is_empty() {
            return None;
        }
        all.sort_unstable();
        let at = |q: f64| f64::from(all[((all.len() - 1) as f64 * q) as usize]) / 1000.0;
        Some(Latency {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

#[derive(Serialize, Clone, Copy)]
struct Latency {
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// The broker's memory and CPU, read from /proc.
#[derive(Serialize, Clone, Copy, Default)]
struct Usage {
    rss_kib: u64,
    cpu_secs: f64,
}

fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Usage {
        rss_kib,
        cpu_secs: ticks as f64 / 100.0,
    })
}

#[derive(Serialize)]
pub struct Report {
    scenario: &'static str,
    broker: String,
    users: u32,
    messages_per_user: u32,
    interval_ms: u128,
    #[serde(skip)]
    broker_pid: Option<u32>,
    broker_before: Option<Usage>,
    connect_secs: f64,
    connects_per_sec: f64,
    connected: u64,
    failed: u64,
    broker_idle: Option<Usage>,
    rss_per_connection_kib: Option<f64>,
    send_secs: Option<f64>,
    sent: u64,
    acked: u64,
    received: u64,
    lost: u64,
    duplicates: u64,
    own_copies: u64,
    delivered_per_sec: Option<f64>,
    latency: Option<Latency>,
    broker_after: Option<Usage>,
    broker_cpu_secs_per_1000_messages: Option<f64>,
}

impl Report {
    pub fn new(args: &BenchArgs, broker: SocketAddr, broker_pid: Option<u32>) -> Report {
        Report {
            scenario: match args.scenario {
                Scenario::Connections => "connections",
                Scenario::Dm => "dm",
            },
            broker: broker.to_string(),
            users: args.users,
            messages_per_user: if args.scenario == Scenario::Dm {
                args.messages
            } else {
                0
            },
            interval_ms: args.interval.as_millis(),
            broker_pid,
            broker_before: broker_pid.and_then(usage),
            connect_secs: 0.0,
            connects_per_sec: 0.0,
            connected: 0,
            failed: 0,
            broker_idle: None,
            rss_per_connection_kib: None,
            send_secs: None,
            sent: 0,
            acked: 0,
            received: 0,
            lost: 0,
            duplicates: 0,
            own_copies: 0,
            delivered_per_sec: None,
            latency: None,
            broker_after: None,
            broker_cpu_secs_per_1000_messages: None,
        }
    }

    pub fn progress(&self, stats: &Stats) {
        eprintln!(
            "connected {:>6}  failed {:>4}  sent {:>8}  acked {:>8}  received {:>8}  dup {:>4}",
            stats.connected.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
            stats.sent.load(Ordering::Relaxed),
            stats.acked.load(Ordering::Relaxed),
            stats.received.load(Ordering::Relaxed),
            stats.duplicates.load(Ordering::Relaxed),
        );
    }

    pub fn connected(&mut self, stats: &Stats, took: Duration) {
        self.connected = stats.connected.load(Ordering::Relaxed);
        self.failed = stats.failed.load(Ordering::Relaxed);
        self.connect_secs = took.as_secs_f64();
        self.connects_per_sec = self.connected as f64 / took.as_secs_f64().max(1e-9);
    }

    pub fn measure_idle(&mut self) {
        self.broker_idle = self.broker_pid.and_then(usage);
        if let (Some(before), Some(idle)) = (self.broker_before, self.broker_idle) {
            let grown = idle.rss_kib.saturating_sub(before.rss_kib) as f64;
            self.rss_per_connection_kib = Some(grown / self.connected.max(1) as f64);
        }
    }

    pub fn sent(&mut self, stats: &Stats, took: Duration) {
        self.send_secs = Some(took.as_secs_f64());
        self.sent = stats.sent.load(Ordering::Relaxed);
        self.acked = stats.acked.load(Ordering::Relaxed);
        self.received = stats.received.load(Ordering::Relaxed);
        self.duplicates = stats.duplicates.load(Ordering::Relaxed);
        self.own_copies = stats.own_copies.load(Ordering::Relaxed);
        self.lost = self.acked.saturating_sub(self.received);
        self.delivered_per_sec = Some(self.received as f64 / took.as_secs_f64().max(1e-9));
        self.latency = stats.percentiles();
        self.broker_after = self.broker_pid.and_then(usage);
        if let (Some(idle), Some(after)) = (self.broker_idle, self.broker_after) {
            let messages = self.received.max(1) as f64;
            self.broker_cpu_secs_per_1000_messages =
                Some((after.cpu_secs - idle.cpu_secs) / messages * 1000.0);
        }
    }

    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string(self).unwrap_or_default());
            return;
        }
        let mib = |u: Option<Usage>| {
            u.map_or("-".to_owned(), |u| {
                format!("{:.1} MiB", u.rss_kib as f64 / 1024.0)
            })
        };
        println!("scenario              {}", self.scenario);
        println!("broker                {}", self.broker);
        println!(
            "users                 {} connected, {} failed",
            self.connected, self.failed
        );
        println!(
            "connect               {:.2} s ({:.0} connections/s)",
            self.connect_secs, self.connects_per_sec
        );
        println!("broker rss before     {}", mib(self.broker_before));
        println!("broker rss idle       {}", mib(self.broker_idle));
        if let Some(per) = self.rss_per_connection_kib {
            println!("rss per connection    {per:.1} KiB");
        }
        if let Some(secs) = self.send_secs {
            println!(
                "messages              {} sent, {} acked, {} received, {} lost, {} duplicated",
                self.sent, self.acked, self.received, self.lost, self.duplicates
            );
            println!("own-device copies     {}", self.own_copies);
            println!(
                "send phase            {secs:.2} s, {:.0} delivered/s",
                self.delivered_per_sec.unwrap_or(0.0)
            );
            if let Some(l) = self.latency {
                println!(
                    "latency               p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
                );
            }
            println!("broker rss after      {}", mib(self.broker_after));
            if let Some(cpu) = self.broker_cpu_secs_per_1000_messages {
                println!("broker cpu            {cpu:.3} s per 1000 messages");
            }
        }
    }
}
