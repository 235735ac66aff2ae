//! Account passwords: argon2id hashes in PHC string form, made and checked by the
//! `argon2` crate (its comparison is constant-time). Nothing here stores or logs a
//! password; callers keep the hash string only.
//!
//! Hashing is deliberately slow (tens of milliseconds of one core): the broker runs it on
//! a small bounded pool, never on its connection tasks.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::cell::RefCell;
use std::sync::OnceLock;

/// Largest argon2 memory a stored hash may ask a check for (64 MiB).
const MAX_BLOCKS: usize = 64 * 1024;

/// Longest password accepted, in bytes: a bound on the work one attempt may ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// An argon2id hash (PHC string, the crate's default parameters) of `password`, with a
/// fresh random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `hash` (compared in constant time). A hash that does not
/// parse, or asks for more than 64 MiB, matches nothing.
///
/// The argon2 working memory (19 MiB with the default parameters) is kept per thread and
/// reused: allocated afresh for every check, the allocator kept hundreds of MiB after a
/// login storm (freed blocks fragmented by the node's small allocations).
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let Some(expected) = parsed.hash else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (
        Params::try_from(&parsed),
        Algorithm::try_from(parsed.algorithm),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Some(salt) = parsed.salt else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    if params.block_count() > MAX_BLOCKS {
        return false;
    }
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    thread_local! {
        static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    }
    let hashed = MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        memory.resize(params.block_count(), Block::default());
        argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut memory[..params.block_count()],
        )
    });
    // `Output`'s equality is constant-time.
    hashed.is_ok() && Output::new(&out).is_ok_and(|o| o == expected)
}

/// Checks `password` against `hash`, or, for a user that does not exist (`None`),
/// against a hash of a random password made once per process: an unknown user costs the
/// same time as a wrong password, so timing does not tell which user names exist.
pub fn verify_or_dummy(password: &str, hash: Option<&str>) -> bool {
    match hash {
        Some(hash) => verify_password(password, hash),
        None => {
            let _ = verify_password(password, dummy_hash());
            false
        }
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&crate::random_secret()).unwrap_or_else(|_| String::from("$invalid"))
    })
}

/// Whether a CONNECT password looks like a JWT (three base64url parts) rather than an
/// account password: such passwords go to the token verifier.
pub fn looks_like_jwt(password: &str) -> bool {
    let parts: Vec<&str> = password.split('.').collect();
    // The signature may be empty (`alg: none`, refused by the verifier as such).
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && !parts[1].is_empty()
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("", &hash));
        // Salted: the same password hashes differently each time.
        assert_ne!(hash, hash_password("correct horse").unwrap());
    }

    #[test]
    fn other_parameters_in_a_stored_hash() {
        // A hash made with other parameters (argon2i, 1 MiB) still checks: they are read
        // from the PHC string.
        let params = Params::new(1024, 1, 1, None).unwrap();
        let argon2 = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let hash = argon2.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(hash.starts_with("$argon2i$"));
        assert!(verify_password("pw", &hash));
        assert!(!verify_password("pW", &hash));
        // Over 64 MiB: refused without trying.
        let huge = hash.replace("m=1024", "m=131072");
        assert!(!verify_password("pw", &huge));
    }

    #[test]
    fn bad_input() {
        assert!(matches!(hash_password(""), Err(PasswordError::Empty)));
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(matches!(hash_password(&long), Err(PasswordError::TooLong)));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_or_dummy("anything", None));
    }

    #[test]
    fn jwt_or_password() {
        assert!(looks_like_jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"));
        assert!(!looks_like_jwt("secret"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."));
        assert!(!looks_like_jwt("eyJ.x y.z"));
    }
}
