//! A running node: everything `roost serve` starts, and what its connections share.

use crate::drain::Drain;
use crate::listener::{self, Kind};
use crate::presence::Presence;
use crate::registry::Registry;
use crate::retained::Retained;
use crate::router::{Router, Sizing, SystemPublisher};
use anyhow::Context as _;
use roost_auth::{Acl, KeySettings, Verifier};
use roost_config::{Config, Limits};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{error, info, warn};

/// What every connection of a node shares.
pub struct Context {
    pub verifier: Arc<Verifier>,
    /// Password sign-in against the account store (`[accounts]`).
    pub(crate) accounts: Arc<crate::accounts::Accounts>,
    pub acl: Acl,
    pub limits: Limits,
    pub allow_anonymous: bool,
    pub router: Router,
    pub system: SystemPublisher,
    pub presence: Presence,
    /// Whose presence each user sees (`presence.visibility = "groups"`); `None`: everyone's.
    pub(crate) visibility: Option<Arc<crate::visibility::Scope>>,
    pub registry: Registry,
    pub(crate) retained: Retained,
    /// `history.delivery = "stamped"`: chat on stored topics goes to the history service's
    /// ingress, and reaches its recipients once stored (docs/protocol.md section 4).
    pub stamped: bool,
    /// Signed-in connections right now (shared with the cluster heartbeat).
    pub active: Arc<AtomicUsize>,
    pub drain: Arc<Drain>,
    /// With `[cluster]`: this node's membership (presence and wills across nodes).
    pub(crate) members: Option<roost_bridge::Members>,
    /// With `[cluster]`: client-id claims across the cluster (`cluster_claims`).
    pub(crate) claims: Option<roost_bridge::Claims>,
}

/// A started node: the addresses it listens on, and what a drain needs.
pub struct Bound {
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    ctx: Arc<Context>,
    history: crate::history::Service,
    drain_period: Duration,
    pid_file: PathBuf,
}

/// How long a draining node waits for its presence and wills to reach the cluster.
const LEAVE_WITHIN: Duration = Duration::from_secs(5);

impl Bound {
    /// Drains the node (see `drain.rs`): stop accepting, disconnect the clients over
    /// `cluster.drain_period`, let the history service store what it took.
    pub async fn drain(self) {
        crate::drain::run(&self.ctx, self.drain_period).await;
        self.remove_pid_file();
        self.history.finish(Duration::from_secs(30)).await;
        // Last: what the history service stored has crossed; now the others forget this
        // node instead of judging it dead.
        if let Some(members) = &self.ctx.members {
            members.leave(LEAVE_WITHIN).await;
        }
    }

