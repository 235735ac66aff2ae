//! Who we connect as: from a token (decoded, not verified), a locally minted token, or
//! nothing at all (`--plain`).

use crate::args::ConnArgs;
use anyhow::{anyhow, bail, Context, Result};
use rand::Rng;
use roost_proto::id::is_valid_id;
use std::time::Duration;

/// The user, their groups and the CONNECT password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    /// The token; `None` in `--plain` mode.
    pub token: Option<String>,
}

impl Identity {
    /// Resolves the common options: `--plain`, else `--token`, else `--secret` + `--user`.
    pub fn from_args(args: &ConnArgs) -> Result<Identity> {
        let id = if args.plain {
            let user = args.user.clone().context("--plain needs --user")?;
            Identity {
                user,
                groups: args.groups.clone(),
                token: None,
            }
        } else if let Some(token) = &args.token {
            let (sub, groups) = token_subject(token)?;
            if let Some(user) = &args.user {
                if *user != sub {
                    bail!("--user {user} does not match the token's sub {sub}");
                }
            }
            let groups = if args.groups.is_empty() {
                groups
            } else {
                args.groups.clone()
            };
            Identity {
                user: sub,
                groups,
                token: Some(token.clone()),
            }
        } else if let Some(secret) = &args.secret {
            let user = args
                .user
                .clone()
                .context("--secret needs --user to mint a token for")?;
            let token = mint(
                secret,
                &user,
                &args.groups,
                &args.role,
                Duration::from_secs(3600),
            )?;
            Identity {
                user,
                groups: args.groups.clone(),
                token: Some(token),
            }
        } else {
            bail!("no credentials: pass --token (or ROOST_TOKEN), --secret (or ROOST_SECRET) with --user, or --plain --user for a broker without tokens");
        };
        if !is_valid_id(&id.user) {
            bail!(
                "invalid user id {:?}: ids match [A-Za-z0-9_.-]{{1,64}}",
                id.user
            );
        }
        if let Some(g) = id.groups.iter().find(|g| !is_valid_id(g)) {
            bail!("invalid group id {g:?}: ids match [A-Za-z0-9_.-]{{1,64}}");
        }
        Ok(id)
    }

    /// `{user}:{device}`; the device defaults to a random `cli-XXXX`.
    pub fn client_id(&self, device: Option<&str>) -> Result<String> {
        let device = match device {
            Some(d) if is_valid_id(d) => d.to_string(),
            Some(d) => bail!("invalid device name {d:?}: ids match [A-Za-z0-9_.-]{{1,64}}"),
            None => format!("cli-{:04x}", rand::thread_rng().gen::<u16>()),
        };
        Ok(format!("{}:{device}", self.user))
    }
}

/// Mints an HS256 token with `roost_auth`.
pub fn mint(
    secret: &str,
    user: &str,
    groups: &[String],
    role: &str,
    ttl: Duration,
) -> Result<String> {
    if !is_valid_id(user) {
        bail!("invalid user id {user:?}: ids match [A-Za-z0-9_.-]{{1,64}}");
    }
    let role: roost_auth::Role = role
        .parse()
        .map_err(|_| anyhow!("invalid role {role:?}: expected user, service, bridge or admin"))?;
    let claims = roost_auth::Claims::new(user, groups.to_vec(), role, ttl);
    roost_auth::mint_hs256(secret, &claims).map_err(|e| anyhow!("cannot mint a token: {e}"))
}

/// The `sub` and `groups` of a JWT, read from its payload WITHOUT checking the signature:
/// only to know which topics are ours. The broker does the verifying.
pub fn token_subject(token: &str) -> Result<(String, Vec<String>)> {
    roost_auth::token::unverified_subject(token)
        .context("--token is not a JWT with a string `sub` claim")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sub_and_groups() {
        // {"sub":"alice","groups":["family","work"],"exp":1}
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImdyb3VwcyI6WyJmYW1pbHkiLCJ3b3JrIl0sImV4cCI6MX0.sig";
        let (sub, groups) = token_subject(token).unwrap();
        assert_eq!(sub, "alice");
        assert_eq!(groups, ["family", "work"]);
        assert!(token_subject("garbage").is_err());
    }

    #[test]
    fn minted_token_round_trips() {
        let t = mint(
            "s3cret",
            "bob",
            &["g1".into()],
            "service",
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            token_subject(&t).unwrap(),
            ("bob".to_string(), vec!["g1".to_string()])
        );
        assert!(mint("s", "bob", &[], "emperor", Duration::from_secs(60)).is_err());
    }
}
