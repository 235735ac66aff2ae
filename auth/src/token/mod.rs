//! JSON Web Tokens: who a CONNECT password says the client is.
//!
//! [`Verifier`] turns a token into an [`Identity`] or a [`TokenError`];
//! [`mint_hs256`] does the opposite for `roost token` and development setups.

mod claims;
mod error;
mod header;
mod keys;
mod verifier;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use claims::{mint_hs256, random_secret, Claims};
pub use error::{KeyError, TokenError};
pub use header::unverified_subject;
pub use keys::KeySettings;
pub use verifier::{Verifier, LEEWAY_SECS};

/// Who a verified token says the client is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`, a valid id.
    pub user: String,
    /// The token's `groups`, each a valid id (empty if the claim is absent).
    pub groups: Vec<String>,
    /// The token's `role`, [`Role::User`] if absent.
    pub role: Role,
    /// The token's `exp`, unix seconds: the broker ends the connection then.
    pub expires_at: u64,
}

impl Identity {
    /// Whether the token lists `group` among the user's groups.
    pub fn is_member(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What kind of principal a token speaks for (the `role` claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A person using an app: confined to their own `im/` topics.
    #[default]
    User,
    /// A trusted back-end (history worker, bot): anywhere under `im/`.
    Service,
    /// A link between roost nodes; for now trusted like a service.
    Bridge,
    /// An operator; for now the same topics as a user.
    Admin,
}

impl Role {
    /// Every role, in the order they are documented.
    pub const ALL: [Role; 4] = [Role::User, Role::Service, Role::Bridge, Role::Admin];

    /// The lowercase name used in tokens, config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Service => "service",
            Role::Bridge => "bridge",
            Role::Admin => "admin",
        }
    }

    /// Roles trusted to act for anybody inside `im/` (any `from`, any filter).
    pub fn is_trusted_backend(self) -> bool {
        matches!(self, Role::Service | Role::Bridge)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of `user`, `service`, `bridge`, `admin`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (expected user, service, bridge or admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}
