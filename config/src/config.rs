//! The configuration tree and its embedded defaults.
//!
//! Every struct is one `[section]` of the TOML file, every field one key. Field names are
//! the operator contract (`docs/operating.md`): rename none of them.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use roost_auth::AclRule;

use crate::Secret;

/// A whole node configuration. `Config::default()` is what a node with no config file runs
/// on.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: Node,
    pub mqtt: Mqtt,
    pub http: Http,
    pub auth: Auth,
    pub acl: Acl,
    pub limits: Limits,
    pub history: History,
    pub accounts: Accounts,
    pub presence: Presence,
    pub cluster: Cluster,
}

/// `[node]`: where this node keeps its state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Node {
    /// SQLite history, the generated HS256 secret, ... Default `./roost-data`.
    pub data_dir: PathBuf,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            data_dir: PathBuf::from("./roost-data"),
        }
    }
}

/// `[mqtt]`: the MQTT listeners. Only `listen` is always on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Mqtt {
    /// Plain TCP. Default `127.0.0.1:1883`.
    pub listen: SocketAddr,
    /// MQTT over WebSocket, at path `/mqtt`.
    pub ws_listen: Option<SocketAddr>,
    /// MQTT over TLS; needs `tls_cert` and `tls_key`.
    pub tls_listen: Option<SocketAddr>,
    /// MQTT over WebSocket over TLS; needs `tls_cert` and `tls_key`.
    pub wss_listen: Option<SocketAddr>,
    /// PEM certificate chain.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
}

impl Default for Mqtt {
    fn default() -> Self {
        Mqtt {
            listen: localhost(1883),
            ws_listen: None,
            tls_listen: None,
            wss_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[http]`: `/healthz`, `/metrics`, `/api/v1/...`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Open HTTP connections at once; more are answered 503 and closed. Default 256.
    pub max_connections: usize,
    /// Time a client has to send a whole request head (request line and headers), and
    /// the longest an idle keep-alive connection stays open, e.g. `"10s"`. Default 10s.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Origins (`https://app.example`) whose web pages may call `/api/v1` from a browser
    /// (CORS). Empty (the default): no CORS headers at all, so browsers refuse
    /// cross-origin calls.
    pub cors_origins: Vec<String>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: localhost(8080),
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            cors_origins: Vec::new(),
        }
    }
}

/// `[auth]`: how client JWTs are verified.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// HS256 shared secret. `None`: the broker uses the secret it keeps in `data_dir`.
    pub jwt_secret: Option<Secret>,
    /// RS256 / ES256 public keys (PEM files).
    pub jwt_public_keys: Vec<PathBuf>,
    /// A JWKS file of public keys, chosen by `kid`.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim, when set.
    pub issuer: Option<String>,
    /// Required `aud` claim, when set.
    pub audience: Option<String>,
    /// Development only: clients without a token connect as `anon-{client id}`.
    pub allow_anonymous: bool,
}

/// `[acl]`: deployment rules for topics outside `im/`, first match deciding, deny by
/// default. Their meaning is checked by `roost_auth::Acl::new`, not here.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Acl {
    pub rules: Vec<AclRule>,
}

/// `[limits]`: per node and per connection bounds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Concurrent client connections. Default 100000.
    pub max_connections: usize,
    /// Largest MQTT packet accepted, in bytes. Default 69632: a 64 KiB chat payload plus
    /// room for its topic and properties.
    pub max_packet_size: usize,
    /// Time a new connection has to send CONNECT, e.g. `"5s"`. Default 5s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// QoS > 0 publishes a client may have unacknowledged. Default 64.
    pub receive_maximum: u16,
    /// MQTT 5 topic aliases a client may set (announced in CONNACK as Topic Alias
    /// Maximum; 0: none). Default 10.
    pub topic_alias_maximum: u16,
    /// Subscriptions per connection. Default 100.
    pub max_subscriptions: usize,
    /// Time a client has to take what the node writes to it, e.g. `"30s"`; a client that
    /// stops reading is disconnected after it (slow consumer). Default 30s.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Retained topics outside `im/` one user may hold (0: none). Default 256.
    pub max_retained_per_user: usize,
    /// Messages a persistent session gets of what queued up while it was away; the oldest
    /// QoS 0 ones, then the oldest QoS 1/2 ones, beyond it are dropped when it resumes
    /// (0: no bound but the logs' own). Default 1000.
    pub max_queued_messages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 100_000,
            max_packet_size: 69_632,
            connect_timeout: Duration::from_secs(5),
            receive_maximum: 64,
            topic_alias_maximum: 10,
            max_subscriptions: 100,
            write_timeout: Duration::from_secs(30),
            max_retained_per_user: 256,
            max_queued_messages: 1000,
        }
    }
}

/// `[history]`: where chat messages are stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct History {
    /// `sqlite:...` or `postgres://...`. `None`: SQLite in `data_dir/history.db`.
    pub database_url: Option<String>,
    /// Run a history service inside the node. Turn off when `roost history-worker`
    /// processes do the storing; the node still serves `/api/v1/...` from the database.
    pub service: bool,
    /// Delete messages older than this (e.g. `"90d"`). Default: keep forever.
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// Keep at most this many messages per conversation. Default: no limit.
    pub max_messages: Option<u64>,
    /// History requests per second each user may make (also their burst); more are
    /// answered `rate_limited`.
    pub max_requests_per_second: u32,
    /// Database connections in the history pool. Default: 10 on PostgreSQL, 4 on SQLite
    /// (one writer at a time there anyway).
    pub pool_size: Option<u32>,
    /// How chat messages reach their recipients. Default (unset): `stamped` when
    /// `service` is on, `direct` when it is off. See [`History::delivery`].
    pub delivery: Option<Delivery>,
}

