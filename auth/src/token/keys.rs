//! Where verification keys come from, and loading them.
//!
//! Each configured key is tied to exactly one algorithm: the secret to HS256,
//! an RSA key to RS256, a P-256 key to ES256. A token is only ever checked
//! with a key of its own algorithm, which rules out the classic confusion of
//! using an RSA public key as an HMAC secret.

use std::fmt;
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

use super::KeyError;

/// The `[auth]` settings that say which tokens to trust.
#[derive(Clone, Default)]
pub struct KeySettings {
    /// Shared secret for HS256 (`auth.jwt_secret`).
    pub hs256_secret: Option<String>,
    /// PEM public keys (`auth.jwt_public_keys`): RSA for RS256, EC P-256 for
    /// ES256. A key's `kid` is its file stem (`keys/a.pem` is kid `a`).
    pub public_keys: Vec<PathBuf>,
    /// A JWKS JSON file (`auth.jwks_file`) of RSA and EC keys, chosen by `kid`.
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required member of `aud`, when set.
    pub audience: Option<String>,
}

impl fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySettings")
            .field("hs256_secret", &self.hs256_secret.as_ref().map(|_| "***"))
            .field("public_keys", &self.public_keys)
            .field("jwks_file", &self.jwks_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl KeySettings {
    /// The files whose contents [`load_files`] reads.
    pub(crate) fn key_files(&self) -> Vec<PathBuf> {
        let mut files = self.public_keys.clone();
        files.extend(self.jwks_file.iter().cloned());
        files
    }
}

/// A public key loaded from a file, ready to check signatures of one algorithm.
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub alg: Algorithm,
    /// PEM file stem or JWKS `kid`; a JWKS key may have none.
    pub kid: Option<String>,
    pub key: DecodingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// RSA keys shorter than this are refused: they can be factored.
const MIN_RSA_BITS: usize = 2048;

/// An HS256 secret shorter than this gets a warning (RFC 7518 section 3.2
/// asks for at least the hash size).
const MIN_SECRET_LEN: usize = 32;

/// Builds the HS256 key, if a secret is configured.
pub(crate) fn load_secret(settings: &KeySettings) -> Result<Option<DecodingKey>, KeyError> {
    let Some(secret) = &settings.hs256_secret else {
        return Ok(None);
    };
    if secret.is_empty() {
        return Err(KeyError::EmptySecret);
    }
    if secret.len() < MIN_SECRET_LEN {
        tracing::warn!(
            "auth.jwt_secret is shorter than {MIN_SECRET_LEN} bytes; tokens may be forgeable"
        );
    }
    Ok(Some(DecodingKey::from_secret(secret.as_bytes())))
}

/// Reads every PEM file and the JWKS file. All or nothing: the first bad file
/// fails the whole load, so a reload never half-applies.
pub(crate) fn load_files(settings: &KeySettings) -> Result<Vec<PublicKey>, KeyError> {
    let mut keys = Vec::new();
    for path in &settings.public_keys {
        keys.push(load_pem(path)?);
    }
    if let Some(path) = &settings.jwks_file {
        keys.extend(load_jwks(path)?);
    }
    Ok(keys)
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

/// One PEM public key; its kid is the file stem.
fn load_pem(path: &Path) -> Result<PublicKey, KeyError> {
    let bytes = read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    // jsonwebtoken would take a PKCS#1 private key as an RSA "public" key and
    // only fail at verification time; say what is wrong instead. Leaving a
    // private key where the broker reads public keys is worth a clear word.
    if text.contains("PRIVATE KEY-----") {
        return Err(KeyError::invalid(
            path,
            "holds a private key; configure the public key (openssl pkey -pubout)",
        ));
    }
    if !text.contains("-----BEGIN PUBLIC KEY-----")
        && !text.contains("-----BEGIN RSA PUBLIC KEY-----")
    {
        return Err(KeyError::invalid(
            path,
            "not a PEM public key (expected BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)",
        ));
    }
    let kid = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned());

    if let Ok(key) = DecodingKey::from_rsa_pem(&bytes) {
        // from_rsa_pem does not parse the key itself; converting it to a JWK
        // does, and hands back the modulus to check its size.
        let jwk = Jwk::from_decoding_key(&key, Some(Algorithm::RS256))
            .map_err(|e| KeyError::invalid(path, format!("unreadable RSA public key: {e}")))?;
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
            return Err(KeyError::invalid(path, "unreadable RSA public key"));
        };
        let key = rsa_key(&rsa.n, &rsa.e).map_err(|problem| KeyError::invalid(path, problem))?;
        return Ok(PublicKey {
            alg: Algorithm::RS256,
            kid,
            key,
        });
    }
    match DecodingKey::from_ec_pem(&bytes) {
        Ok(key) => {
            check_p256(&key).map_err(|problem| KeyError::invalid(path, problem))?;
            Ok(PublicKey {
                alg: Algorithm::ES256,
                kid,
                key,
            })
        }
        Err(_) => Err(KeyError::invalid(
            path,
            "not an RSA or EC P-256 public key (Ed25519 and others are not supported)",
        )),
    }
}

