//! Configuration of a roost node.
//!
//! [`load`] reads the embedded defaults, then an optional TOML file, then the
//! `ROOST_SECTION__KEY` environment variables (double underscore nests:
//! `ROOST_MQTT__LISTEN=0.0.0.0:1883`, `ROOST_LIMITS__CONNECT_TIMEOUT=10s`), each layer
//! overriding the one before. Unknown keys are errors, from the file and from the
//! environment alike; variables without a `__`, such as `ROOST_TOKEN` or `ROOST_LOG`, are
//! not config and are ignored. The result is validated, and every error names the bad key
//! and where its value came from.
//!
//! The key names are the operator contract of `docs/operating.md`.
//!
//! This crate reads and validates config, nothing more: it does not create files or
//! directories, open sockets, read TLS or JWT key files, or generate secrets. Those are
//! the broker's job, as is checking the meaning of ACL rules (`roost_auth::Acl::new`).

mod config;
mod env;
mod error;
mod mask;
mod secret;
mod validate;

use std::fs::File;
use std::path::Path;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;

pub use crate::config::{
    Accounts, Acl, Auth, Cluster, Config, Delivery, History, Http, Limits, Mqtt, Node, Presence,
    Visibility,
};
pub use crate::error::{ConfigError, Origin};
pub use crate::mask::mask_url;
pub use crate::secret::Secret;

/// Loads the config: defaults, then `file` if given, then `ROOST_` variables; validated.
///
/// A `file` that is given but cannot be read is an error naming it.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = file {
        // figment treats a missing file as empty; a file the operator named must exist.
        File::open(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(env::RoostEnv);

    let config: Config = figment
        .extract()
        .map_err(|error| ConfigError::from_figment(&figment, error))?;
    let mut config = config;
    default_node_id(&mut config, &figment)?;
    validate::validate(&config, &figment)?;
    Ok(config)
}

/// A clustered node without `cluster.node_id` is named after its host.
fn default_node_id(config: &mut Config, figment: &Figment) -> Result<(), ConfigError> {
    if !config.cluster.enabled() || config.cluster.node_id.is_some() {
        return Ok(());
    }
    let host = gethostname::gethostname();
    match host.to_str() {
        Some(name) if roost_proto::id::is_valid_id(name) => {
            config.cluster.node_id = Some(name.to_string());
            Ok(())
        }
        _ => Err(ConfigError::invalid(
            figment,
            "cluster.node_id",
            format!(
                "is not set and the host name {host:?} is not a valid node id \
                 (1 to 64 characters from A-Z a-z 0-9 _ . -): set cluster.node_id"
            ),
        )),
    }
}

#[cfg(test)]
mod presence_tests;
#[cfg(test)]
mod tests;
