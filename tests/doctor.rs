//! `roost doctor` run for real on this host, and the deployment files of deploy/ checked by
//! the tools that will read them (systemd-analyze, nats-server, the kernel's /proc/sys).
mod common;

use common::pg::PgDb;
use common::tools::describe;
use common::Node;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ROOST: &str = env!("CARGO_BIN_EXE_roost");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Every check, in the order the doctor prints them (a host without a cluster or Postgres).
const CHECKS: [&str; 14] = [
    "board",
    "open files",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "memory",
    "data dir fsync",
    "data dir free space",
    "cpu temperature",
    "cpu frequency",
    "pi throttling",
    "clock sync",
    "postgres",
    "cluster links",
];

/// A config file with `toml`, its data dir in the same temporary directory.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(toml: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let text = format!(
            "[node]\ndata_dir = {:?}\n{toml}\n",
            data.display().to_string()
        );
        std::fs::write(dir.path().join("roost.toml"), text).unwrap();
        Setup { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("roost.toml")
    }

    /// `roost doctor --config ... [args]` through `sh -c` so a test can lower a limit first.
    fn doctor(&self, shell_prefix: &str, args: &str) -> Output {
        let script = format!("{shell_prefix} exec \"$0\" doctor --config \"$1\" {args}",);
        let mut cmd = Command::new("timeout");
        cmd.args(["60", "sh", "-c", &script, ROOST])
            .arg(self.config())
            .stdin(Stdio::null());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ROOST_") {
                cmd.env_remove(name);
            }
        }
        cmd.output().expect("run roost doctor")
    }

    fn json(&self, shell_prefix: &str) -> (i32, Value) {
        let out = self.doctor(shell_prefix, "--json");
        let code = out
            .status
            .code()
            .unwrap_or_else(|| panic!("{}", describe(&out)));
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", describe(&out)));
        (code, json)
    }
}

fn check<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {json:#}"))
}

fn worst(json: &Value) -> i32 {
    let statuses: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    if statuses.contains(&"fail") {
        2
    } else if statuses.contains(&"warn") {
        1
    } else {
        0
    }
}

#[test]
fn doctor_checks_this_host_and_exits_with_its_verdict() {
    let setup = Setup::new("[limits]\nmax_connections = 100\n");
    let (code, json) = setup.json("");
    let names: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(names, CHECKS, "{json:#}");
    // The exit code is the worst status: 0 ok, 1 warnings, 2 failures.
    assert_eq!(code, worst(&json), "{json:#}");
    assert_eq!(json["exit_code"], code);

    // 100 connections fit in any test machine's limits and memory.
    assert_eq!(check(&json, "open files")["status"], "ok", "{json:#}");
    assert_eq!(check(&json, "memory")["status"], "ok", "{json:#}");
    // The data dir does not exist yet: the probe writes next to it, on the same disk.
    let fsync = check(&json, "data dir fsync");
    assert_ne!(fsync["status"], "fail", "{json:#}");
    assert!(
        fsync["found"].as_str().unwrap().contains("writes"),
        "{fsync}"
    );
    assert!(
        !setup.dir.path().join("data").exists(),
        "the doctor created the data dir"
    );
    // Files this host may not have are unknown, never failures.
    for name in ["board", "cpu temperature", "cpu frequency", "pi throttling"] {
        assert_ne!(check(&json, name)["status"], "fail", "{json:#}");
    }
    for c in json["checks"].as_array().unwrap() {
        if c["status"] == "warn" || c["status"] == "fail" {
            assert!(!c["fix"].as_str().unwrap().is_empty(), "no fix for {c}");
        }
    }

    // The table says the same.
    let out = setup.doctor("", "");
    assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("CHECK"), "{table}");
    for name in CHECKS {
        assert!(table.contains(name), "{name} missing:\n{table}");
    }
    assert!(table.contains(&format!("(exit code {code})")), "{table}");
}

#[test]
fn doctor_fails_when_the_open_file_limit_cannot_hold_max_connections() {
    let setup = Setup::new("[limits]\nmax_connections = 1000\n");
    let (code, json) = setup.json("ulimit -n 512 &&");
    let nofile = check(&json, "open files");
    assert_eq!(nofile["status"], "fail", "{json:#}");
    assert!(
        nofile["found"]
            .as_str()
            .unwrap()
            .starts_with("soft 512 / hard 512"),
        "{nofile}"
    );
    assert!(
        nofile["fix"].as_str().unwrap().contains("LimitNOFILE=1138"),
        "{nofile}"
    );
    assert_eq!(code, 2);
}

