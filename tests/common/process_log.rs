//! A child process's log (its stderr), kept line by line for assertions. Waiting for a line
//! is async: a watch channel counts the lines, so a waiting test wakes on each new line
//! instead of sleeping its thread (which would also stall the test's runtime).

use std::io::{BufRead, BufReader};
use std::process::ChildStderr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub struct ProcessLog {
    lines: Arc<Mutex<Vec<String>>>,
    /// How many lines there are; closed when the process closed its stderr.
    count: watch::Receiver<usize>,
}

impl ProcessLog {
    /// Reads `stderr` on a thread of its own. Each line is also sent to `tap` (while it is
    /// listening) and, when `ROOST_TEST_LOG` is set, echoed prefixed with `[tag]`.
    pub fn read(stderr: ChildStderr, tag: &str, tap: Option<mpsc::Sender<String>>) -> ProcessLog {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = watch::channel(0);
        let sink = lines.clone();
        let tag = tag.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("ROOST_TEST_LOG").is_some() {
                    eprintln!("[{tag}] {line}");
                }
                if let Some(tap) = &tap {
                    let _ = tap.send(line.clone());
                }
                let mut lines = sink.lock().unwrap();
                lines.push(line);
                count_tx.send_replace(lines.len());
            }
        });
        ProcessLog { lines, count }
    }

    /// Every line so far, joined.
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The first line `want` accepts, waiting up to `within` for it to be written; `None`
    /// when it did not come in time or the process ended without writing it.
    pub async fn wait_for(&self, within: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut count = self.count.clone();
        let mut checked = 0;
        loop {
            // Marked as seen before looking: a line written after the look wakes us.
            count.borrow_and_update();
            {
                let lines = self.lines.lock().unwrap();
                if let Some(line) = lines[checked..].iter().find(|l| want(l)) {
                    return Some(line.clone());
                }
                checked = lines.len();
            }
            match tokio::time::timeout_at(deadline, count.changed()).await {
                Ok(Ok(())) => {}
                // The process closed its stderr: one last look at what it wrote.
                Ok(Err(_)) => {
                    let lines = self.lines.lock().unwrap();
                    return lines[checked..].iter().find(|l| want(l)).cloned();
                }
                Err(_) => return None,
            }
        }
    }
}
