//! What can go wrong, said so that the operator knows which key to fix and where it was set.

use std::fmt;
use std::io;
use std::path::PathBuf;

use figment::error::Kind;
use figment::value::Value;
use figment::{Figment, Metadata, Profile, Source};

use crate::env::RoostEnv;

/// A config that could not be read or is not valid.
///
/// Every message names the key (`mqtt.listen`) and where its value came from (the file or
/// the `ROOST_` variable).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` could not be opened.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: {message}")]
    Syntax { origin: Origin, message: String },
    /// A key that roost does not know, usually a typo.
    #[error("unknown key `{key}` ({origin})")]
    UnknownKey { key: String, origin: Origin },
    /// A key whose value has the wrong type or is out of range.
    #[error("{key}: {message} ({origin})")]
    Invalid {
        key: String,
        message: String,
        origin: Origin,
    },
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in defaults.
    Default,
    /// The config file.
    File(PathBuf),
    /// An environment variable, e.g. `ROOST_MQTT__LISTEN`.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in default"),
            Origin::File(path) => write!(f, "in {}", path.display()),
            Origin::Env(var) => write!(f, "from environment variable {var}"),
        }
    }
}

impl Origin {
    /// Where the value at `key` (dotted) in `figment` came from.
    pub(crate) fn of(figment: &Figment, key: &str) -> Origin {
        let metadata = figment.find_metadata(key);
        Origin::from_metadata(metadata, &leaf_key(figment, key))
    }

    fn from_metadata(metadata: Option<&Metadata>, key: &str) -> Origin {
        let Some(metadata) = metadata else {
            return Origin::Default;
        };
        match &metadata.source {
            Some(Source::File(path)) => Origin::File(path.clone()),
            Some(source) if *source == RoostEnv::source() => {
                // A variable sets a whole array: `ROOST_ACL__RULES`, not `..__RULES__0`.
                let path: Vec<&str> = key
                    .split('.')
                    .take_while(|part| !part.bytes().all(|b| b.is_ascii_digit()))
                    .collect();
                Origin::Env(metadata.interpolate(&Profile::Default, &path))
            }
            _ => Origin::Default,
        }
    }
}

/// The first full key under `key`: an unknown table such as `ROOST_FOO__BAR` is reported
/// as `foo`, and its variable is found through `foo.bar`.
fn leaf_key(figment: &Figment, key: &str) -> String {
    let mut key = key.to_string();
    while let Ok(Value::Dict(_, dict)) = figment.find_value(&key) {
        match dict.keys().next() {
            Some(first) => key = format!("{key}.{first}"),
            None => break,
        }
    }
    key
}

impl ConfigError {
    /// Turns a figment error, which carries the key path and the source, into ours.
    pub(crate) fn from_figment(figment: &Figment, error: figment::Error) -> ConfigError {
        // For an unknown field, figment's path already ends with the field.
        let key = error.path.join(".");
        let origin = match figment.find_metadata(&key) {
            Some(_) => Origin::of(figment, &key),
            // Inside an array (`acl.rules.0.qos`) or not about a key at all.
            None => Origin::from_metadata(error.metadata.as_ref(), &key),
        };
        let message = error.kind.to_string();
        match error.kind {
            Kind::UnknownField(..) => ConfigError::UnknownKey { key, origin },
            // Not about one key: the file itself did not parse.
            _ if key.is_empty() => ConfigError::Syntax { origin, message },
            _ => ConfigError::Invalid {
                key,
                message,
                origin,
            },
        }
    }

    /// A value that deserialized but breaks a rule.
    pub(crate) fn invalid(figment: &Figment, key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
            origin: Origin::of(figment, key),
        }
    }
}