#[test]
fn doctor_reaches_postgres_and_cluster_links() {
    let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let db = PgDb::create();
    let setup = Setup::new(&format!(
        "[history]\ndatabase_url = \"{}\"\n\
         [cluster]\nnats = [\"tls://{}\", \"nats://{closed}\"]\n",
        db.url,
        listening.local_addr().unwrap()
    ));
    let (code, json) = setup.json("");
    let pg = check(&json, "postgres");
    assert_ne!(pg["status"], "fail", "PostgreSQL at {}: {pg}", db.url);
    assert!(
        pg["found"].as_str().unwrap().starts_with("PostgreSQL "),
        "{pg}"
    );
    assert!(
        pg["found"].as_str().unwrap().contains("synchronous_commit"),
        "{pg}"
    );

    let links: Vec<&Value> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "cluster link")
        .collect();
    assert_eq!(links.len(), 2, "{json:#}");
    assert_eq!(links[0]["status"], "ok", "{}", links[0]);
    assert_eq!(links[1]["status"], "fail", "{}", links[1]);
    assert!(links[1]["found"]
        .as_str()
        .unwrap()
        .contains(&closed.to_string()));
    assert_eq!(code, 2);
}

#[test]
fn doctor_on_a_bad_config_names_the_key_and_exits_2() {
    let setup = Setup::new("[history]\npool_size = 0\n");
    let out = setup.doctor("", "");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("history.pool_size"),
        "{}",
        describe(&out)
    );
}

#[test]
fn mqtt_listener_asks_for_a_4096_connection_accept_queue() {
    // `ss` shows a listening socket's backlog as its Send-Q; the kernel caps the request at
    // net.core.somaxconn, which the doctor checks.
    let node = Node::start();
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{}", node.mqtt.port())])
        .output()
        .expect("ss (iproute2) is needed by this test");
    let text = String::from_utf8_lossy(&out.stdout);
    let send_q: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listener in ss output:\n{}", describe(&out)));
    assert_eq!(send_q, 4096.min(somaxconn), "{text}");
}

/// Copies the units with their ExecStart pointing at the binary just built, as installed.
fn units_as_installed(dir: &Path) -> Vec<PathBuf> {
    ["roost.service", "roost-history-worker.service"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(Path::new(REPO).join("deploy/systemd").join(name))
                .unwrap()
                .replace("/usr/local/bin/roost", ROOST);
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let units = units_as_installed(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze not runnable ({e}): install it (apt-get install systemd; .ci/run does)")
        });
    // Unknown keys are only warnings to systemd: any output at all is a finding.
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "{}",
        describe(&out)
    );
    let node = std::fs::read_to_string(&units[0]).unwrap();
    for line in [
        "LimitNOFILE=131072",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=roost",
    ] {
        assert!(
            node.lines().any(|l| l == line),
            "roost.service lacks {line}"
        );
    }
}

#[test]
fn nats_cluster_config_is_valid_for_nats_server() {
    let conf = Path::new(REPO).join("deploy/nats/nats-server.conf");
    let out = Command::new("nats-server")
        .args(["--config"])
        .arg(&conf)
        .arg("-t")
        .output()
        .unwrap_or_else(|e| {
            panic!("nats-server not runnable ({e}): install it (apt-get install nats-server; .ci/run does)")
        });
    assert!(out.status.success(), "{}", describe(&out));
    let text = std::fs::read_to_string(conf).unwrap();
    let routes = text.matches("nats-route://").count();
    assert_eq!(routes, 3, "a 3-Pi cluster routes to 3 servers");
}

#[test]
fn sysctl_file_sets_only_real_kernel_keys_each_explained() {
    let text =
        std::fs::read_to_string(Path::new(REPO).join("deploy/sysctl.d/90-roost.conf")).unwrap();
    let mut previous = "";
    let mut keys = 0;
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            let key = key.trim();
            let proc = Path::new("/proc/sys").join(key.replace('.', "/"));
            assert!(
                proc.exists(),
                "{key} is not a kernel setting ({})",
                proc.display()
            );
            assert!(!value.trim().is_empty(), "{key} has no value");
            assert!(
                previous.starts_with('#'),
                "{key} has no comment explaining it"
            );
            keys += 1;
        }
        previous = line;
    }
    assert!(keys >= 3, "{text}");
    for key in [
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.ip_local_port_range",
    ] {
        assert!(text.contains(&format!("{key} = ")), "{key} missing");
    }
}
