//! The `roost` command line: `serve`, `token`, `check-config` (OPERATING.md).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use roost_auth::{mint_hs256, Claims, Role};
use std::path::PathBuf;
use std::time::Duration;
use tracing::info;

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
    /// Validate the config and print the effective values (secrets masked).
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Entry point of the `roost` binary.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(config),
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
        Command::CheckConfig { config } => {
            let config = roost_config::load(config.as_deref())?;
            roost_auth::Acl::new(&config.acl.rules).context("acl.rules")?;
            print!("{}", config.to_masked_toml());
            Ok(())
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
        info!("shutting down");
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
