//! Token verification against docs/protocol.md section 2, with the throwaway keys
//! in `testdata/keys` (see `testdata/gen-keys.sh`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::claims::now_secs;
use super::*;

const SECRET: &str = "roost-test-secret-roost-test-secret";

fn key_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/keys")
        .join(name)
}

fn private(name: &str) -> EncodingKey {
    let pem = std::fs::read(key_file(&format!("{name}.key"))).unwrap();
    if name.starts_with("ec") {
        EncodingKey::from_ec_pem(&pem).unwrap()
    } else {
        EncodingKey::from_rsa_pem(&pem).unwrap()
    }
}

fn hs256_settings() -> KeySettings {
    KeySettings {
        hs256_secret: Some(SECRET.into()),
        ..KeySettings::default()
    }
}

fn pem_settings(files: &[&str]) -> KeySettings {
    KeySettings {
        public_keys: files.iter().map(|f| key_file(f)).collect(),
        ..KeySettings::default()
    }
}

fn verifier(settings: KeySettings) -> Verifier {
    Verifier::new(settings).unwrap()
}

/// Claims valid for an hour.
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now_secs() + 3600})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

/// A token with any header at all, and a made-up signature.
fn forged(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut buf = [0u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[track_caller]
fn assert_refused(result: Result<Identity, TokenError>, reason: &str) {
    match result {
        Ok(identity) => panic!("accepted {identity:?}, expected {reason}"),
        Err(e) => assert_eq!(e.reason(), reason, "{e}"),
    }
}

// ---- HS256 ----------------------------------------------------------------

#[test]
fn hs256_token_gives_identity() {
    let v = verifier(hs256_settings());
    let exp = now_secs() + 3600;
    let token = hs256(&json!({"sub": "alice", "exp": exp, "groups": ["team", "ops"]}));
    let id = v.verify(&token).unwrap();
    assert_eq!(
        id,
        Identity {
            user: "alice".into(),
            groups: vec!["team".into(), "ops".into()],
            role: Role::User,
            expires_at: exp,
        }
    );
    assert!(id.is_member("team"));
    assert!(!id.is_member("other"));
}

#[test]
fn roles_are_read() {
    let v = verifier(hs256_settings());
    for role in Role::ALL {
        let token = hs256(&with(claims("bot"), "role", json!(role.as_str())));
        assert_eq!(v.verify(&token).unwrap().role, role);
    }
    let token = hs256(&with(claims("bot"), "role", Value::Null));
    assert_eq!(v.verify(&token).unwrap().role, Role::User);
}

#[test]
fn wrong_secret_is_a_bad_signature() {
    let v = verifier(hs256_settings());
    let token = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another-secret-another-secret-another"),
        &claims("alice"),
    );
    assert_refused(v.verify(&token), "bad_signature");
}

#[test]
fn tampered_claims_are_a_bad_signature() {
    let v = verifier(hs256_settings());
    let token = hs256(&claims("alice"));
    let mut parts: Vec<&str> = token.split('.').collect();
    let evil = b64url(claims("bob").to_string().as_bytes());
    parts[1] = &evil;
    assert_refused(v.verify(&parts.join(".")), "bad_signature");
}

#[test]
fn a_kid_on_an_hs256_token_is_ignored() {
    let v = verifier(hs256_settings());
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let token = sign(Algorithm::HS256, Some("whatever"), &key, &claims("alice"));
    assert_eq!(v.verify(&token).unwrap().user, "alice");
}

// ---- time -----------------------------------------------------------------

#[test]
fn expired_tokens_are_refused_after_the_leeway() {
    let v = verifier(hs256_settings());
    let now = now_secs();
    let token = hs256(&json!({"sub": "alice", "exp": now - 100}));
    assert_refused(v.verify(&token), "expired");
    let token = hs256(&json!({"sub": "alice", "exp": now - 2}));
    assert!(v.verify(&token).is_ok(), "within the 5 s leeway");
}

#[test]
fn not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let v = verifier(hs256_settings());
    let now = now_secs();
    let token = hs256(&with(claims("alice"), "nbf", json!(now + 100)));
    assert_refused(v.verify(&token), "not_yet_valid");
    let token = hs256(&with(claims("alice"), "nbf", json!(now + 2)));
    assert!(v.verify(&token).is_ok(), "within the 5 s leeway");
    let token = hs256(&with(claims("alice"), "nbf", json!(now - 100)));
    assert!(v.verify(&token).is_ok());
}