/// `history.delivery`: how a chat message on a stored topic reaches its recipients.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Stored first, then delivered by the history service as a copy carrying `conv`,
    /// `seq`, `ts` and `from` (docs/protocol.md section 4).
    Stamped,
    /// Delivered as sent, at once; stored beside (the behaviour before stamping).
    Direct,
}

impl History {
    /// The delivery in force: `delivery` if set, else `stamped` when this node runs a
    /// history service and `direct` when it does not (stamped messages would wait for
    /// ever without one). Nodes and `history-worker`s must agree on it.
    pub fn delivery(&self) -> Delivery {
        self.delivery.unwrap_or(if self.service {
            Delivery::Stamped
        } else {
            Delivery::Direct
        })
    }
}

impl Default for History {
    fn default() -> Self {
        History {
            database_url: None,
            service: true,
            max_age: None,
            max_messages: None,
            max_requests_per_second: 20,
            pool_size: None,
            delivery: None,
        }
    }
}

/// `[accounts]`: users and groups kept in the history database (issue 13): `roost user`,
/// `POST /api/v1/login`, MQTT sign-in with a password.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Accounts {
    /// How long a token from `POST /api/v1/login` or `/api/v1/token` is valid. Default 12h.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// A CONNECT whose password is not a JWT is checked as the account password of its
    /// username. Default true.
    pub mqtt_passwords: bool,
    /// Passwords hashed at once (each takes one core for tens of milliseconds). Default 2.
    pub hash_workers: usize,
    /// Password checks waiting for a worker; more are refused (CONNACK "server busy",
    /// HTTP 503). Default 128.
    pub hash_queue: usize,
    /// Login attempts per minute from one address, and for one user name; more are
    /// answered 429 (HTTP) or refused (MQTT failures). Default 10.
    pub login_attempts_per_minute: u32,
    /// How often the node checks its signed-in users against the store: a user disabled or
    /// deleted meanwhile (by `roost user` on any machine) is disconnected. Default 10s.
    #[serde(with = "humantime_serde")]
    pub recheck_interval: Duration,
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            token_ttl: Duration::from_secs(12 * 3600),
            mqtt_passwords: true,
            hash_workers: 2,
            hash_queue: 128,
            login_attempts_per_minute: 10,
            recheck_interval: Duration::from_secs(10),
        }
    }
}

/// `[presence]`: who sees whose `im/presence/{user}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Presence {
    /// Default `groups`.
    pub visibility: Visibility,
}

/// `presence.visibility`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Every signed-in user sees everyone's presence (the behaviour before `groups`).
    All,
    /// A user sees the presence of users who share a group or a conversation with them
    /// (docs/protocol.md section 3, "Presence").
    #[default]
    Groups,
}

/// `[cluster]`: this node as one of several behind a load balancer, linked through NATS
/// (docs/cluster.md). Clustering is on when `nats` lists at least one server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// This node's name in the cluster, unique. `None`: the host name, filled in by
    /// [`load`](crate::load) when clustering is on.
    pub node_id: Option<String>,
    /// NATS servers to connect to (`nats://`, `tls://`), any subset of the NATS cluster.
    pub nats: Vec<String>,
    /// A NATS credentials file (JWT + NKey seed). Exclusive with the other credentials.
    pub nats_creds: Option<PathBuf>,
    /// NATS user name; needs `nats_password`.
    pub nats_user: Option<String>,
    /// NATS password; needs `nats_user`.
    pub nats_password: Option<Secret>,
    /// NATS token.
    pub nats_token: Option<Secret>,
    /// First subject tokens of everything roost puts on NATS. Default `roost`.
    pub subject_prefix: String,
    /// A node silent this long is dead; survivors publish its users offline. Default 10s.
    #[serde(with = "humantime_serde")]
    pub node_timeout: Duration,
    /// How long a drain (SIGTERM, `roost drain`) spreads its disconnects over, e.g. `"30s"`.
    /// Default (unset): 30s.
    #[serde(with = "humantime_serde")]
    pub drain_period: Option<Duration>,
    /// Where HAProxy's agent check is answered (`ready up 40%`, `drain`). Default: off.
    pub agent_listen: Option<SocketAddr>,
}

impl Cluster {
    /// Whether this node is part of a cluster.
    pub fn enabled(&self) -> bool {
        !self.nats.is_empty()
    }

    /// `drain_period`, or its default of 30 seconds.
    pub fn drain_period(&self) -> Duration {
        self.drain_period.unwrap_or(Duration::from_secs(30))
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            node_id: None,
            nats: Vec::new(),
            nats_creds: None,
            nats_user: None,
            nats_password: None,
            nats_token: None,
            subject_prefix: "roost".into(),
            node_timeout: Duration::from_secs(10),
            drain_period: None,
            agent_listen: None,
        }
    }
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
