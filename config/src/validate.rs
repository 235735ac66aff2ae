//! Rules a config must follow beyond its types. Each failure names the key it is about.
//!
//! ACL rules are not checked here beyond their serde shape: `roost_auth::Acl::new` owns
//! their meaning.

use figment::Figment;

use crate::{Config, ConfigError};

/// MQTT's own limit on a packet's remaining length (256 MiB - 1).
pub const MAX_PACKET_SIZE: usize = 268_435_455;
/// Smaller packets could not carry a chat message with its topic.
pub const MIN_PACKET_SIZE: usize = 1024;

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
        if !known.iter().any(|scheme| url.starts_with(scheme)) {
            return fail(
                "history.database_url",
                format!("`{url}` must start with `sqlite:`, `postgres:` or `postgresql:`"),
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

    let cluster = &config.cluster;
    if let Some(id) = &cluster.node_id {
        if !roost_proto::id::is_valid_id(id) {
            return fail(
                "cluster.node_id",
                format!("`{id}` must be 1 to 64 characters from A-Z a-z 0-9 _ . -"),
            );
        }
    }
    for peer in &cluster.peers {
        if let Err(why) = check_mqtt_url(peer) {
            return fail("cluster.peers", format!("`{peer}`: {why}"));
        }
    }
    if let Some(hub) = &cluster.hub {
        if let Err(why) = check_mqtt_url(hub) {
            return fail("cluster.hub", format!("`{hub}`: {why}"));
        }
        if !cluster.peers.is_empty() {
            return fail(
                "cluster.hub",
                "cannot be used together with cluster.peers: choose a mesh or a hub".into(),
            );
        }
    }

    Ok(())
}

/// Accepts exactly `mqtt://host:port`, `host` being a name, an IPv4 or a `[IPv6]` address.
fn check_mqtt_url(url: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "must be an mqtt://host:port URL";
    let authority = url.strip_prefix("mqtt://").ok_or(SHAPE)?;
    let (host, port) = authority.rsplit_once(':').ok_or(SHAPE)?;
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
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("port must be a number from 1 to 65535"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls() {
        for ok in [
            "mqtt://10.0.0.12:1883",
            "mqtt://broker.example:1883",
            "mqtt://[::1]:1883",
            "mqtt://pi-2.local:65535",
        ] {
            assert_eq!(check_mqtt_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "10.0.0.12:1883",
            "mqtts://host:8883",
            "tcp://host:1883",
            "mqtt://host",
            "mqtt://:1883",
            "mqtt://host:0",
            "mqtt://host:99999",
            "mqtt://host:1883/",
            "mqtt://user:pw@host:1883",
            "mqtt://::1:1883",
            "mqtt://[::1:1883",
            "mqtt://host name:1883",
        ] {
            assert!(check_mqtt_url(bad).is_err(), "{bad}");
        }
    }
}
