//! The `ROOST_SECTION__KEY` environment variables, as a figment provider.
//!
//! Only variables with a `__` after the prefix are config: `ROOST_TOKEN`, `ROOST_LOG` and
//! the like belong to other tools and are left alone.

use figment::providers::Env;
use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider, Source};

/// Prefix of every config variable.
pub const PREFIX: &str = "ROOST_";
/// Separator between section and key: `ROOST_MQTT__LISTEN` is `mqtt.listen`.
pub const SEPARATOR: &str = "__";

/// Keys whose value is a string, taken verbatim from the variable. figment would otherwise
/// read `ROOST_AUTH__JWT_SECRET=0123` as the number 123, and `true` as a boolean.
const STRING_KEYS: &[&str] = &[
    "node.data_dir",
    "mqtt.listen",
    "mqtt.ws_listen",
    "mqtt.tls_listen",
    "mqtt.wss_listen",
    "mqtt.tls_cert",
    "mqtt.tls_key",
    "http.listen",
    "http.header_timeout",
    "auth.jwt_secret",
    "auth.jwks_file",
    "auth.issuer",
    "auth.audience",
    "limits.connect_timeout",
    "history.database_url",
    "history.max_age",
    "accounts.token_ttl",
    "accounts.recheck_interval",
    "presence.visibility",
    "history.delivery",
    "cluster.node_id",
    "cluster.nats_creds",
    "cluster.nats_user",
    "cluster.nats_password",
    "cluster.nats_token",
    "cluster.subject_prefix",
    "cluster.node_timeout",
    "cluster.drain_period",
    "cluster.agent_listen",
];

/// Keys whose value is a list of strings, given in one variable separated by commas:
/// `ROOST_CLUSTER__NATS=nats://a:4222,nats://b:4222`.
const LIST_KEYS: &[&str] = &["cluster.nats", "http.cors_origins"];

/// The name of the variable that sets `key` (`mqtt.listen` -> `ROOST_MQTT__LISTEN`).
pub fn var_name<K: AsRef<str>>(key: &[K]) -> String {
    let upper: Vec<String> = key.iter().map(|k| k.as_ref().to_uppercase()).collect();
    format!("{PREFIX}{}", upper.join(SEPARATOR))
}

/// Reads the process environment when figment asks for it.
pub struct RoostEnv;

impl RoostEnv {
    /// The source recorded on every value from the environment.
    pub fn source() -> Source {
        Source::Custom("environment".into())
    }
}

impl Provider for RoostEnv {
    fn metadata(&self) -> Metadata {
        Metadata::from(format!("`{PREFIX}` environment variable"), Self::source())
            .interpolater(|_: &Profile, key: &[&str]| var_name(key))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let vars = Env::prefixed(PREFIX)
            .filter(|key| key.as_str().contains(SEPARATOR))
            .split(SEPARATOR);

        let mut dict = Dict::new();
        for (key, raw) in vars.iter() {
            let value = if STRING_KEYS.contains(&key.as_str()) {
                Value::from(raw)
            } else if LIST_KEYS.contains(&key.as_str()) {
                Value::from(split_list(&raw))
            } else {
                raw.parse().expect("parsing a Value is infallible")
            };
            let path: Vec<&str> = key.as_str().split('.').collect();
            insert(&mut dict, &path, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// `a, b,,c` -> `["a", "b", "c"]`: items trimmed, empty ones dropped.
fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect()
}

/// Puts `value` at `path` in `dict`, creating the tables on the way.
fn insert(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [leaf] => {
            dict.insert(leaf.to_string(), value);
        }
        [table, rest @ ..] => {
            let entry = dict
                .entry(table.to_string())
                .or_insert_with(|| Dict::new().into());
            if !matches!(entry, Value::Dict(..)) {
                *entry = Dict::new().into();
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_names() {
        assert_eq!(var_name(&["mqtt", "listen"]), "ROOST_MQTT__LISTEN");
        assert_eq!(
            var_name(&["limits", "connect_timeout"]),
            "ROOST_LIMITS__CONNECT_TIMEOUT"
        );
    }

    #[test]
    fn lists() {
        assert_eq!(
            split_list(" nats://a:4222, nats://b:4222 ,,"),
            ["nats://a:4222", "nats://b:4222"]
        );
        assert_eq!(split_list("nats://a"), ["nats://a"]);
        assert!(split_list(" , ").is_empty());
    }
}
