//! The `roost` command line: `serve`, `drain`, `token`, `user`, `group`, `history-worker`,
//! `check-config`, `doctor`
//! (docs/operating.md).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use roost_auth::{mint_hs256, Claims, Role};
use std::path::PathBuf;
use std::time::Duration;
use tracing::{info, warn};

#[derive(Parser)]
#[command(
    name = "roost",
    version,
    about = "A self-hosted chat server that speaks MQTT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. With no config file it runs on the embedded defaults.
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Drain the node running on this config's data dir (it has written its pid there):
    /// the same as sending it SIGTERM. Waits until it has exited.
    Drain {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print a JWT for USER signed with the node's HS256 secret.
    Token {
        user: String,
        /// Groups the user belongs to, comma separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        #[arg(long, default_value = "user")]
        role: Role,
        /// How long the token is valid, e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the history service as a process of its own, connected to a node over MQTT.
    /// Uses `[history]` of the config for the database; start several to share the load.
    HistoryWorker {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The node to connect to, as mqtt://host:port.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: String,
        /// A `service` token. Default: one minted with the node's HS256 secret.
        #[arg(long, env = "ROOST_WORKER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Names this worker's session (client id `{sub}:{name}`); unique per worker.
        #[arg(long, default_value = "history-worker")]
        name: String,
    },
    /// Manage account users (docs/operating.md, "Accounts").
    User {
        #[command(subcommand)]
        command: crate::accounts::cli::UserCommand,
        #[command(flatten)]
        config: crate::accounts::cli::ConfigArg,
    },
    /// Manage account groups and their members.
    Group {
        #[command(subcommand)]
        command: crate::accounts::cli::GroupCommand,
        #[command(flatten)]
        config: crate::accounts::cli::ConfigArg,
    },
    /// Validate the config and print the effective values (secrets masked).
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check this host against the config (limits, memory, disk, temperature, clock,
    /// database, cluster links) and say what to fix. Exit code 0 ok, 1 warnings, 2 failures.
    Doctor {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the `roost` binary.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
        Command::Drain { config } => crate::drain_cmd::drain(config.as_deref()),
        Command::Token {
            user,
            groups,
            role,
            ttl,
            config,
        } => {
            let config = roost_config::load(config.as_deref())?;
            let secret = crate::node::hs256_secret(&config)?;
            let claims = Claims::new(&user, groups, role, ttl);
            let mut claims = claims;
            claims.iss = config.auth.issuer.clone();
            claims.aud = config.auth.audience.clone();
            println!("{}", mint_hs256(&secret, &claims)?);
            Ok(())
        }
        Command::HistoryWorker {
            config,
            broker,
            token,
            name,
        } => history_worker(config, &broker, token, &name),
        Command::User { command, config } => crate::accounts::cli::user(command, &config),
        Command::Group { command, config } => crate::accounts::cli::group(command, &config),
        Command::CheckConfig { config } => {
            let config = roost_config::load(config.as_deref())?;
            roost_auth::Acl::new(&config.acl.rules).context("acl.rules")?;
            print!("{}", config.to_masked_toml());
            Ok(())
        }
        Command::Doctor { config, json } => {
            // A config that does not load is a failure (2), not a warning (1).
            let config = roost_config::load(config.as_deref()).unwrap_or_else(|e| {
                eprintln!("roost doctor: {e}");
                std::process::exit(2)
            });
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime.block_on(crate::doctor::run(&config));
            print!("{}", if json { report.json() } else { report.table() });
            std::process::exit(report.exit_code());
        }
    }
}

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    init_logging();
    let config = roost_config::load(config.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let bound = crate::node::start(config.clone()).await?;
        if config.auth.jwt_secret.is_none()
            && config.auth.jwt_public_keys.is_empty()
            && config.auth.jwks_file.is_none()
        {
            info!(
                "mint a token with: roost token alice (then connect with it as the MQTT password)"
            );
        }
        info!(mqtt = %bound.mqtt, http = %bound.http, "roost is running");
        shutdown_signal().await;
        // A second SIGTERM or Ctrl-C while draining stops at once.
        tokio::select! {
            () = bound.drain() => {
                info!("drained; exiting");
                anyhow::Ok(())
            }
            () = shutdown_signal() => {
                warn!("second signal: stopping at once, drain not finished");
                std::process::exit(1);
            }
        }
    })
}

fn history_worker(
    config: Option<PathBuf>,
    broker: &str,
    token: Option<String>,
    name: &str,
) -> anyhow::Result<()> {
    init_logging();
    let config = roost_config::load(config.as_deref())?;
    let (host, port) = broker
        .strip_prefix("mqtt://")
        .and_then(|hp| hp.rsplit_once(':'))
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .with_context(|| format!("--broker {broker:?}: expected mqtt://host:port"))?;
    let token = match token {
        Some(token) => token,
        None => {
            // The worker holds the secret anyway; a long-lived token saves it reconnecting
            // with an expired one.
            let secret = crate::node::hs256_secret(&config)?;
            let mut claims = Claims::new(
                "roost-history",
                Vec::new(),
                Role::Service,
                Duration::from_secs(10 * 365 * 24 * 3600),
            );
            claims.iss = config.auth.issuer.clone();
            claims.aud = config.auth.audience.clone();
            mint_hs256(&secret, &claims)?
        }
    };
    let (user, _) = roost_auth::token::unverified_subject(&token)
        .context("--token: not a JWT with a sub claim")?;
    let settings = roost_history::worker::WorkerSettings {
        host,
        port,
        client_id: format!("{user}:{name}"),
        user,
        token,
        // Only when set: nodes whose storing workers take over (`service = false`) deliver
        // directly unless told otherwise, and the worker must match them.
        stamped: config.history.delivery == Some(roost_config::Delivery::Stamped),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let url = crate::history::database_url(&config);
        let store = crate::history::connect(&url, config.history.pool_size).await;
        let service = crate::history::service_settings(&config);
        tokio::select! {
            () = roost_history::worker::run(settings, store, service) => {}
            () = shutdown_signal() => info!("shutting down"),
        }
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Logs go to stderr; `ROOST_LOG` (or `RUST_LOG`) sets the filter, `info` by default.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = std::env::var("ROOST_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,rumqttd=warn".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
