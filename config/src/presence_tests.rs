//! `[presence] visibility` and `accounts.recheck_interval`: their defaults, the file, the
//! environment, and the errors naming the key (apart from tests.rs, which is long enough).

// Jail closures return `figment::Error`, which is large; that is figment's API, not ours.
#![allow(clippy::result_large_err)]

use std::path::Path;
use std::time::Duration;

use figment::Jail;

use crate::*;

fn load_toml(jail: &mut Jail, toml: &str) -> Result<Config, ConfigError> {
    jail.create_file("roost.toml", toml)
        .expect("write config file");
    load(Some(Path::new("roost.toml")))
}

#[test]
fn visibility_defaults_to_groups_and_reads_all() {
    Jail::expect_with(|jail| {
        let config = load_toml(jail, "").unwrap();
        assert_eq!(config.presence.visibility, Visibility::Groups);
        assert_eq!(config.accounts.recheck_interval, Duration::from_secs(10));
        let config = load_toml(jail, "[presence]\nvisibility = \"all\"\n").unwrap();
        assert_eq!(config.presence.visibility, Visibility::All);
        jail.set_env("ROOST_PRESENCE__VISIBILITY", "groups");
        jail.set_env("ROOST_ACCOUNTS__RECHECK_INTERVAL", "2s");
        let config = load_toml(jail, "[presence]\nvisibility = \"all\"\n").unwrap();
        assert_eq!(config.presence.visibility, Visibility::Groups);
        assert_eq!(config.accounts.recheck_interval, Duration::from_secs(2));
        Ok(())
    });
}

#[test]
fn bad_visibility_and_zero_recheck_name_the_key() {
    Jail::expect_with(|jail| {
        let error = load_toml(jail, "[presence]\nvisibility = \"friends\"\n").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("presence.visibility"), "{text}");
        assert!(text.contains("friends"), "{text}");
        let error = load_toml(jail, "[accounts]\nrecheck_interval = \"0s\"\n").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("accounts.recheck_interval"), "{text}");
        Ok(())
    });
}
