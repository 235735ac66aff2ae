//! Command-line arguments.

use clap::{Args, Parser, Subcommand};
use std::time::Duration;

/// roost-cli: talk to a roost node (or any MQTT broker, with --plain) from a terminal.
#[derive(Debug, Parser)]
#[command(
    name = "roost-cli",
    version,
    about = "roost's command-line client: chat, send, listen, history, read, bench, token",
    long_about = None
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection options")]
pub struct ConnArgs {
    /// Broker host.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker MQTT port (plain TCP).
    #[arg(long, global = true, default_value_t = 1883)]
    pub port: u16,
    /// JWT to connect with; the user (sub) and groups are read from it.
    #[arg(long, global = true, env = "ROOST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// HS256 secret: mint a 1h token locally for --user (development).
    #[arg(long, global = true, env = "ROOST_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// User id (required with --secret and --plain; must match the token's sub).
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Groups (comma separated): claims of a minted token, groups to subscribe to.
    #[arg(long, global = true, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Role of a minted token: user, service, bridge or admin.
    #[arg(long, global = true, default_value = "user")]
    pub role: String,
    /// Device name; the client id is {user}:{device} [default: random cli-XXXX].
    #[arg(long, global = true)]
    pub device: Option<String>,
    /// Use MQTT 5.0 instead of 3.1.1.
    #[arg(long = "mqtt-v5", global = true)]
    pub mqtt_v5: bool,
    /// No token: for a third-party broker (e.g. Mosquitto); needs --user.
    #[arg(long, global = true)]
    pub plain: bool,
    /// Where `chat` keeps this machine's device id and sync cursor
    /// [default: $XDG_DATA_HOME or ~/.local/share].
    #[arg(long, global = true, env = "ROOST_CLI_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// Time limit for connecting, and for `send` to get its PUBACK (e.g. 10s, 500ms).
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Interactive chat: type to send; shows DMs, group messages, presence, notices, and
    /// on start and reconnect what it missed.
    #[command(
        after_help = "In the chat: TEXT sends to the current recipient, /to USER, \
        /group G, /help, /quit (//TEXT sends /TEXT). Messages arrive as lines such as \
        `[dm] bob: hi`, `[grp family] carol: hi`, `[presence] bob is online`, `[sys] ack ...`. \
        The chat keeps this machine's device id (the client id is {user}:{device}, unless \
        --device) and its sync cursor in a state file (see --state-dir), so a restarted \
        chat first shows what it missed."
    )]
    Chat {
        /// Start talking to this user.
        #[arg(long, conflicts_with = "group")]
        to: Option<String>,
        /// Start talking in this group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Send one message (QoS 1), wait for the PUBACK, print its id.
    Send {
        /// Recipient user.
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        to: Option<String>,
        /// Recipient group.
        #[arg(long)]
        group: Option<String>,
        /// Also wait for the server's `ack` (stored) or `error` notice on im/sys/{me}.
        #[arg(long)]
        wait_ack: bool,
        /// Message text (words are joined with spaces; `-` reads stdin).
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Print incoming messages (subscribed like chat).
    Listen {
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// One JSON object per line: {"topic": .., "payload": ..}.
        #[arg(long)]
        json: bool,
        /// Subscribe to this filter instead of the chat topics (repeatable).
        #[arg(long = "topic", value_name = "FILTER")]
        topics: Vec<String>,
    },
    /// Read a conversation's history (or, with no conversation, list conversations).
    History {
        /// The direct conversation with this user.
        #[arg(long)]
        with: Option<String>,
        /// The group conversation.
        #[arg(long)]
        group: Option<String>,
        /// A conversation id (dm:a:b or grp:g).
        #[arg(long)]
        conv: Option<String>,
        /// Messages before this seq (older).
        #[arg(long)]
        before: Option<i64>,
        /// Messages after this seq (newer).
        #[arg(long)]
        after: Option<i64>,
        /// How many (at most 100).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print the service's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mark a conversation read up to SEQ (the other members get a receipt).
    Read {
        /// The conversation: dm:a:b or grp:g.
        conv: String,
        /// The seq read up to.
        seq: i64,
    },
    /// Simulated users against a broker: connect rate, memory, latency, loss.
    Bench(crate::bench::BenchArgs),
    /// Print a token signed with --secret (development).
    Token {
        /// The token's sub.
        #[arg(value_name = "USER")]
        subject: String,
        /// Lifetime (e.g. 1h, 30m, 7d).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
    },
}

/// `500ms`, `10s`, `5m`, `1h`, `7d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 10s, 5m, 1h"))?;
    let secs = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => {
            return Err(format!(
                "invalid duration unit {other:?}: use ms, s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("3y").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "roost-cli",
            "send",
            "--to",
            "bob",
            "hello",
            "there",
            "--plain",
            "--user",
            "al",
        ])
        .unwrap();
        assert!(cli.conn.plain);
        assert!(
            matches!(cli.command, Command::Send { ref text, .. } if text.join(" ") == "hello there")
        );
        assert!(Cli::try_parse_from(["roost-cli", "send", "hi"]).is_err());
        assert!(
            Cli::try_parse_from(["roost-cli", "send", "--to", "a", "--group", "g", "hi"]).is_err()
        );
    }
}
