//! Arbitrary CONNECT passwords through the token verifier (HS256 key) and the unverified
//! subject peek used for refusal logs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_auth::{KeySettings, Verifier};
use std::sync::LazyLock;

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::new(KeySettings {
        hs256_secret: Some("fuzz-secret-0123456789abcdef0123456789".to_owned()),
        public_keys: Vec::new(),
        jwks_file: None,
        issuer: None,
        audience: None,
    })
    .expect("an HS256 verifier")
});

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = VERIFIER.verify(token);
    let _ = roost_auth::token::unverified_subject(token);
});
