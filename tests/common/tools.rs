//! Other programs the end-to-end tests drive: Mosquitto's command line clients and Python
//! paho-mqtt scripts (tests/python), each bounded in time.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Longest any single client process may run before the test gives up on it.
const PROCESS_LIMIT: &str = "60";

/// The Debian package of each program the tests run, for the failure when one is missing.
const PACKAGES: &[(&str, &str)] = &[
    ("mosquitto_pub", "mosquitto-clients"),
    ("mosquitto_sub", "mosquitto-clients"),
    ("sqlite3", "sqlite3"),
    ("psql", "postgresql-client"),
    ("openssl", "openssl"),
    ("python3", "python3"),
    ("chromedriver", "chromium-driver"),
    ("chromium", "chromium"),
    ("timeout", "coreutils"),
    ("stdbuf", "coreutils"),
];

/// Panics, saying what to install, unless `program` is on the PATH (or is an existing
/// path): a test that lacks its tool fails, it is never skipped.
pub fn require(program: &str) {
    if program.contains('/') {
        assert!(Path::new(program).is_file(), "{program} does not exist");
        return;
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()));
    if !found {
        let package = PACKAGES
            .iter()
            .find(|(p, _)| *p == program)
            .map_or(program, |(_, package)| *package);
        panic!(
            "{program} is not installed: run the tests with scripts/test (it installs what \
             is missing), or apt install {package}"
        );
    }
}

/// Runs `program args...` under coreutils `timeout`, so a hung client fails the test.
pub fn run_bounded(program: &str, args: &[&str]) -> Output {
    require("timeout");
    require(program);
    Command::new("timeout")
        .arg(PROCESS_LIMIT)
        .arg(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A running `mosquitto_sub -d -v`, its stdout read line by line.
pub struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Subscriber {
    pub fn start(args: &[&str]) -> Subscriber {
        require("stdbuf");
        require("mosquitto_sub");
        // Line-buffered: a piped stdout would otherwise hold the SUBACK line back.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-d", "-v"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto_sub (apt install mosquitto-clients)");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Subscriber {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a stdout line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "mosquitto_sub printed no line with {needle:?}; it printed:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for the process to exit by itself (it was given `-C`); its exit status.
    pub fn exit_status(mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("mosquitto_sub did not exit after its message");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python that has paho-mqtt: `ROOST_TEST_PYTHON` (scripts/test points it at its venv
/// under target/), else `python3`.
fn python() -> String {
    std::env::var("ROOST_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Runs a paho-mqtt script from tests/python with `args`; panics unless it exits 0.
pub fn paho(script: &str, args: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let python = python();
    let probe = run_bounded(
        &python,
        &["-c", "import paho.mqtt.client as m; m.CallbackAPIVersion"],
    );
    assert!(
        probe.status.success(),
        "{python} has no paho-mqtt 2.x: run the tests with scripts/test (it makes a venv \
         with it), or pip install 'paho-mqtt>=2' and set ROOST_TEST_PYTHON\n{}",
        describe(&probe)
    );
    let script = dir.join(script);
    // -B: no __pycache__ in the source tree.
    let mut all = vec!["-B", script.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run_bounded(&python, &all);
    assert!(out.status.success(), "{}", describe(&out));
}
