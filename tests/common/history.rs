//! Helpers for the history tests (docs/protocol.md sections 4-5): nodes on either backend, an
//! MQTT 5 user that keeps every packet it receives until the test asks for it, requests
//! with correlation ids, `roost history-worker` processes and an HTTP GET with a Bearer
//! token.

use super::backend::Backend;
use super::client::{Client, Mqtt5, Version};
use super::http::http_get;
use super::pg::PgDb;
use super::process_log::ProcessLog;
use super::{token_with, Node};
use roost_auth::Role;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAck, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a test waits for a notice, a result or a delivery it is owed.
pub const WAIT: Duration = Duration::from_secs(15);
const HOUR: Duration = Duration::from_secs(3600);
/// How long an HTTP API request may take to be answered.
pub const HTTP_WAIT: Duration = Duration::from_secs(30);

/// A node and, on Postgres, its database (dropped after the node: fields drop in order).
pub struct HistNode {
    pub node: Node,
    pub db: Option<PgDb>,
}

impl std::ops::Deref for HistNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl HistNode {
    pub fn start(backend: Backend) -> HistNode {
        HistNode::start_with(backend, "", "")
    }

    /// `history` is extra `[history]` keys; `other` is whole other sections.
    pub fn start_with(backend: Backend, history: &str, other: &str) -> HistNode {
        let db = (backend == Backend::Postgres).then(PgDb::create);
        let mut toml = String::new();
        if let Some(db) = &db {
            toml.push_str(&format!(
                "[history]\ndatabase_url = \"{}\"\n{history}\n",
                db.url
            ));
        } else if !history.is_empty() {
            toml.push_str(&format!("[history]\n{history}\n"));
        }
        toml.push_str(other);
        let node = Node::builder().toml(&toml).start();
        HistNode { node, db }
    }

    /// Runs SQL against the node's history database (psql or sqlite3), rows as lines with
    /// `|` between columns.
    pub fn sql(&self, query: &str) -> String {
        match &self.db {
            Some(db) => db.query(query),
            None => sqlite(&self.node.dir.path().join("data/history.db"), query),
        }
    }

    /// The stored rows of `conv` as `seq|sender|msg_id`, in seq order.
    pub fn rows(&self, conv: &str) -> Vec<String> {
        let out = self.sql(&format!(
            "SELECT seq, sender, msg_id FROM history_messages WHERE conv = '{conv}' ORDER BY seq"
        ));
        out.lines().map(str::to_owned).collect()
    }
}

/// Runs SQL on a SQLite file with the `sqlite3` shell.
pub fn sqlite(file: &Path, query: &str) -> String {
    super::tools::require("sqlite3");
    let out = Command::new("timeout")
        .args(["30", "sqlite3", "-bail", "-cmd", ".timeout 10000"])
        .arg(file)
        .arg(query)
        .stdin(Stdio::null())
        .output()
        .expect("sqlite3 (apt install sqlite3)");
    assert!(
        out.status.success(),
        "sqlite3 {query:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// A chat payload (docs/protocol.md section 4).
pub fn chat(id: &str, body: &str) -> String {
    json!({"id": id, "kind": "text", "body": body}).to_string()
}

/// The sorted keys of a JSON object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// The `seq`s of a list of messages.
pub fn seqs(messages: &Value) -> Vec<i64> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {messages}"))
        .iter()
        .map(|m| m["seq"].as_i64().unwrap_or_else(|| panic!("no seq: {m}")))
        .collect()
}

/// The `id`s of a list of messages.
pub fn ids(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {messages}"))
        .iter()
        .map(|m| {
            m["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no id: {m}"))
                .to_owned()
        })
        .collect()
}

/// An MQTT 5 user subscribed to its `im/sys/{me}`. Every packet the node sends is kept, in
/// order, until a `take` consumes it, so waiting for one notice never loses another.
pub struct Peer {
    pub user: String,
    pub client_id: String,
    pub mqtt: Client<Mqtt5>,
    kept: VecDeque<Packet>,
    requests: u64,
    /// How long `expect` and friends wait.
    pub wait: Duration,
}

impl Peer {
    /// `user` in `groups`, client id = user.
    pub async fn connect(node: &Node, user: &str, groups: &[&str]) -> Peer {
        Peer::connect_as(node.mqtt, user, user, groups).await
    }

    /// Another device of `user`: client id `{user}:{device}`.
    pub async fn device(node: &Node, user: &str, device: &str, groups: &[&str]) -> Peer {
        Peer::connect_as(node.mqtt, user, &format!("{user}:{device}"), groups).await
    }

    pub async fn connect_as(
        addr: SocketAddr,
        user: &str,
        client_id: &str,
        groups: &[&str],
    ) -> Peer {
        // rumqttc accepts 10 KiB by default; a page of history is bigger.
        Peer::connect_limited(addr, user, client_id, groups, 16 << 20).await
    }