#[test]
fn exp_may_be_fractional() {
    let v = verifier(hs256_settings());
    let exp = now_secs() + 60;
    let token = hs256(&json!({"sub": "alice", "exp": exp as f64 + 0.5}));
    assert_eq!(v.verify(&token).unwrap().expires_at, exp);
}

// ---- iss / aud --------------------------------------------------------------

fn iss_aud_verifier() -> Verifier {
    verifier(KeySettings {
        issuer: Some("https://id.example".into()),
        audience: Some("roost".into()),
        ..hs256_settings()
    })
}

#[test]
fn iss_and_aud_are_checked_when_configured() {
    let v = iss_aud_verifier();
    let good = json!({
        "sub": "alice", "exp": now_secs() + 60, "iss": "https://id.example", "aud": "roost"
    });
    assert!(v.verify(&hs256(&good)).is_ok());
    let aud_array = with(good.clone(), "aud", json!(["other", "roost"]));
    assert!(v.verify(&hs256(&aud_array)).is_ok());

    let wrong_iss = with(good.clone(), "iss", json!("https://evil.example"));
    assert_refused(v.verify(&hs256(&wrong_iss)), "wrong_issuer");
    let mut no_iss = good.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_refused(v.verify(&hs256(&no_iss)), "wrong_issuer");

    let wrong_aud = with(good.clone(), "aud", json!("other"));
    assert_refused(v.verify(&hs256(&wrong_aud)), "wrong_audience");
    let wrong_auds = with(good.clone(), "aud", json!(["a", "b"]));
    assert_refused(v.verify(&hs256(&wrong_auds)), "wrong_audience");
    let mut no_aud = good;
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_refused(v.verify(&hs256(&no_aud)), "wrong_audience");
}

#[test]
fn iss_and_aud_are_ignored_when_not_configured() {
    let v = verifier(hs256_settings());
    let token = hs256(&json!({
        "sub": "alice", "exp": now_secs() + 60, "iss": "anyone", "aud": ["x", "y"]
    }));
    assert!(v.verify(&token).is_ok());
    let token = hs256(&with(claims("alice"), "aud", json!("x")));
    assert!(v.verify(&token).is_ok());
}

// ---- algorithms -------------------------------------------------------------

#[test]
fn alg_none_is_refused() {
    let v = verifier(hs256_settings());
    for alg in ["none", "None", "NONE"] {
        let token = forged(&json!({"alg": alg, "typ": "JWT"}), &claims("alice"), "");
        assert_refused(v.verify(&token), "algorithm_not_allowed");
    }
}

#[test]
fn unconfigured_algorithms_are_refused() {
    let v = verifier(hs256_settings());
    for alg in [
        "HS384", "HS512", "RS256", "ES256", "PS256", "EdDSA", "hs256", "",
    ] {
        let token = forged(&json!({"alg": alg}), &claims("alice"), "c2ln");
        assert_refused(v.verify(&token), "algorithm_not_allowed");
    }
    // Really signed with HS512 and the right secret: still not allowed.
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let token = sign(Algorithm::HS512, None, &key, &claims("alice"));
    assert_refused(v.verify(&token), "algorithm_not_allowed");
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    // The classic confusion: sign HS256 with the server's RSA public key as
    // the secret. With only RSA configured, HS256 does not exist.
    let pem = std::fs::read(key_file("rsa1.pem")).unwrap();
    let token = sign(
        Algorithm::HS256,
        Some("rsa1"),
        &EncodingKey::from_secret(&pem),
        &claims("alice"),
    );
    let v = verifier(pem_settings(&["rsa1.pem"]));
    assert_refused(v.verify(&token), "algorithm_not_allowed");
    // With a secret configured too, HS256 checks against the secret only.
    let v = verifier(KeySettings {
        hs256_secret: Some(SECRET.into()),
        ..pem_settings(&["rsa1.pem"])
    });
    assert_refused(v.verify(&token), "bad_signature");
}

#[test]
fn critical_header_extensions_are_refused() {
    let v = verifier(hs256_settings());
    let token = forged(
        &json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
        &claims("a"),
        "c2ln",
    );
    assert_refused(v.verify(&token), "malformed");
}

