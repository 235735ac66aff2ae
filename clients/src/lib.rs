//! `roost-cli`: the command-line client of roost, over MQTT (rumqttc, plain TCP).
//!
//! What it does:
//! - `chat`: interactive; each stdin line goes to the current recipient (`/to USER`,
//!   `/group G`), and DMs, group messages, presence and server notices are printed as
//!   they arrive (`[dm] bob: hi`, `[grp family] carol: hi`, `[presence] bob is online`,
//!   `[sys] ack ...`).
//! - `send`: publish one chat message at QoS 1, wait for its PUBACK (optionally for the
//!   server's `ack` too), print its id; non-zero exit on refusal or timeout.
//! - `listen`: print incoming messages, readable or as JSON lines (for scripts and tests).
//! - `history`: a conversation's history, or the list of conversations.
//! - `read`: mark a conversation read up to a seq.
//! - `bench`: simulated users against a broker.
//! - `token`: mint a development token from an HS256 secret.
//!
//! `chat` follows docs/writing-a-client.md: a stable device id per machine and a kept
//! `sync` cursor ([`state`]), a sync on start and on every reconnect.
//!
//! Credentials: `--token` / `ROOST_TOKEN` (the user and groups are read from the token's
//! payload *without* verifying it: the broker verifies), or `--secret` / `ROOST_SECRET`
//! with `--user` to mint a 1h token locally, or `--plain --user U` to talk to a broker
//! without tokens (e.g. Mosquitto) using the same topics.
//!
//! What it does not do: TLS or WebSocket transports, persistent sessions, or any check
//! that the token is valid. Payloads and topics from the broker
//! are untrusted and printed lossily, with control characters escaped.
//!
//! The library parts meant for reuse (end-to-end tests, `bench`): [`session::Session`] and
//! [`identity`]. Topics, ids and the chat payload are roost-proto's.

pub mod args;
pub mod bench;
mod catchup;
pub mod chat;
pub mod display;
pub mod history;
pub mod identity;
pub mod listen;
pub mod payload;
pub mod read;
pub mod send;
pub mod session;
pub mod state;

pub use args::{Cli, Command, ConnArgs};
pub use identity::Identity;
pub use session::{ConnectOptions, Event, Session};

use anyhow::Context;
pub use anyhow::Result;
use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

/// Entry point of the `roost-cli` binary: parses the command line and runs it.
pub fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(run(cli));
    // Do not wait for a blocking stdin read that will never finish.
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

/// Exit status for a result of [`main`]: errors are printed as one line on stderr
/// (`roost-cli: cause: detail`) without a backtrace, and exit with status 1.
pub fn exit_code(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost-cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let conn = &cli.conn;
    match cli.command {
        Command::Chat { to, group } => chat::run(conn, to, group).await,
        Command::Send {
            to,
            group,
            wait_ack,
            text,
        } => send::run(conn, to, group, wait_ack, text).await,
        Command::Listen {
            count,
            json,
            topics,
        } => listen::run(conn, count, json, topics).await,
        Command::Bench(args) => bench::run(conn, args).await,
        Command::History {
            with,
            group,
            conv,
            before,
            after,
            limit,
            json,
        } => {
            let which = history::Which { with, group, conv };
            history::run(conn, which, before, after, limit, json).await
        }
        Command::Read { conv, seq } => read::run(conn, conv, seq).await,
        Command::Token { subject, ttl } => {
            let secret = conn
                .secret
                .as_deref()
                .context("token needs --secret (or ROOST_SECRET)")?;
            println!(
                "{}",
                identity::mint(secret, &subject, &conn.groups, &conn.role, ttl)?
            );
            Ok(())
        }
    }
}

/// The connection options for `me` with the common flags, subscribing to `subscriptions`.
pub fn connect_options(
    conn: &ConnArgs,
    me: &Identity,
    subscriptions: Vec<String>,
) -> Result<ConnectOptions> {
    Ok(ConnectOptions {
        host: conn.host.clone(),
        port: conn.port,
        client_id: me.client_id(conn.device.as_deref())?,
        username: Some(me.user.clone()),
        password: me.token.clone(),
        v5: conn.mqtt_v5,
        timeout: conn.timeout,
        subscriptions,
    })
}