    /// Like `connect_as`, but a failed connection is an `Err` (how it failed), not a panic.
    pub async fn try_connect_as(
        addr: SocketAddr,
        user: &str,
        client_id: &str,
    ) -> Result<Peer, String> {
        let token = token_with(user, &[], Role::User, HOUR);
        let mut options = Mqtt5::new(client_id, addr.ip().to_string(), addr.port());
        options.set_credentials(user, &token);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(Some(16 << 20));
        let mqtt = Client::try_connect(options).await?;
        let mut peer = Peer {
            user: user.to_owned(),
            client_id: client_id.to_owned(),
            mqtt,
            kept: VecDeque::new(),
            requests: 0,
            wait: Duration::from_secs(60),
        };
        peer.subscribe(&format!("im/sys/{user}")).await;
        Ok(peer)
    }

    /// Like `connect_as`, announcing `max_packet` as the v5 Maximum Packet Size.
    pub async fn connect_limited(
        addr: SocketAddr,
        user: &str,
        client_id: &str,
        groups: &[&str],
        max_packet: u32,
    ) -> Peer {
        let token = token_with(user, groups, Role::User, HOUR);
        let mut options = Mqtt5::new(client_id, addr.ip().to_string(), addr.port());
        options.set_credentials(user, &token);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(Some(max_packet));
        let mqtt = match Client::connect(options).await {
            Ok(mqtt) => mqtt,
            Err(refusal) => panic!("{client_id} was refused: {refusal:?}"),
        };
        let mut peer = Peer {
            user: user.to_owned(),
            client_id: client_id.to_owned(),
            mqtt,
            kept: VecDeque::new(),
            requests: 0,
            wait: WAIT,
        };
        peer.subscribe(&format!("im/sys/{user}")).await;
        // Answers to a device's requests come on its own topic.
        if peer.answers_topic() != peer.sys_topic() {
            peer.subscribe(&peer.answers_topic()).await;
        }
        peer
    }

