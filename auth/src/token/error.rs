//! Why a token was refused, and why keys could not be loaded.

use std::path::PathBuf;

/// Why a token was refused.
///
/// Every variant is a refusal of the CONNECT (v3.1.1 return code 4, v5 reason
/// 0x86); the variants exist for logs and metrics, see [`TokenError::reason`].
/// The messages are safe to log: they never echo the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header and JSON claims.
    #[error("malformed token")]
    Malformed,
    /// `alg` is `none`, unknown, or one no configured key can check.
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header names a `kid` that no configured key has.
    #[error("token signed with an unknown key")]
    UnknownKey,
    /// No configured key of the token's algorithm validates the signature.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    #[error("wrong token issuer")]
    WrongIssuer,
    /// `aud` is missing or does not contain the configured audience.
    #[error("wrong token audience")]
    WrongAudience,
    /// A claim is missing, has the wrong type, or is not a valid id or role.
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
}

impl TokenError {
    /// A stable snake_case label, for the Prometheus `reason` label and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::AlgorithmNotAllowed => "algorithm_not_allowed",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::InvalidClaims(_) => "invalid_claims",
        }
    }
}

/// Why the configured keys could not be loaded.
///
/// Messages name the file (or config key) and the problem, because an operator
/// reads them in `roost check-config` output or in the log after a reload.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither a secret nor a key file is configured.
    #[error(
        "no token key configured: set auth.jwt_secret, auth.jwt_public_keys or auth.jwks_file"
    )]
    NoKeys,
    /// `auth.jwt_secret` is set but empty, which would accept forgeries.
    #[error("auth.jwt_secret is empty")]
    EmptySecret,
    /// A key file could not be read.
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A key file was read but holds no usable key.
    #[error("key file {}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

impl KeyError {
    pub(crate) fn invalid(path: &std::path::Path, problem: impl Into<String>) -> KeyError {
        KeyError::Invalid {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}
