//! Accounts (issue 13): password sign-in against the users kept in the history database,
//! for `POST /api/v1/login` ([`api`]) and for MQTT CONNECTs whose password is not a JWT
//! (`[accounts] mqtt_passwords`), and the `roost user` / `roost group` commands ([`cli`]).
//!
//! Password hashing is slow on purpose, so it never runs on a connection task: at most
//! `hash_workers` checks run at once on threads of their own ([`pool`]), at most
//! `hash_queue` wait for one, and any more are refused at once (CONNACK "server busy", HTTP 503) instead of
//! queueing without bound. Unknown users are checked against a dummy hash, so that a
//! wrong user and a wrong password take the same time and get the same answer.
//!
//! A password sign-in lasts `token_ttl`, like a token from login, and a user disabled or
//! deleted while connected is disconnected ([`connected`]).

pub(crate) mod api;
pub mod cli;
pub(crate) mod connected;
mod limiter;
pub(crate) mod mqtt;
mod pool;

use crate::history::History;
use connected::{Connected, Ended};
use limiter::Limiter;
use pool::HashPool;
use roost_auth::{mint_hs256, Claims, Identity, Role};
use std::collections::HashSet;
use std::time::Duration;
use tracing::{info, warn};

/// Why a password sign-in did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    /// Wrong user or wrong password: one answer for both.
    #[error("wrong user or password")]
    BadCredentials,
    #[error("this account is disabled")]
    Disabled,
    #[error("too many login attempts; retry in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("too many password checks at once; retry shortly")]
    Busy,
    #[error("the account store is unavailable right now")]
    Unavailable,
    #[error("this node has no HS256 secret to sign tokens with")]
    NoSecret,
}

/// What a node's password sign-ins share.
pub(crate) struct Accounts {
    history: History,
    settings: roost_config::Accounts,
    /// The node's HS256 secret, `iss` and `aud`: tokens from login are like `roost token`'s.
    secret: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    hashing: HashPool,
    per_address: Limiter,
    per_user: Limiter,
    /// This node's signed-in users, to end when their account goes.
    connected: Connected,
}

impl Accounts {
    pub(crate) fn new(
        config: &roost_config::Config,
        history: History,
        secret: Option<String>,
    ) -> Accounts {
        let settings = config.accounts.clone();
        Accounts {
            history,
            secret,
            issuer: config.auth.issuer.clone(),
            audience: config.auth.audience.clone(),
            hashing: HashPool::new(settings.hash_workers, settings.hash_queue),
            per_address: Limiter::new(settings.login_attempts_per_minute),
            per_user: Limiter::new(settings.login_attempts_per_minute),
            connected: Connected::default(),
            settings,
        }
    }

    /// Hashes a new password on the pool (admin API); `None` when the pool is busy.
    pub(crate) async fn hash(
        &self,
        password: String,
    ) -> Option<Result<String, roost_auth::password::PasswordError>> {
        self.hashing
            .run(move || roost_auth::password::hash_password(&password))
            .await
            .ok()
    }

    /// Whether MQTT CONNECTs may sign in with an account password.
    pub(crate) fn mqtt_passwords(&self) -> bool {
        self.settings.mqtt_passwords
    }

    pub(crate) fn history(&self) -> &History {
        &self.history
    }

    /// This node's signed-in users (see [`connected`]).
    pub(crate) fn connected(&self) -> &Connected {
        &self.connected
    }

    /// Ends `user`'s connections on this node at once (admin API); the other nodes of a
    /// cluster find out at their next [`Accounts::recheck`].
    pub(crate) fn end_user(&self, user: &str, why: Ended) {
        let count = self.connected.end(user, why);
        if count > 0 {
            info!(user, count, reason = why.describe(), "connections ended");
        }
    }

    /// Every `accounts.recheck_interval`, for as long as the node runs: [`Accounts::recheck`].
    pub(crate) async fn recheck_forever(&self) {
        let mut tick = tokio::time::interval(self.settings.recheck_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.recheck().await;
        }
    }

