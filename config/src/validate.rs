//! Rules a config must follow beyond its types. Each failure names the key it is about.
//!
//! ACL rules are not checked here beyond their serde shape: `roost_auth::Acl::new` owns
//! their meaning.

use std::time::Duration;

use figment::Figment;

use crate::{Config, ConfigError};

/// MQTT's own limit on a packet's remaining length (256 MiB - 1).
pub const MAX_PACKET_SIZE: usize = 268_435_455;
/// Smaller packets could not carry a chat message with its topic.
pub const MIN_PACKET_SIZE: usize = 1024;
/// Shortest `cluster.node_timeout`: below it, heartbeats would flood NATS and a busy
/// node would be declared dead.
const MIN_NODE_TIMEOUT: Duration = Duration::from_secs(1);
/// PostgreSQL's default `max_connections` is 100: a bigger pool could not be filled.
pub const MAX_POOL_SIZE: u32 = 100;

/// Checks `config`; `figment` is only used to say where a bad value came from.
pub fn validate(config: &Config, figment: &Figment) -> Result<(), ConfigError> {
    let fail = |key: &str, message: String| Err(ConfigError::invalid(figment, key, message));

    if config.node.data_dir.as_os_str().is_empty() {
        return fail("node.data_dir", "must not be empty".into());
    }

    let mqtt = &config.mqtt;
    for (key, set) in [
        ("mqtt.tls_listen", mqtt.tls_listen.is_some()),
        ("mqtt.wss_listen", mqtt.wss_listen.is_some()),
    ] {
        let missing: Vec<&str> = [
            ("mqtt.tls_cert", mqtt.tls_cert.is_none()),
            ("mqtt.tls_key", mqtt.tls_key.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, absent)| absent.then_some(name))
        .collect();
        if set && !missing.is_empty() {
            return fail(key, format!("requires {} to be set", missing.join(" and ")));
        }
    }

    if let Some(secret) = &config.auth.jwt_secret {
        if secret.expose().is_empty() {
            return fail("auth.jwt_secret", "must not be empty".into());
        }
    }

    if config.accounts.token_ttl.is_zero() {
        return fail("accounts.token_ttl", "must be greater than 0".into());
    }
    if config.accounts.recheck_interval.is_zero() {
        return fail("accounts.recheck_interval", "must be greater than 0".into());
    }
    if config.accounts.hash_workers < 1 {
        return fail("accounts.hash_workers", "must be at least 1".into());
    }
    if config.accounts.login_attempts_per_minute < 1 {
        return fail(
            "accounts.login_attempts_per_minute",
            "must be at least 1".into(),
        );
    }
    if config.http.max_connections < 1 {
        return fail("http.max_connections", "must be at least 1".into());
    }
    if config.http.header_timeout.is_zero() {
        return fail("http.header_timeout", "must be greater than 0".into());
    }
    for origin in &config.http.cors_origins {
        if !valid_origin(origin) {
            return fail(
                "http.cors_origins",
                format!("{origin:?} is not an origin: scheme://host[:port], no path"),
            );
        }
    }

    let limits = &config.limits;
    if limits.max_connections < 1 {
        return fail("limits.max_connections", "must be at least 1".into());
    }
    if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&limits.max_packet_size) {
        return fail(
            "limits.max_packet_size",
            format!(
                "{} is out of range: must be between {MIN_PACKET_SIZE} and {MAX_PACKET_SIZE}",
                limits.max_packet_size
            ),
        );
    }
    if limits.connect_timeout.is_zero() {
        return fail("limits.connect_timeout", "must be greater than 0".into());
    }
    if limits.receive_maximum < 1 {
        return fail("limits.receive_maximum", "must be at least 1".into());
    }
    if limits.max_subscriptions < 1 {
        return fail("limits.max_subscriptions", "must be at least 1".into());
    }
    if limits.write_timeout.is_zero() {
        return fail("limits.write_timeout", "must be greater than 0".into());
    }

    if let Some(url) = &config.history.database_url {
        let known = ["sqlite:", "postgres:", "postgresql:"];
        // Never the URL itself in the message: it may hold a password.
        if !known.iter().any(|scheme| url.starts_with(scheme)) {
            return fail(
                "history.database_url",
                "must start with `sqlite:`, `postgres:` or `postgresql:`".into(),
            );
        }
        if let Some(key) = unknown_postgres_param(url) {
            return fail(
                "history.database_url",
                format!(
                    "unknown parameter `{key}` (its value is not shown); PostgreSQL URLs \
                     take {}",
                    POSTGRES_PARAMS.join(", ")
                ),
            );
        }
    }

    if config.history.max_age.is_some_and(|age| age.is_zero()) {
        return fail("history.max_age", "must be greater than 0".into());
    }
    if config.history.max_requests_per_second == 0 {
        return fail(
            "history.max_requests_per_second",
            "must be at least 1".into(),
        );
    }
    if config.history.max_messages == Some(0) {
        return fail("history.max_messages", "must be at least 1".into());
    }
    if let Some(size) = config.history.pool_size {
        if !(1..=MAX_POOL_SIZE).contains(&size) {
            return fail(
                "history.pool_size",
                format!("{size} is out of range: must be between 1 and {MAX_POOL_SIZE}"),
            );
        }
    }

    check_cluster(config).map_err(|(key, message)| ConfigError::invalid(figment, key, message))
}

