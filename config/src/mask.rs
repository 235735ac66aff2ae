//! Secrets made fit to show: the effective config as TOML with its secrets as `***`, and
//! the one function that masks a database URL wherever one is shown or logged.

use crate::{Config, Secret};

impl Config {
    /// The config as a TOML document that [`load`](crate::load) reads back, with
    /// `auth.jwt_secret`, `cluster.nats_password`, `cluster.nats_token` and any password in
    /// `history.database_url` replaced by `***`.
    /// This is what `roost check-config` prints.
    ///
    /// # Panics
    ///
    /// If a path is not valid UTF-8, which TOML cannot hold. A config from `load` never
    /// has one.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        if let Some(secret) = &mut masked.auth.jwt_secret {
            *secret = Secret::new(Secret::MASK.into());
        }
        for secret in [
            &mut masked.cluster.nats_password,
            &mut masked.cluster.nats_token,
        ]
        .into_iter()
        .flatten()
        {
            *secret = Secret::new(Secret::MASK.into());
        }
        if let Some(url) = &mut masked.history.database_url {
            *url = mask_url(url);
        }
        toml::to_string(&masked).expect("a config with UTF-8 paths serializes to TOML")
    }
}

/// A URL with its passwords replaced by `***`, for logs and for people:
/// `postgres://user:pw@host/db?password=pw&sslpassword=k` ->
/// `postgres://user:***@host/db?password=***&sslpassword=***`.
///
/// Every query parameter whose name ends in `password` (any case) is masked, as is the
/// password of the user info. Use it for every URL that may carry credentials.
pub fn mask_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (url, None),
    };

    let mut out = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{scheme}://{user}:{}@{host}", Secret::MASK)
                }
                None => url.to_string(),
            },
            None => url.to_string(),
        },
        None => url.to_string(),
    };

    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().ends_with("password") => {
                    format!("{name}={}", Secret::MASK)
                }
                _ => param.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked() {
        for (url, shown) in [
            (
                "sqlite://roost-data/history.db",
                "sqlite://roost-data/history.db",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
            ("postgres://user@host/db", "postgres://user@host/db"),
            ("postgres://user:pw@host/db", "postgres://user:***@host/db"),
            (
                "postgresql://u:p@ss@h:5432/db",
                "postgresql://u:***@h:5432/db",
            ),
            (
                "postgres://host/db?user=u&password=pw&sslmode=require",
                "postgres://host/db?user=u&password=***&sslmode=require",
            ),
            (
                "postgres://u:pw@host/db?PASSWORD=pw&sslpassword=key&passwordless=1",
                "postgres://u:***@host/db?PASSWORD=***&sslpassword=***&passwordless=1",
            ),
        ] {
            assert_eq!(mask_url(url), shown);
        }
    }

    #[test]
    fn masked_toml_hides_the_secret() {
        let mut config = Config::default();
        config.auth.jwt_secret = Some(Secret::new("hunter2".into()));
        let shown = config.to_masked_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(r#"jwt_secret = "***""#), "{shown}");

        config.cluster.nats_password = Some(Secret::new("natspw".into()));
        config.cluster.nats_token = Some(Secret::new("natstok".into()));
        let shown = config.to_masked_toml();
        assert!(
            !shown.contains("natspw") && !shown.contains("natstok"),
            "{shown}"
        );
        assert!(shown.contains(r#"nats_password = "***""#), "{shown}");
        assert!(shown.contains(r#"nats_token = "***""#), "{shown}");
    }
}
