//! Checking tokens against the configured keys.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::claims::identity_from;
use super::header::JoseHeader;
use super::keys::{load_files, load_secret, KeySettings, PublicKey};
use super::{Identity, KeyError, TokenError};

/// Clock skew tolerated on `exp` and `nbf`, in seconds: at sign-in, and by the broker's
/// expiry timer (a token accepted within the skew is not then closed at once).
pub const LEEWAY_SECS: u64 = 5;

/// Verifies CONNECT tokens. Cheap to share (`Send + Sync`); [`Verifier::reload`]
/// swaps keys under a lock held only for the swap, so connects in flight keep
/// the key set they started with.
#[derive(Debug)]
pub struct Verifier {
    settings: KeySettings,
    keys: RwLock<Arc<KeySet>>,
}

/// Everything a token may be checked with, at one point in time.
#[derive(Debug)]
struct KeySet {
    /// From `auth.jwt_secret`; never reloaded (it is not in a file).
    hs256: Option<DecodingKey>,
    /// From PEM files and the JWKS file.
    public: Vec<PublicKey>,
}

impl Verifier {
    /// Loads the secret and all key files. Fails if no key at all is
    /// configured or any file is unreadable or holds no usable key.
    pub fn new(settings: KeySettings) -> Result<Verifier, KeyError> {
        let hs256 = load_secret(&settings)?;
        let public = load_files(&settings)?;
        if hs256.is_none() && public.is_empty() {
            return Err(KeyError::NoKeys);
        }
        tracing::debug!(
            hs256 = hs256.is_some(),
            public_keys = public.len(),
            "token keys loaded"
        );
        Ok(Verifier {
            settings,
            keys: RwLock::new(Arc::new(KeySet { hs256, public })),
        })
    }

    /// Re-reads the PEM and JWKS files. On error the previous keys stay in
    /// use and the error says which file is at fault.
    pub fn reload(&self) -> Result<(), KeyError> {
        let public = load_files(&self.settings)?;
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let hs256 = keys.hs256.clone();
        *keys = Arc::new(KeySet { hs256, public });
        Ok(())
    }

    /// The files to watch: when one changes (or on SIGHUP) call
    /// [`Verifier::reload`].
    pub fn key_files(&self) -> Vec<PathBuf> {
        self.settings.key_files()
    }

    /// Checks `token` and says whose it is.
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let header = JoseHeader::parse(token)?;
        let keys = self.current();

        // Only algorithms we hold a key for exist, as far as tokens go:
        // `none`, HS384, PS256, ... and HS256 without a secret are refused here.
        let alg = match header.alg.as_str() {
            "HS256" if keys.hs256.is_some() => Algorithm::HS256,
            "RS256" if keys.has(Algorithm::RS256) => Algorithm::RS256,
            "ES256" if keys.has(Algorithm::ES256) => Algorithm::ES256,
            _ => return Err(TokenError::AlgorithmNotAllowed),
        };
        let candidates = keys.candidates(alg, header.kid.as_deref())?;
        let validation = self.validation(alg);

        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => return identity_from(&data.claims),
                // Without a kid several keys may apply: try the next.
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => continue,
                Err(e) => return Err(map_error(e.kind())),
            }
        }
        Err(TokenError::BadSignature)
    }

    fn current(&self) -> Arc<KeySet> {
        // The lock only guards an Arc swap, so a poisoned lock still holds a
        // consistent key set.
        let keys = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&keys)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.settings.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            // jsonwebtoken refuses any `aud` when none is expected; we ignore
            // it instead, as the contract says iss/aud are checked only when
            // configured.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

impl KeySet {
    fn has(&self, alg: Algorithm) -> bool {
        self.public.iter().any(|k| k.alg == alg)
    }

    /// The keys to try for a token of `alg`: the one(s) named by `kid`, or
    /// every key of that algorithm when the token names none.
    fn candidates(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Vec<&DecodingKey>, TokenError> {
        if alg == Algorithm::HS256 {
            // There is one secret and it has no kid; a kid in an HS256
            // header (some issuers always set one) changes nothing.
            return Ok(self.hs256.iter().collect());
        }
        let keys: Vec<&DecodingKey> = self
            .public
            .iter()
            .filter(|k| k.alg == alg && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .map(|k| &k.key)
            .collect();
        if keys.is_empty() {
            return Err(TokenError::UnknownKey);
        }
        Ok(keys)
    }
}

/// Translates jsonwebtoken's verdict (after the algorithm and key were chosen).
fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => TokenError::WrongIssuer,
            "aud" => TokenError::WrongAudience,
            other => {
                TokenError::InvalidClaims(format!("`{other}` is missing or has the wrong type"))
            }
        },
        ErrorKind::InvalidClaimFormat(claim) => {
            TokenError::InvalidClaims(format!("`{claim}` has the wrong type"))
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm => TokenError::AlgorithmNotAllowed,
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            // Keys are checked when loaded, so this is a signature that does
            // not fit the key (e.g. a wrong-length ES256 signature).
            TokenError::BadSignature
        }
        _ => TokenError::Malformed,
    }
}