/// The `[cluster]` rules, as the key at fault and why.
fn check_cluster(config: &Config) -> Result<(), (&'static str, String)> {
    let cluster = &config.cluster;
    if let Some(id) = &cluster.node_id {
        if !roost_proto::id::is_valid_id(id) {
            return Err((
                "cluster.node_id",
                format!("`{id}` must be 1 to 64 characters from A-Z a-z 0-9 _ . -"),
            ));
        }
    }
    for url in &cluster.nats {
        check_nats_url(url).map_err(|why| ("cluster.nats", format!("`{url}`: {why}")))?;
    }
    if !is_subject_prefix(&cluster.subject_prefix) {
        return Err((
            "cluster.subject_prefix",
            format!(
                "`{}` must be one or more tokens of A-Z a-z 0-9 _ - joined by `.`",
                cluster.subject_prefix
            ),
        ));
    }
    if cluster.node_timeout < MIN_NODE_TIMEOUT {
        return Err((
            "cluster.node_timeout",
            "must be at least 1s (nodes heartbeat three times per timeout)".into(),
        ));
    }
    match (&cluster.nats_user, &cluster.nats_password) {
        (Some(_), None) => {
            return Err(("cluster.nats_user", "requires cluster.nats_password".into()))
        }
        (None, Some(_)) => {
            return Err(("cluster.nats_password", "requires cluster.nats_user".into()))
        }
        _ => {}
    }
    let credentials: Vec<&str> = [
        ("cluster.nats_creds", cluster.nats_creds.is_some()),
        ("cluster.nats_user", cluster.nats_user.is_some()),
        ("cluster.nats_token", cluster.nats_token.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    if let [first, second, ..] = credentials[..] {
        return Err((
            first,
            format!("cannot be used together with {second}: choose one way to sign in to NATS"),
        ));
    }

    if !cluster.enabled() {
        let set = [
            ("cluster.node_id", cluster.node_id.is_some()),
            ("cluster.nats_creds", cluster.nats_creds.is_some()),
            ("cluster.nats_user", cluster.nats_user.is_some()),
            ("cluster.nats_token", cluster.nats_token.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key));
        if let Some(key) = set {
            return Err((
                "cluster.nats",
                format!("must list at least one NATS server when {key} is set"),
            ));
        }
        return Ok(());
    }

    let postgres = config
        .history
        .database_url
        .as_deref()
        .is_some_and(is_postgres_url);
    if !postgres {
        return Err((
            "history.database_url",
            "must be a postgres:// URL when [cluster] is set: every node writes the one \
             shared history, and SQLite is a file private to each node"
                .into(),
        ));
    }
    Ok(())
}

/// `prefix` is NATS tokens of `[A-Za-z0-9_-]`, joined by `.`: no wildcard, no space, no
/// empty token.
fn is_subject_prefix(prefix: &str) -> bool {
    prefix.split('.').all(|token| {
        !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    })
}

/// Accepts `nats://host[:port]` or `tls://host[:port]`, `host` being a name, an IPv4 or a
/// `[IPv6]` address. Credentials in the URL are refused: they belong in the
/// `nats_*` keys, which `check-config` masks.
fn check_nats_url(url: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "must be a nats://host:port or tls://host:port URL";
    let authority = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .ok_or(SHAPE)?;
    if authority.contains('@') {
        return Err("must not hold credentials: use cluster.nats_creds, nats_user/nats_password or nats_token");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
            (host, Some(port))
        }
        _ => (authority, None),
    };
    let bare = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').ok_or(SHAPE)?,
        None => host,
    };
    let host_ok = !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        && (host.starts_with('[') || !bare.contains(':'));
    if !host_ok {
        return Err(SHAPE);
    }
    match port.map(str::parse::<u16>) {
        None | Some(Ok(1..)) => Ok(()),
        Some(_) => Err("port must be a number from 1 to 65535"),
    }
}

