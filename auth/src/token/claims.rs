//! The claims roost reads from a token, and minting tokens with the secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Identity, Role, TokenError};
use roost_proto::id::is_valid_id;

/// The claims of a token roost mints (`roost token`, the CLI's `--secret`).
///
/// Verification does not deserialize into this type: it reads the claims
/// field by field so that each problem gets a precise
/// [`TokenError::InvalidClaims`] message, and so that `aud` may be an array.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Issued at, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Group ids the user belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The user's role.
    #[serde(default)]
    pub role: Role,
}

impl Claims {
    /// Claims for `user`, issued now and valid for `ttl`.
    pub fn new(user: &str, groups: Vec<String>, role: Role, ttl: Duration) -> Claims {
        let now = now_secs();
        Claims {
            sub: user.to_owned(),
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
            nbf: None,
            iss: None,
            aud: None,
            groups,
            role,
        }
    }
}

/// Signs `claims` with the HS256 `secret`.
///
/// Refuses (with [`TokenError::InvalidClaims`]) what a verifier would refuse
/// anyway: a `sub` or group that is not a valid id, or an empty secret.
pub fn mint_hs256(secret: &str, claims: &Claims) -> Result<String, TokenError> {
    if secret.is_empty() {
        return Err(TokenError::InvalidClaims(
            "cannot sign with an empty secret".to_owned(),
        ));
    }
    check_ids(&claims.sub, &claims.groups)?;
    let key = EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
        // HMAC signing of serializable claims cannot fail; if it ever does,
        // the caller still gets a refusal rather than a panic.
        .map_err(|e| TokenError::InvalidClaims(format!("cannot sign: {e}")))
}

/// A fresh random HS256 secret: 32 bytes from the OS, hex-encoded (64
/// characters, safe in TOML, environment variables and shells).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unix time in seconds; a clock before 1970 counts as 1970.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builds the identity from claims whose signature, `exp`, `nbf`, `iss` and
/// `aud` jsonwebtoken has already checked.
pub(crate) fn identity_from(claims: &Map<String, Value>) -> Result<Identity, TokenError> {
    let invalid = |what: &str| TokenError::InvalidClaims(what.to_owned());

    let user = match claims.get("sub") {
        Some(Value::String(sub)) => sub.clone(),
        Some(_) => return Err(invalid("`sub` is not a string")),
        None => return Err(invalid("`sub` is missing")),
    };
    let expires_at = match claims.get("exp") {
        Some(Value::Number(n)) => n
            .as_u64()
            // jsonwebtoken accepts fractional seconds; so do we.
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| invalid("`exp` is not a unix time"))?,
        Some(_) => return Err(invalid("`exp` is not a number")),
        None => return Err(invalid("`exp` is missing")),
    };
    let groups = match claims.get("groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(group) => Ok(group.clone()),
                _ => Err(invalid("`groups` holds a non-string")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(invalid("`groups` is not an array")),
    };
    let role = match claims.get("role") {
        None | Some(Value::Null) => Role::User,
        Some(Value::String(role)) => role.parse().map_err(|_| invalid("unknown `role`"))?,
        Some(_) => return Err(invalid("`role` is not a string")),
    };
    check_ids(&user, &groups)?;
    Ok(Identity {
        user,
        groups,
        role,
        expires_at,
    })
}

/// Ids become topic levels: anything else could reach into other topics.
fn check_ids(sub: &str, groups: &[String]) -> Result<(), TokenError> {
    if !is_valid_id(sub) {
        return Err(TokenError::InvalidClaims(
            "`sub` is not a valid id ([A-Za-z0-9_.-]{1,64})".to_owned(),
        ));
    }
    if groups.iter().any(|g| !is_valid_id(g)) {
        return Err(TokenError::InvalidClaims(
            "a group in `groups` is not a valid id ([A-Za-z0-9_.-]{1,64})".to_owned(),
        ));
    }
    Ok(())
}