    /// Subscribes at QoS 1; panics unless granted.
    pub async fn subscribe(&mut self, filter: &str) {
        Mqtt5::subscribe(&self.mqtt.client, &[filter]).await;
        match self
            .expect("SUBACK", |p| matches!(p, Packet::SubAck(_)))
            .await
        {
            Packet::SubAck(ack) => assert!(
                ack.return_codes.iter().all(|c| matches!(
                    c,
                    rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)
                )),
                "{} subscribing {filter}: {:?}",
                self.client_id,
                ack.return_codes
            ),
            _ => unreachable!(),
        }
    }

    /// Publishes `payload` at QoS 1.
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        Mqtt5::publish(&self.mqtt.client, topic, payload.into()).await;
    }

    /// A direct message to `to`.
    pub async fn dm(&self, to: &str, id: &str, body: &str) {
        self.publish(&format!("im/dm/{to}/{}", self.user), chat(id, body))
            .await;
    }

    /// A message to `group`.
    pub async fn grp(&self, group: &str, id: &str, body: &str) {
        self.publish(&format!("im/grp/{group}/{}", self.user), chat(id, body))
            .await;
    }

    /// The next PUBACK.
    pub async fn puback(&mut self) -> PubAck {
        match self
            .expect("PUBACK", |p| matches!(p, Packet::PubAck(_)))
            .await
        {
            Packet::PubAck(ack) => ack,
            _ => unreachable!(),
        }
    }

    /// Moves whatever arrived so far into the kept packets (no waiting).
    fn drain(&mut self) {
        while let Some(item) = self.mqtt.try_recv() {
            match item {
                Ok(packet) => self.kept.push_back(packet),
                Err(e) => panic!("{}: connection ended: {e}", self.client_id),
            }
        }
    }

    /// The first packet (kept or arriving within `within`) that `want` accepts, consumed;
    /// `None` if none came in time. Panics if the connection ends.
    pub async fn take(
        &mut self,
        within: Duration,
        want: impl Fn(&Packet) -> bool,
    ) -> Option<Packet> {
        match self.try_take(within, want).await {
            Ok(p) => p,
            Err(e) => panic!("{}: connection ended: {e}", self.client_id),
        }
    }

    /// Like `take`, but `Err` (how it ended) if the connection ends first.
    pub async fn try_take(
        &mut self,
        within: Duration,
        want: impl Fn(&Packet) -> bool,
    ) -> Result<Option<Packet>, String> {
        if let Some(i) = self.kept.iter().position(&want) {
            return Ok(self.kept.remove(i));
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.mqtt.recv_until(deadline).await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(packet)) => {
                    if want(&packet) {
                        return Ok(Some(packet));
                    }
                    self.kept.push_back(packet);
                }
            }
        }
    }

    /// Like `take` within `self.wait`, panicking with `what` and what did arrive.
    pub async fn expect(&mut self, what: &str, want: impl Fn(&Packet) -> bool) -> Packet {
        match self.take(self.wait, want).await {
            Some(p) => p,
            None => panic!(
                "{}: no {what} within {:?}; kept meanwhile:\n{}",
                self.client_id,
                self.wait,
                self.describe_kept()
            ),
        }
    }

    fn describe_kept(&self) -> String {
        self.kept
            .iter()
            .map(|p| match p {
                Packet::Publish(p) => format!(
                    "  PUBLISH {} {}",
                    String::from_utf8_lossy(&p.topic),
                    String::from_utf8_lossy(&p.payload)
                ),
                other => format!("  {other:?}"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn sys_topic(&self) -> String {
        format!("im/sys/{}", self.user)
    }

    /// Where the answers to my requests come: `im/sys/{user}/{device}`, or `im/sys/{user}`
    /// for a client id without a device.
    pub fn answers_topic(&self) -> String {
        match self.client_id.split_once(':') {
            Some((_, device)) => format!("im/sys/{}/{device}", self.user),
            None => self.sys_topic(),
        }
    }

    /// The JSON of a publish on my `im/sys` or my device's answers topic, if it is one.
    fn notice_of(sys: &(String, String), p: &Packet) -> Option<Value> {
        match p {
            Packet::Publish(p)
                if p.topic.as_ref() == sys.0.as_bytes() || p.topic.as_ref() == sys.1.as_bytes() =>
            {
                serde_json::from_slice(&p.payload).ok()
            }
            _ => None,
        }
    }

    /// The first notice on `im/sys/{me}` that `want` accepts.
    pub async fn notice(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let sys = (self.sys_topic(), self.answers_topic());
        let p = self
            .expect(what, |p| Self::notice_of(&sys, p).is_some_and(|v| want(&v)))
            .await;
        Self::notice_of(&sys, &p).unwrap()
    }

    /// Like `notice`, but `None` after `within`.
    pub async fn notice_within(
        &mut self,
        within: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let sys = (self.sys_topic(), self.answers_topic());
        let p = self
            .take(within, |p| {
                Self::notice_of(&sys, p).is_some_and(|v| want(&v))
            })
            .await?;
        Self::notice_of(&sys, &p)
    }

    /// The `ack` of my message `id`.
    pub async fn ack(&mut self, id: &str) -> Value {
        self.notice(&format!("ack of {id}"), |v| {
            v["type"] == "ack" && v["id"] == id
        })
        .await
    }

    /// The acks of all `ids` (in that order, whatever order they arrived in).
    pub async fn acks(&mut self, ids: &[String]) -> Vec<Value> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.ack(id).await);
        }
        out
    }

    /// The next `error` notice.
    pub async fn error_notice(&mut self) -> Value {
        self.notice("error notice", |v| v["type"] == "error").await
    }

    /// Notices on my `im/sys` that arrived so far and are still kept (not consumed).
    pub fn kept_notices(&mut self) -> Vec<Value> {
        self.drain();
        let sys = (self.sys_topic(), self.answers_topic());
        self.kept
            .iter()
            .filter_map(|p| Self::notice_of(&sys, p))
            .collect()
    }

    /// The next chat message delivered (on `im/dm/...` or `im/grp/...`), as (topic,
    /// payload JSON).
    pub async fn next_chat(&mut self) -> (String, Value) {
        let p = self
            .expect("chat message", |p| {
                matches!(p, Packet::Publish(p)
                    if p.topic.starts_with(b"im/dm/") || p.topic.starts_with(b"im/grp/"))
            })
            .await;
        match p {
            Packet::Publish(p) => (
                String::from_utf8_lossy(&p.topic).into_owned(),
                serde_json::from_slice(&p.payload).unwrap_or(Value::Null),
            ),
            _ => unreachable!(),
        }
    }

    /// A fresh correlation id.
    fn next_req(&mut self) -> String {
        self.requests += 1;
        format!("{}#{}", self.client_id, self.requests)
    }

    /// Publishes a request to `im/req/{me}` with these extra user properties and returns
    /// the `result` notice answering it (whole: `{type, req, result | error}`).
    pub async fn request_with(
        &mut self,
        method: &str,
        params: Value,
        user_properties: Vec<(String, String)>,
    ) -> Value {
        let req = self.next_req();
        let body = json!({"req": req, "method": method, "params": params}).to_string();
        let topic = format!("im/req/{}", self.user);
        if user_properties.is_empty() {
            self.publish(&topic, body).await;
        } else {
            let props = PublishProperties {
                user_properties,
                ..Default::default()
            };
            self.mqtt
                .client
                .publish_with_properties(topic, QoS::AtLeastOnce, false, body, props)
                .await
                .unwrap();
        }
        let r = req.clone();
        self.notice(&format!("result of {method} {req}"), move |v| {
            v["type"] == "result" && v["req"] == r.as_str()
        })
        .await
    }

    /// The whole `result` notice answering `method(params)`.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.request_with(method, params, Vec::new()).await
    }

    /// The `result` of a request that must succeed.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let answer = self.request(method, params.clone()).await;
        assert!(
            answer.get("error").is_none() && answer.get("result").is_some(),
            "{} {method} {params} failed: {answer}",
            self.client_id
        );
        answer["result"].clone()
    }

    /// The error `code` of a request that must fail.
    pub async fn refused(&mut self, method: &str, params: Value) -> String {
        let answer = self.request(method, params.clone()).await;
        assert!(
            answer.get("result").is_none(),
            "{} {method} {params} should have been refused: {answer}",
            self.client_id
        );
        answer["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {answer}"))
            .to_owned()
    }

    /// `history` of `conv` with these extra params.
    pub async fn history(&mut self, conv: &str, mut params: Value) -> Value {
        params["conv"] = json!(conv);
        self.call("history", params).await
    }

    /// Every message `sync` gives from `cursor`, page by page with pages of `limit`:
    /// (messages, final cursor, number of pages).
    pub async fn sync_all(
        &mut self,
        cursor: Option<&str>,
        limit: u32,
    ) -> (Vec<Value>, String, usize) {
        let mut cursor = cursor.map(str::to_owned);
        let mut all = Vec::new();
        let mut pages = 0;
        loop {
            let mut params = json!({"limit": limit});
            if let Some(c) = &cursor {
                params["cursor"] = json!(c);
            }
            let page = self.call("sync", params).await;
            pages += 1;
            let messages = page["messages"].as_array().expect("messages").clone();
            assert!(
                messages.len() <= limit as usize,
                "a sync page of {} messages with limit {limit}",
                messages.len()
            );
            all.extend(messages);
            cursor = Some(page["cursor"].as_str().expect("cursor").to_owned());
            if page["more"] != true {
                break;
            }
            assert!(pages < 1000, "sync never ends");
        }
        (all, cursor.unwrap(), pages)
    }
}