/// An origin as browsers send it: `http(s)://host[:port]`, printable ASCII, no path.
fn valid_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '*'])
        && rest.bytes().all(|b| b.is_ascii_graphic())
}

/// The query parameters sqlx's PostgreSQL driver reads (sqlx-postgres, `options/parse.rs`),
/// besides `options[NAME]`. It logs any other parameter with its value and goes on, so a
/// mistyped `pasword=...` would put the password in the node's log: such a URL is refused
/// here, naming only the key.
const POSTGRES_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// A `postgres:` or `postgresql:` URL (the history database is PostgreSQL).
fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// The first query parameter of a `postgres:` URL the driver would not read (at most 64
/// characters of its key, in case a value was pasted in its place).
fn unknown_postgres_param(url: &str) -> Option<String> {
    if !is_postgres_url(url) {
        return None;
    }
    let (_, query) = url.split_once('?')?;
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split('=').next().unwrap_or_default())
        .find(|key| {
            let options = key.starts_with("options[") && key.ends_with(']');
            !options && !POSTGRES_PARAMS.contains(key)
        })
        .map(|key| key.chars().take(64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls() {
        for ok in [
            "nats://10.0.0.11:4222",
            "nats://nats.example",
            "tls://nats.example:4443",
            "nats://[::1]:4222",
            "nats://pi-2.local:65535",
        ] {
            assert_eq!(check_nats_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "10.0.0.11:4222",
            "mqtt://host:1883",
            "ws://host:8080",
            "nats://",
            "nats://:4222",
            "nats://host:0",
            "nats://host:99999",
            "nats://host:4222/",
            "nats://user:pw@host:4222",
            "nats://token@host:4222",
            "nats://::1:4222",
            "nats://[::1:4222",
            "nats://host name:4222",
        ] {
            assert!(check_nats_url(bad).is_err(), "{bad}");
        }
        assert!(check_nats_url("nats://u:p@h:1")
            .unwrap_err()
            .contains("nats_user"));
    }

    #[test]
    fn subject_prefixes() {
        for ok in ["roost", "prod.roost", "a-b_c.d1"] {
            assert!(is_subject_prefix(ok), "{ok}");
        }
        for bad in [
            "", ".roost", "roost.", "a..b", "roost.*", "roost.>", "ro ost", "röst",
        ] {
            assert!(!is_subject_prefix(bad), "{bad}");
        }
    }
}
