//! Restarting a test node in place: the process is killed (as a crash or a power cut would)
//! and started again on the same data directory and the same addresses, so clients that
//! were connected to it can reconnect by themselves to where it was.

use super::{serve, Node};

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

        let (child, log, addrs) = serve(&path, 2, "roost did not start again");
        for addr in addrs.values() {
            assert!(*addr == self.mqtt || *addr == self.http, "moved to {addr}");
        }
        self.child = child;
        self.log = log;
    }
}