/// Sends `id` from `from` to `to` until its ack comes (each try waits a second): the way
/// to know a freshly started worker has subscribed, since messages published before that
/// reach no history service at all. Retries are safe: same (from, id).
pub async fn send_until_acked(from: &mut Peer, to: &str, id: &str) -> Value {
    for _ in 0..30 {
        from.dm(to, id, "probe").await;
        if let Some(ack) = from
            .notice_within(Duration::from_secs(1), |n| {
                n["type"] == "ack" && n["id"] == id
            })
            .await
        {
            return ack;
        }
    }
    panic!("no ack of {id} within 30 tries: is the history worker running?");
}

/// The payload of a publish as text.
pub fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// `GET /api/v1/conversations/{conv}/messages{query}` with `Bearer {token}`.
pub fn api_messages(node: &Node, conv: &str, query: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let answer = http_get(
        node.http,
        &format!("/api/v1/conversations/{conv}/messages{query}"),
        auth.as_deref(),
        HTTP_WAIT,
    );
    (answer.status, answer.json())
}

/// A `roost history-worker` process, killed when dropped; its log is kept.
pub struct Worker {
    child: Child,
    log: ProcessLog,
    pub name: String,
}

impl Worker {
    /// Starts a worker for `node` with the node's own config file (its `[history]` database
    /// and its HS256 secret). Logs at debug for the history crate, so each committed batch
    /// shows up as `history batch committed ... stored=N`.
    pub fn start(node: &Node, name: &str) -> Worker {
        let config = node.dir.path().join("roost.toml");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roost"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ROOST_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .arg("history-worker")
            .arg("--config")
            .arg(&config)
            .arg("--broker")
            .arg(format!("mqtt://{}", node.mqtt))
            .arg("--name")
            .arg(name)
            .env("ROOST_LOG", "info,roost_history=debug,rumqttc=warn")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start roost history-worker");
        let log = ProcessLog::read(child.stderr.take().unwrap(), name, None);
        Worker {
            child,
            log,
            name: name.to_owned(),
        }
    }

    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// How many messages this worker has committed (new ones, not duplicates), from its
    /// `history batch committed ... stored=N` lines.
    pub fn stored(&self) -> u64 {
        self.log
            .lines()
            .iter()
            .filter(|l| l.contains("history batch committed"))
            .filter_map(|l| {
                l.split("stored=")
                    .nth(1)?
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