    /// Looks at the store: the disabled accounts (their connections end, their token
    /// sign-ins are refused from now on), and whether the users signed in here with a
    /// password still have an account (those who do not are disconnected). A store that
    /// does not answer leaves everything as it was until the next time.
    pub(crate) async fn recheck(&self) {
        let Some(store) = self.history.get() else {
            return;
        };
        let disabled = match store.disabled_users().await {
            Ok(disabled) => disabled,
            Err(e) => {
                warn!(error = %e, "account recheck: the store did not answer; next time");
                return;
            }
        };
        for user in self.connected.users(false) {
            if disabled.contains(&user) {
                self.end_user(&user, Ended::Disabled);
            }
        }
        let count = disabled.len();
        if self.connected.set_disabled(disabled) {
            info!(
                disabled = count,
                "account recheck: disabled accounts changed"
            );
        }
        let with_password = self.connected.users(true);
        if with_password.is_empty() {
            return;
        }
        let existing: HashSet<String> = match store.existing_users(&with_password).await {
            Ok(existing) => existing,
            Err(e) => {
                warn!(error = %e, "account recheck: the store did not answer; next time");
                return;
            }
        };
        for user in with_password.iter().filter(|u| !existing.contains(*u)) {
            self.end_user(user, Ended::Deleted);
        }
    }

    /// Counts a login attempt from `address` for `user` (HTTP login: every attempt).
    pub(crate) fn count_attempt(&self, address: &str, user: &str) -> Result<(), LoginError> {
        self.per_address
            .attempt(address)
            .map_err(LoginError::RateLimited)?;
        self.per_user
            .attempt(&user_key(user))
            .map_err(LoginError::RateLimited)
    }

    /// Whether `user` is over the limit of failed MQTT sign-ins (does not count).
    pub(crate) fn check_failures(&self, user: &str) -> Result<(), LoginError> {
        self.per_user
            .check(&user_key(user))
            .map_err(LoginError::RateLimited)
    }

    /// Counts a failed MQTT sign-in of `user`.
    pub(crate) fn count_failure(&self, user: &str) {
        let _ = self.per_user.attempt(&user_key(user));
    }

    /// Checks `user`'s password: their identity (groups from the store; `admin` role for
    /// admins) on success.
    pub(crate) async fn check_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Identity, LoginError> {
        let store = self.history.get().ok_or(LoginError::Unavailable)?;
        let credentials = store.credentials(user).await.map_err(|e| {
            tracing::warn!(error = %e, "account store: reading credentials failed");
            LoginError::Unavailable
        })?;
        let hash = credentials.as_ref().map(|c| c.password_hash.clone());
        let password = password.to_owned();
        let matched = self
            .hashing
            .run(move || roost_auth::password::verify_or_dummy(&password, hash.as_deref()))
            .await
            .map_err(|_| LoginError::Busy)?;
        let Some(credentials) = credentials.filter(|_| matched) else {
            return Err(LoginError::BadCredentials);
        };
        if credentials.disabled {
            return Err(LoginError::Disabled);
        }
        self.identity(user, credentials.admin).await
    }

    /// `user`'s identity as the store has it now (for a refresh): groups, role.
    pub(crate) async fn identity(&self, user: &str, admin: bool) -> Result<Identity, LoginError> {
        let store = self.history.get().ok_or(LoginError::Unavailable)?;
        let groups = store
            .groups_of(user)
            .await
            .map_err(|_| LoginError::Unavailable)?;
        Ok(Identity {
            user: user.to_owned(),
            groups,
            role: if admin { Role::Admin } else { Role::User },
            // An MQTT connection signed in with a password lasts as long as a token from
            // login would (`token_ttl`); the client signs in again with the password.
            expires_at: unix_now().saturating_add(self.settings.token_ttl.as_secs()),
        })
    }

    /// A token for `identity`, valid for `token_ttl`, signed with the node's secret.
    pub(crate) fn mint(&self, identity: &Identity) -> Result<(String, u64), LoginError> {
        let secret = self.secret.as_deref().ok_or(LoginError::NoSecret)?;
        let mut claims = Claims::new(
            &identity.user,
            identity.groups.clone(),
            identity.role,
            self.settings.token_ttl,
        );
        claims.iss = self.issuer.clone();
        claims.aud = self.audience.clone();
        let exp = claims.exp;
        let token = mint_hs256(secret, &claims).map_err(|_| LoginError::NoSecret)?;
        Ok((token, exp))
    }
}

fn unix_now() -> u64 {
    u64::try_from(roost_proto::clock::now_ms() / 1000).unwrap_or(0)
}

/// User names are limited case-sensitively as stored, but bounded in length so a long
/// name cannot make a large key.
fn user_key(user: &str) -> String {
    user.chars().take(64).collect()
}