#[test]
fn malformed_tokens() {
    let v = verifier(hs256_settings());
    let good = hs256(&claims("alice"));
    let not_json_claims = format!("{}.bm90IGpzb24.c2ln", good.split('.').next().unwrap());
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "...",
        &format!("{good}.x"),
        &format!(" {good}"),
        &not_json_claims,
    ] {
        match v.verify(token) {
            Err(TokenError::Malformed) | Err(TokenError::BadSignature) => {}
            other => panic!("{token:?}: {other:?}"),
        }
    }
    assert_refused(v.verify("a.b.c"), "malformed");
    assert_refused(v.verify(""), "malformed");
}

// ---- RS256 / ES256 with PEM files ------------------------------------------

#[test]
fn rs256_with_a_pem_key() {
    let v = verifier(pem_settings(&["rsa1.pem"]));
    let rsa1 = private("rsa1");
    for kid in [Some("rsa1"), None] {
        let token = sign(Algorithm::RS256, kid, &rsa1, &claims("alice"));
        assert_eq!(v.verify(&token).unwrap().user, "alice");
    }
    let token = sign(Algorithm::RS256, Some("nope"), &rsa1, &claims("alice"));
    assert_refused(v.verify(&token), "unknown_key");
    // Signed by another key.
    let rsa2 = private("rsa2");
    let token = sign(Algorithm::RS256, None, &rsa2, &claims("alice"));
    assert_refused(v.verify(&token), "bad_signature");
    let token = sign(Algorithm::RS256, Some("rsa1"), &rsa2, &claims("alice"));
    assert_refused(v.verify(&token), "bad_signature");
    // RS512 with the right key: not an allowed algorithm.
    let token = sign(Algorithm::RS512, Some("rsa1"), &rsa1, &claims("alice"));
    assert_refused(v.verify(&token), "algorithm_not_allowed");
    let token = sign(Algorithm::PS256, Some("rsa1"), &rsa1, &claims("alice"));
    assert_refused(v.verify(&token), "algorithm_not_allowed");
}

#[test]
fn es256_with_a_pem_key() {
    let v = verifier(pem_settings(&["ec1.pem"]));
    let ec1 = private("ec1");
    for kid in [Some("ec1"), None] {
        let token = sign(Algorithm::ES256, kid, &ec1, &claims("alice"));
        assert_eq!(v.verify(&token).unwrap().user, "alice");
    }
    let token = sign(Algorithm::ES256, None, &private("ec2"), &claims("alice"));
    assert_refused(v.verify(&token), "bad_signature");
    let token = sign(Algorithm::RS256, None, &private("rsa1"), &claims("alice"));
    assert_refused(v.verify(&token), "algorithm_not_allowed");
}

#[test]
fn without_a_kid_every_key_of_the_algorithm_is_tried() {
    let v = verifier(pem_settings(&["rsa1.pem", "rsa2.pem", "ec1.pem"]));
    for (alg, name) in [
        (Algorithm::RS256, "rsa1"),
        (Algorithm::RS256, "rsa2"),
        (Algorithm::ES256, "ec1"),
    ] {
        let token = sign(alg, None, &private(name), &claims("alice"));
        assert!(v.verify(&token).is_ok(), "{name}");
        let token = sign(alg, Some(name), &private(name), &claims("alice"));
        assert!(v.verify(&token).is_ok(), "{name} by kid");
    }
    // A kid picks one key: the other one's signature does not pass.
    let token = sign(
        Algorithm::RS256,
        Some("rsa2"),
        &private("rsa1"),
        &claims("alice"),
    );
    assert_refused(v.verify(&token), "bad_signature");
    // A kid of a key of another algorithm is not a key for this one.
    let token = sign(
        Algorithm::ES256,
        Some("rsa1"),
        &private("ec1"),
        &claims("alice"),
    );
    assert_refused(v.verify(&token), "unknown_key");
}

#[test]
fn claims_are_checked_after_the_signature() {
    let v = verifier(pem_settings(&["rsa1.pem"]));
    let expired = json!({"sub": "alice", "exp": now_secs() - 3600});
    let token = sign(Algorithm::RS256, None, &private("rsa1"), &expired);
    assert_refused(v.verify(&token), "expired");
    // The same expired claims under a bad signature are a bad signature.
    let token = sign(Algorithm::RS256, None, &private("rsa2"), &expired);
    assert_refused(v.verify(&token), "bad_signature");
}

// ---- JWKS -----------------------------------------------------------------

fn jwks_settings() -> KeySettings {
    KeySettings {
        jwks_file: Some(key_file("jwks.json")),
        ..KeySettings::default()
    }
}

