//! The simulated users of a run: in this process, or split over child processes.
//!
//! A process can hold fewer sockets than its open-file limit (`ulimit -n`), so
//! `--processes N` re-runs the same command N times with a hidden `--shard K/N`: child K
//! runs users K, K+N, K+2N, ... Children talk to the parent over their stdin and stdout in
//! JSON lines: they report their counters every 200 ms and, at the end, their latency
//! histogram; the parent tells them when to start sending (`send`) and to stop (`stop`).
//! Every process stamps messages against one shared epoch (`--epoch-us`), so latencies are
//! measured across processes.

use super::report::{Buckets, Counters, Histogram, Stats};
use super::{user, Phase, Plan, Shard};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// What a child reports.
#[derive(Serialize, Deserialize, Default)]
struct Update {
    counters: Counters,
    error: Option<String>,
    /// Only in the last update.
    latency: Option<Buckets>,
}

/// Users run by this process.
pub struct Local {
    pub stats: Arc<Stats>,
    phase: watch::Sender<Phase>,
    tasks: Vec<JoinHandle<()>>,
}

impl Local {
    pub fn start(plan: Arc<Plan>, shard: Shard) -> Local {
        let stats = Arc::new(Stats::default());
        let (phase, phase_rx) = watch::channel(Phase::Connect);
        let gate = Arc::new(Semaphore::new(plan.args.concurrency.max(1)));
        let tasks = (0..plan.args.total_users())
            .filter(|i| i % shard.count == shard.index)
            .map(|i| {
                let (plan, stats, phase, gate) =
                    (plan.clone(), stats.clone(), phase_rx.clone(), gate.clone());
                tokio::spawn(async move {
                    if let Err(e) = user::run(i, &plan, &stats, phase, gate).await {
                        stats.fail(e);
                    }
                })
            })
            .collect();
        Local {
            stats,
            phase,
            tasks,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        let _ = self.phase.send(phase);
    }

    /// Stops every user and waits for them (a bounded wait: they only close sockets).
    pub async fn stop(self) -> Arc<Stats> {
        self.set_phase(Phase::Stop);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut tasks = self.tasks;
        for task in &mut tasks {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
        // Users still connecting when told to stop.
        for task in tasks {
            task.abort();
        }
        self.stats
    }
}

/// The child side of `--shard`: runs its users, reports, obeys.
pub async fn child(plan: Arc<Plan>, shard: Shard) -> Result<()> {
    let local = Local::start(plan, shard);
    let stats = local.stats.clone();
    let mut out = tokio::io::stdout();
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let update = Update { counters: stats.counters(), error: stats.first_error(), latency: None };
                write_line(&mut out, &update).await?;
            }
            line = commands.next_line() => match line {
                Ok(Some(l)) if l.trim() == "send" => local.set_phase(Phase::Send),
                Ok(Some(l)) if l.trim() != "stop" => {}
                _ => break,
            }
        }
    }
    let stats = local.stop().await;
    let update = Update {
        counters: stats.counters(),
        error: stats.first_error(),
        latency: Some(stats.latency.export()),
    };
    write_line(&mut out, &update).await
}

async fn write_line(out: &mut tokio::io::Stdout, update: &Update) -> Result<()> {
    let mut line = serde_json::to_vec(update)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await?;
    Ok(())
}

/// What the parent knows of one child.
#[derive(Default)]
struct Seen {
    counters: Counters,
    error: Option<String>,
    latency: Option<Buckets>,
    exited: bool,
}

/// Users run by child processes.
pub struct Children {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    seen: Arc<Mutex<Vec<Seen>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Children {
    pub fn start(count: u32, epoch_us: u64) -> Result<Children> {
        let exe = std::env::current_exe().context("finding roost-cli to re-run")?;
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        let seen: Arc<Mutex<Vec<Seen>>> =
            Arc::new(Mutex::new((0..count).map(|_| Seen::default()).collect()));
        let (mut children, mut stdins, mut readers) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..count {
            let mut child = tokio::process::Command::new(&exe)
                .args(&args)
                .arg("--shard")
                .arg(format!("{k}/{count}"))
                .arg("--epoch-us")
                .arg(epoch_us.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("starting a load generator process")?;
            stdins.push(child.stdin.take().context("child stdin")?);
            let stdout = child.stdout.take().context("child stdout")?;
            let seen = seen.clone();
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(update) = serde_json::from_str::<Update>(&line) {
                        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                        let s = &mut seen[k as usize];
                        s.counters = update.counters;
                        s.error = s.error.take().or(update.error);
                        if update.latency.is_some() {
                            s.latency = update.latency;
                        }
                    }
                }
                seen.lock().unwrap_or_else(|p| p.into_inner())[k as usize].exited = true;
            }));
            children.push(child);
        }
        Ok(Children {
            children,
            stdins,
            seen,
            readers,
        })
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    pub fn counters(&self) -> Counters {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut sum = Counters::default();
        for s in seen.iter() {
            sum += s.counters;
        }
        sum
    }

    pub fn first_error(&self) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().find_map(|s| s.error.clone())
    }

    pub fn all_exited(&self) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().all(|s| s.exited)
    }

    pub async fn set_phase(&mut self, phase: Phase) {
        let command: &[u8] = match phase {
            Phase::Connect => return,
            Phase::Send => b"send\n",
            Phase::Stop => b"stop\n",
        };
        for stdin in &mut self.stdins {
            let _ = stdin.write_all(command).await;
            let _ = stdin.flush().await;
        }
    }

    /// Stops the children and collects their last counters and latencies.
    pub async fn stop(mut self, latency: &Histogram) -> (Counters, Option<String>) {
        self.set_phase(Phase::Stop).await;
        self.stdins.clear();
        for reader in self.readers {
            let _ = tokio::time::timeout(Duration::from_secs(20), reader).await;
        }
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut sum = Counters::default();
        for s in seen.iter() {
            sum += s.counters;
            if let Some(l) = &s.latency {
                latency.merge(l);
            }
        }
        (sum, seen.iter().find_map(|s| s.error.clone()))
    }
}

/// The users of a run, wherever they run.
pub enum Fleet {
    Local(Local),
    Children(Children),
}

impl Fleet {
    pub fn counters(&self) -> Counters {
        match self {
            Fleet::Local(l) => l.stats.counters(),
            Fleet::Children(c) => c.counters(),
        }
    }

    pub fn first_error(&self) -> Option<String> {
        match self {
            Fleet::Local(l) => l.stats.first_error(),
            Fleet::Children(c) => c.first_error(),
        }
    }

    /// Whether no user can make progress any more (every child process is gone).
    pub fn gone(&self) -> bool {
        match self {
            Fleet::Local(_) => false,
            Fleet::Children(c) => c.all_exited(),
        }
    }

    /// The load generator's processes, for its CPU use.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![std::process::id()];
        if let Fleet::Children(c) = self {
            pids.extend(c.pids());
        }
        pids
    }

    pub async fn set_phase(&mut self, phase: Phase) {
        match self {
            Fleet::Local(l) => l.set_phase(phase),
            Fleet::Children(c) => c.set_phase(phase).await,
        }
    }

    /// Stops every user; the final counters, with every latency merged into `latency`.
    pub async fn stop(self, latency: &Histogram) -> (Counters, Option<String>) {
        match self {
            Fleet::Local(l) => {
                let stats = l.stop().await;
                latency.merge(&stats.latency.export());
                (stats.counters(), stats.first_error())
            }
            Fleet::Children(c) => c.stop(latency).await,
        }
    }
}
