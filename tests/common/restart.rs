//! Restarting a test node in place: the process is killed (as a crash or a power cut would)
//! and started again on the same data directory and the same addresses, so clients that
//! were connected to it can reconnect by themselves to where it was.

use super::process_log::ProcessLog;
use super::{parse_listening, Node};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

impl Node {
    /// Kills the node (SIGKILL: no goodbye to anyone) and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a killed node again with the same config, data and ports. Only for nodes
    /// with the MQTT and HTTP listeners alone (the builder's defaults).
    pub fn start_again(&mut self) {
        assert!(
            self.ws.is_none() && self.tls.is_none(),
            "start_again keeps only the MQTT and HTTP ports"
        );
        assert!(!self.is_running(), "kill the node first");
        // The same addresses as before, in place of the port 0 the builder wrote.
        let path = self.dir.path().join("roost.toml");
        let config = std::fs::read_to_string(&path).unwrap();
        let any = "listen = \"127.0.0.1:0\"";
        assert_eq!(config.matches(any).count(), 2, "config:\n{config}");
        let config = config
            .replacen(any, &format!("listen = \"{}\"", self.mqtt), 1)
            .replacen(any, &format!("listen = \"{}\"", self.http), 1);
        std::fs::write(&path, config).unwrap();

        let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("ROOST_LOG", "info,rumqttd=warn")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start roost again");
        let (tx, rx) = mpsc::channel();
        let log = ProcessLog::read(child.stderr.take().unwrap(), "roost", Some(tx));
        let mut listening = 0;
        while listening < 2 {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
                let _ = child.kill();
                panic!("roost did not start again; log:\n{}", log.text());
            };
            if let Some((_, addr)) = parse_listening(&line) {
                assert!(addr == self.mqtt || addr == self.http, "moved to {addr}");
                listening += 1;
            }
        }
        self.child = child;
        self.log = log;
    }
}