/// Every usable signing key of a JWKS file.
///
/// Identity providers publish encryption keys and other algorithms alongside
/// their signing keys; those are skipped (with a log line) rather than failing
/// the file. A key that claims to be a usable RSA or EC signing key but does not
/// parse is an error, as is a file with no usable key at all.
fn load_jwks(path: &Path) -> Result<Vec<PublicKey>, KeyError> {
    let bytes = read(path)?;
    let set: JwkSet = serde_json::from_slice(&bytes)
        .map_err(|e| KeyError::invalid(path, format!("not a JWKS document: {e}")))?;

    let mut keys = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        let kid = jwk.common.key_id.clone();
        let name = || match &kid {
            Some(kid) => format!("key {index} (kid `{kid}`)"),
            None => format!("key {index}"),
        };
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            tracing::debug!(file = %path.display(), "skipping JWKS {}: not a signing key", name());
            continue;
        }
        let (alg, built) = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => (Algorithm::RS256, rsa_key(&rsa.n, &rsa.e)),
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => (
                Algorithm::ES256,
                DecodingKey::from_ec_components(&ec.x, &ec.y)
                    .map_err(|e| format!("bad EC coordinates: {e}"))
                    .and_then(|key| check_p256(&key).map(|()| key)),
            ),
            _ => {
                tracing::warn!(
                    file = %path.display(),
                    "skipping JWKS {}: only RSA (RS256) and EC P-256 (ES256) keys are supported",
                    name()
                );
                continue;
            }
        };
        // A key pinned to another algorithm (PS256, RS512, ...) must not be
        // used for ours.
        if let Some(declared) = jwk.common.key_algorithm {
            if declared != KeyAlgorithm::from(alg) {
                tracing::warn!(
                    file = %path.display(),
                    "skipping JWKS {}: declared alg {declared} is not {alg:?}",
                    name()
                );
                continue;
            }
        }
        let key =
            built.map_err(|problem| KeyError::invalid(path, format!("{}: {problem}", name())))?;
        keys.push(PublicKey { alg, kid, key });
    }
    if keys.is_empty() {
        return Err(KeyError::invalid(
            path,
            "no RS256 or ES256 signing key in the JWKS",
        ));
    }
    Ok(keys)
}

/// An RSA key from base64url modulus and exponent, refusing weak ones.
fn rsa_key(n: &str, e: &str) -> Result<DecodingKey, String> {
    let key =
        DecodingKey::from_rsa_components(n, e).map_err(|e| format!("bad RSA components: {e}"))?;
    let DecodingKeyKind::RsaModulusExponent { n, e } = key.kind() else {
        return Err("bad RSA components".to_owned());
    };
    let bits = significant_bits(n);
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "RSA key of {bits} bits is too short (at least {MIN_RSA_BITS})"
        ));
    }
    if significant_bits(e) < 2 {
        return Err("bad RSA exponent".to_owned());
    }
    Ok(key)
}

/// Number of bits of a big-endian unsigned integer, leading zeros excluded.
fn significant_bits(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i - 1) * 8 + (8 - be[i].leading_zeros() as usize),
        None => 0,
    }
}

/// ES256 means P-256: refuse other curves and points not on the curve now,
/// not at the first token.
fn check_p256(key: &DecodingKey) -> Result<(), String> {
    let point = key.try_get_as_bytes().map_err(|e| e.to_string())?;
    // An uncompressed P-256 point: 0x04, then 32 bytes of x and 32 of y.
    if point.len() != 65 || point.first() != Some(&0x04) {
        return Err("EC key is not an uncompressed P-256 key (only ES256 is supported)".to_owned());
    }
    // Building a verifier parses the point; a dummy check then fails on the
    // signature, which is fine, but an invalid point fails before that.
    jsonwebtoken::crypto::verify("", b"", key, Algorithm::ES256)
        .map(|_| ())
        .map_err(|_| "EC key is not a valid P-256 point".to_owned())
}