#[test]
fn jwks_keys_are_chosen_by_kid() {
    let v = verifier(jwks_settings());
    let token = sign(
        Algorithm::RS256,
        Some("jwks-rsa"),
        &private("rsa2"),
        &claims("alice"),
    );
    assert_eq!(v.verify(&token).unwrap().user, "alice");
    let token = sign(
        Algorithm::ES256,
        Some("jwks-ec"),
        &private("ec2"),
        &claims("bob"),
    );
    assert_eq!(v.verify(&token).unwrap().user, "bob");
    let token = sign(Algorithm::ES256, None, &private("ec2"), &claims("bob"));
    assert_eq!(v.verify(&token).unwrap().user, "bob");

    // Swapped kids, unknown kids, and the keys the file holds but we skip.
    let token = sign(
        Algorithm::RS256,
        Some("jwks-ec"),
        &private("rsa2"),
        &claims("alice"),
    );
    assert_refused(v.verify(&token), "unknown_key");
    let token = sign(
        Algorithm::RS256,
        Some("jwks-rsa"),
        &private("rsa1"),
        &claims("alice"),
    );
    assert_refused(v.verify(&token), "bad_signature");
    let token = sign(
        Algorithm::RS256,
        Some("jwks-enc"),
        &private("rsa2"),
        &claims("alice"),
    );
    assert_refused(v.verify(&token), "unknown_key");
    let oct = EncodingKey::from_secret(b"secret");
    let token = sign(Algorithm::HS256, Some("jwks-oct"), &oct, &claims("alice"));
    assert_refused(v.verify(&token), "algorithm_not_allowed");
}

#[test]
fn pem_and_jwks_and_secret_together() {
    let v = verifier(KeySettings {
        hs256_secret: Some(SECRET.into()),
        ..KeySettings {
            jwks_file: Some(key_file("jwks.json")),
            ..pem_settings(&["rsa1.pem", "ec1.pem"])
        }
    });
    assert!(v.verify(&hs256(&claims("a"))).is_ok());
    for (alg, kid, key) in [
        (Algorithm::RS256, "rsa1", "rsa1"),
        (Algorithm::RS256, "jwks-rsa", "rsa2"),
        (Algorithm::ES256, "ec1", "ec1"),
        (Algorithm::ES256, "jwks-ec", "ec2"),
    ] {
        let token = sign(alg, Some(kid), &private(key), &claims("a"));
        assert!(v.verify(&token).is_ok(), "{kid}");
    }
    assert_eq!(
        v.key_files(),
        vec![
            key_file("rsa1.pem"),
            key_file("ec1.pem"),
            key_file("jwks.json")
        ]
    );
}

// ---- claims -----------------------------------------------------------------

#[test]
fn sub_must_be_a_valid_id() {
    let v = verifier(hs256_settings());
    for sub in [
        json!("a/b"),
        json!("+"),
        json!(""),
        json!("a".repeat(65)),
        json!(42),
    ] {
        let token = hs256(&json!({"sub": sub, "exp": now_secs() + 60}));
        assert_refused(v.verify(&token), "invalid_claims");
    }
    let token = hs256(&json!({"exp": now_secs() + 60}));
    assert_refused(v.verify(&token), "invalid_claims");
}

#[test]
fn exp_is_required() {
    let v = verifier(hs256_settings());
    assert_refused(v.verify(&hs256(&json!({"sub": "alice"}))), "invalid_claims");
    let token = hs256(&json!({"sub": "alice", "exp": "tomorrow"}));
    assert_refused(v.verify(&token), "invalid_claims");
}

#[test]
fn groups_must_be_valid_ids() {
    let v = verifier(hs256_settings());
    for groups in [
        json!(["ok", "bad/group"]),
        json!(["#"]),
        json!([1]),
        json!("team"),
        json!({}),
    ] {
        let token = hs256(&with(claims("alice"), "groups", groups.clone()));
        assert_refused(v.verify(&token), "invalid_claims");
    }
    let token = hs256(&with(claims("alice"), "groups", json!([])));
    assert!(v.verify(&token).unwrap().groups.is_empty());
}

#[test]
fn unknown_roles_are_refused() {
    let v = verifier(hs256_settings());
    for role in [
        json!("root"),
        json!("Service"),
        json!(""),
        json!(1),
        json!(["admin"]),
    ] {
        let token = hs256(&with(claims("alice"), "role", role.clone()));
        assert_refused(v.verify(&token), "invalid_claims");
    }
}