    /// Forgets the pid file (`roost drain` reads it); the node is going away.
    pub fn remove_pid_file(&self) {
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// The file in the data dir holding the pid of the node running on it, for `roost drain`.
pub fn pid_file(config: &Config) -> PathBuf {
    config.node.data_dir.join("roost.pid")
}

/// Starts a node on `config`. The node runs in the background until the process ends.
pub async fn start(config: Config) -> anyhow::Result<Bound> {
    let data_dir = &config.node.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;

    let keys = key_settings(&config)?;
    let hs256 = keys.hs256_secret.clone();
    let verifier = Arc::new(Verifier::new(keys)?);
    let mut acl = Acl::new(&config.acl.rules)?;
    // With `[cluster]`, the router tells the bridge which filters local sessions hold.
    let interest = config
        .cluster
        .enabled()
        .then(|| roost_bridge::LocalInterest::new(&config.cluster));
    let interest_hook = interest.clone().map(crate::bridge_link::interest_hook);

    let router = Router::start_with(
        Sizing {
            max_connections: config.limits.max_connections,
            segment_size: 16 * 1024,
            segment_count: 2,
            max_queued_messages: Some(config.limits.max_queued_messages).filter(|&n| n > 0),
            // Room for a database outage: about 16 MiB of messages per history filter (those
            // of both deliveries: a worker may use either).
            large: roost_proto::subscriptions::HISTORY
                .iter()
                .chain(&roost_proto::subscriptions::INGRESS[..2])
                .map(|s| (s.filter.to_owned(), 1024 * 1024, 16))
                // The bridge reads every publish: room for a NATS hiccup.
                .chain(
                    interest
                        .is_some()
                        .then(|| ("#".to_owned(), 1024 * 1024, 16)),
                )
                .collect(),
        },
        interest_hook,
    );
    let system = SystemPublisher::start(&router)
        .await
        .context("linking the node to its router")?;
    let (history, service) = crate::history::start(&config, &router).await?;
    let visibility = match config.presence.visibility {
        roost_config::Visibility::All => None,
        roost_config::Visibility::Groups => {
            let scope = crate::visibility::Scope::new(history.clone());
            acl = acl.with_presence_scope(Arc::new(crate::visibility::AclScope(scope.clone())));
            Some(scope)
        }
    };
    let accounts = Arc::new(crate::accounts::Accounts::new(
        &config,
        history.clone(),
        hs256,
    ));
    let active = Arc::new(AtomicUsize::new(0));
    let drain = Arc::new(Drain::default());
    // Before the listeners, so that every client publish reaches the bridge's link.
    let joined = match interest {
        Some(interest) => {
            let active = active.clone();
            let connections = move || active.load(Ordering::Relaxed) as u64;
            let joined = crate::bridge_link::start(
                &config.cluster,
                &router,
                interest,
                drain.clone(),
                connections,
            )
            .await?;
            Some(joined)
        }
        None => None,
    };
    let members = joined.as_ref().map(|j| j.members.clone());
    let ctx = Arc::new(Context {
        verifier: verifier.clone(),
        accounts: accounts.clone(),
        acl,
        limits: config.limits.clone(),
        allow_anonymous: config.auth.allow_anonymous,
        router,
        presence: Presence::new(system.clone(), members.clone()),
        visibility,
        system,
        registry: Registry::default(),
        retained: Retained::new(config.limits.max_retained_per_user),
        stamped: config.history.delivery() == roost_config::Delivery::Stamped,
        active,
        drain,
        members,
        claims: joined.as_ref().map(|j| j.claims.clone()),
    });
    if let Some(joined) = joined {
        if config.cluster.standby {
            // Resting from the start: the listeners open below must not say `ready` first.
            ctx.drain.set_resting(true);
            tokio::spawn(crate::elastic::run(
                ctx.clone(),
                config.cluster.clone(),
                joined.members.clone(),
            ));
        }
        // Before the listeners: a claim read from now on takes over a session here.
        crate::cluster_claims::start(ctx.clone(), joined.claims).await;
        tokio::spawn(crate::cluster_presence::run(
            ctx.clone(),
            joined.events,
            joined.local,
        ));
    }

    let mqtt = &config.mqtt;
    let tls = match (&mqtt.tls_cert, &mqtt.tls_key) {
        (Some(cert), Some(key)) => Some(listener::tls_acceptor(cert, key)?),
        _ => None,
    };
    let mqtt_addr = listener::start(mqtt.listen, Kind::Tcp, ctx.clone()).await?;
    if let Some(addr) = mqtt.ws_listen {
        listener::start(addr, Kind::Ws, ctx.clone()).await?;
    }
    if let (Some(addr), Some(tls)) = (mqtt.tls_listen, &tls) {
        listener::start(addr, Kind::Tls(tls.clone()), ctx.clone()).await?;
    }
    if let (Some(addr), Some(tls)) = (mqtt.wss_listen, &tls) {
        listener::start(addr, Kind::Wss(tls.clone()), ctx.clone()).await?;
    }
    // Ends connections of users disabled or deleted meanwhile (`accounts.recheck_interval`).
    tokio::spawn({
        let accounts = accounts.clone();
        async move { accounts.recheck_forever().await }
    });
    let accounts_api =
        crate::accounts::api::routes(verifier.clone(), accounts, config.http.header_timeout);
    let http = crate::http::start(&config.http, ctx.clone(), history, accounts_api).await?;

    if let Some(addr) = config.cluster.agent_listen {
        crate::agent::start(addr, ctx.clone()).await?;
    }

    tokio::spawn(reload_keys(verifier));
    let pid_file = pid_file(&config);
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", pid_file.display()))?;
    Ok(Bound {
        mqtt: mqtt_addr,
        http,
        ctx,
        history: service,
        drain_period: config.cluster.drain_period(),
        pid_file,
    })
}

fn key_settings(config: &Config) -> anyhow::Result<KeySettings> {
    let auth = &config.auth;
    let uses_public_keys = !auth.jwt_public_keys.is_empty() || auth.jwks_file.is_some();
    let hs256_secret = match &auth.jwt_secret {
        Some(secret) => Some(secret.expose().to_owned()),
        // With no keys at all, the node makes itself a secret (embedded defaults).
        None if !uses_public_keys && !auth.allow_anonymous => {
            Some(stored_secret(&config.node.data_dir)?)
        }
        None => None,
    };
    Ok(KeySettings {
        hs256_secret,
        public_keys: auth.jwt_public_keys.clone(),
        jwks_file: auth.jwks_file.clone(),
        issuer: auth.issuer.clone(),
        audience: auth.audience.clone(),
    })
}

/// The HS256 secret tokens are signed with: the configured one, or the one the node keeps
/// in its data dir (created on first use).
pub fn hs256_secret(config: &Config) -> anyhow::Result<String> {
    match &config.auth.jwt_secret {
        Some(secret) => Ok(secret.expose().to_owned()),
        None => stored_secret(&config.node.data_dir),
    }
}

fn stored_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_owned()),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to have a new secret made",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let secret = roost_auth::random_secret();
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    info!(path = %path.display(), "created a new HS256 secret");
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// Reloads the token keys on SIGHUP and whenever a key file changes.
async fn reload_keys(verifier: Arc<Verifier>) {
    let files = verifier.key_files();
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "no SIGHUP handler; keys reload on file change only");
            None
        }
    };
    let mut seen = mtimes(&files);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        let why = tokio::select! {
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => "SIGHUP",
            _ = tick.tick() => {
                let now = mtimes(&files);
                if now == seen { continue; }
                seen = now;
                "key file changed"
            }
        };
        match verifier.reload() {
            Ok(()) => info!(why, "token keys reloaded"),
            Err(e) => error!(why, error = %e, "token keys not reloaded; the old keys stay in use"),
        }
    }
}

fn mtimes(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}