// ---- key loading ------------------------------------------------------------

#[track_caller]
fn key_error(settings: KeySettings) -> String {
    match Verifier::new(settings) {
        Ok(_) => panic!("keys accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn some_key_is_required() {
    assert!(matches!(
        Verifier::new(KeySettings::default()),
        Err(KeyError::NoKeys)
    ));
    let settings = KeySettings {
        hs256_secret: Some(String::new()),
        ..KeySettings::default()
    };
    assert!(matches!(
        Verifier::new(settings),
        Err(KeyError::EmptySecret)
    ));
}

#[test]
fn bad_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();

    let cases: Vec<(PathBuf, &str)> = vec![
        (dir.path().join("missing.pem"), "cannot read"),
        (garbage.clone(), "not a PEM public key"),
        (broken.clone(), "not an RSA or EC P-256 public key"),
        (key_file("rsa1.key"), "private key"),
        (key_file("ec1.key"), "private key"),
        (key_file("p384.pem"), "P-256"),
        (key_file("rsa-small.pem"), "too short"),
    ];
    for (path, problem) in cases {
        let message = key_error(KeySettings {
            public_keys: vec![key_file("rsa1.pem"), path.clone()],
            ..hs256_settings()
        });
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(problem), "{message}");
    }
}

#[test]
fn bad_jwks_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let cases = [
        (write("a.json", "{"), "not a JWKS document"),
        (
            write("b.json", r#"{"keys": []}"#),
            "no RS256 or ES256 signing key",
        ),
        (
            write("c.json", r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#),
            "no RS256 or ES256 signing key",
        ),
        (
            write(
                "d.json",
                r#"{"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]}"#,
            ),
            "key 0 (kid `k`): RSA key of 17 bits is too short",
        ),
        (
            write(
                "e.json",
                r#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}"#,
            ),
            "key 0",
        ),
        (
            write(
                "f.json",
                &json!({"keys": [{
                    "kty": "EC", "crv": "P-256", "kid": "off-curve",
                    "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE",
                    "y": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE",
                }]})
                .to_string(),
            ),
            "key 0 (kid `off-curve`): EC key is not a valid P-256 point",
        ),
        (dir.path().join("missing.json"), "cannot read"),
    ];
    for (path, problem) in cases {
        let message = key_error(KeySettings {
            jwks_file: Some(path.clone()),
            ..hs256_settings()
        });
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(problem), "{message}");
    }
}

#[test]
fn jwks_keys_pinned_to_other_algorithms_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let jwks: Value =
        serde_json::from_slice(&std::fs::read(key_file("jwks.json")).unwrap()).unwrap();
    let mut rsa = jwks["keys"][0].clone();
    rsa["alg"] = json!("PS256");
    let ec = jwks["keys"][1].clone();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, json!({"keys": [rsa, ec]}).to_string()).unwrap();
    let v = verifier(KeySettings {
        jwks_file: Some(path),
        ..KeySettings::default()
    });
    let token = sign(
        Algorithm::RS256,
        Some("jwks-rsa"),
        &private("rsa2"),
        &claims("a"),
    );
    assert_refused(v.verify(&token), "algorithm_not_allowed");
    let token = sign(
        Algorithm::ES256,
        Some("jwks-ec"),
        &private("ec2"),
        &claims("a"),
    );
    assert!(v.verify(&token).is_ok());
}

#[test]
fn reload_picks_up_rewritten_files_and_keeps_keys_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("current.pem");
    std::fs::copy(key_file("rsa1.pem"), &path).unwrap();
    let v = verifier(KeySettings {
        public_keys: vec![path.clone()],
        ..KeySettings::default()
    });
    assert_eq!(v.key_files(), vec![path.clone()]);
    let old = sign(
        Algorithm::RS256,
        Some("current"),
        &private("rsa1"),
        &claims("alice"),
    );
    let new = sign(
        Algorithm::RS256,
        Some("current"),
        &private("rsa2"),
        &claims("alice"),
    );
    assert!(v.verify(&old).is_ok());
    assert_refused(v.verify(&new), "bad_signature");

    // Key rotation: the file now holds rsa2.
    std::fs::copy(key_file("rsa2.pem"), &path).unwrap();
    v.reload().unwrap();
    assert_refused(v.verify(&old), "bad_signature");
    assert!(v.verify(&new).is_ok());

    // A broken file keeps the keys we had, and the error names the file.
    std::fs::write(&path, "-----BEGIN PUBLIC KEY-----\ntruncated").unwrap();
    let message = v.reload().unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(v.verify(&new).is_ok());

    // So does a vanished one.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(v.reload(), Err(KeyError::Read { .. })));
    assert!(v.verify(&new).is_ok());

    // A key of another type is picked up too.
    std::fs::copy(key_file("ec1.pem"), &path).unwrap();
    v.reload().unwrap();
    let ec = sign(
        Algorithm::ES256,
        Some("current"),
        &private("ec1"),
        &claims("alice"),
    );
    assert!(v.verify(&ec).is_ok());
    assert_refused(v.verify(&new), "algorithm_not_allowed");
}

#[test]
fn reload_keeps_the_secret() {
    let v = verifier(hs256_settings());
    v.reload().unwrap();
    assert!(v.verify(&hs256(&claims("alice"))).is_ok());
}

#[test]
fn verifier_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Verifier>();
}

// ---- minting and the rest of the API -----------------------------------------

#[test]
fn minted_tokens_verify() {
    let v = verifier(hs256_settings());
    let claims = Claims::new(
        "alice",
        vec!["team".into()],
        Role::Service,
        Duration::from_secs(600),
    );
    assert_eq!(claims.exp, claims.iat.unwrap() + 600);
    let token = mint_hs256(SECRET, &claims).unwrap();
    let id = v.verify(&token).unwrap();
    assert_eq!(id.user, "alice");
    assert_eq!(id.groups, ["team"]);
    assert_eq!(id.role, Role::Service);
    assert_eq!(id.expires_at, claims.exp);
}

#[test]
fn minting_refuses_what_verification_would() {
    let ttl = Duration::from_secs(60);
    let bad_sub = Claims::new("a/b", vec![], Role::User, ttl);
    assert!(matches!(
        mint_hs256(SECRET, &bad_sub),
        Err(TokenError::InvalidClaims(_))
    ));
    let bad_group = Claims::new("alice", vec!["a b".into()], Role::User, ttl);
    assert!(matches!(
        mint_hs256(SECRET, &bad_group),
        Err(TokenError::InvalidClaims(_))
    ));
    let fine = Claims::new("alice", vec![], Role::User, ttl);
    assert!(matches!(
        mint_hs256("", &fine),
        Err(TokenError::InvalidClaims(_))
    ));
}

#[test]
fn claims_serialize_compactly() {
    let mut claims = Claims::new("alice", vec![], Role::User, Duration::from_secs(60));
    claims.iat = None;
    let value = serde_json::to_value(&claims).unwrap();
    assert_eq!(
        value,
        json!({"sub": "alice", "exp": claims.exp, "role": "user"})
    );
    // And read back with defaults.
    let parsed: Claims = serde_json::from_value(json!({"sub": "bob", "exp": 5})).unwrap();
    assert_eq!(parsed.role, Role::User);
    assert!(parsed.groups.is_empty());
}

#[test]
fn random_secrets_are_fresh_hex() {
    let a = random_secret();
    let b = random_secret();
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);
}

#[test]
fn roles_parse_and_print_lowercase() {
    for role in Role::ALL {
        assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
        assert_eq!(serde_json::to_value(role).unwrap(), json!(role.to_string()));
    }
    assert_eq!(Role::default(), Role::User);
    let err = "root".parse::<Role>().unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
    assert!("User".parse::<Role>().is_err());
}

#[test]
fn reasons_are_stable_labels() {
    let all = [
        (TokenError::Malformed, "malformed"),
        (TokenError::AlgorithmNotAllowed, "algorithm_not_allowed"),
        (TokenError::UnknownKey, "unknown_key"),
        (TokenError::BadSignature, "bad_signature"),
        (TokenError::Expired, "expired"),
        (TokenError::NotYetValid, "not_yet_valid"),
        (TokenError::WrongIssuer, "wrong_issuer"),
        (TokenError::WrongAudience, "wrong_audience"),
        (TokenError::InvalidClaims("x".into()), "invalid_claims"),
    ];
    for (error, reason) in all {
        assert_eq!(error.reason(), reason);
    }
}

#[test]
fn settings_debug_masks_the_secret() {
    let debug = format!("{:?}", hs256_settings());
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("***"), "{debug}");
}
