//! docs/protocol.md section 2 on a real node: RS256 and ES256 from PEM public keys and from a JWKS
//! file (chosen by `kid`), only configured algorithms accepted, and keys reloaded without a
//! restart, on a key-file change and on SIGHUP.
mod common;

use common::client::{options, Client};
use common::{token, Node};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use roost_auth::{Claims, Role};
use rumqttc::ConnectReturnCode;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn key_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("auth/testdata/keys")
        .join(name)
}

/// A token for `user` signed with the private key in `key` (PEM), with an optional `kid`.
fn signed(user: &str, alg: Algorithm, key: &str, kid: Option<&str>) -> String {
    let pem = std::fs::read(key_file(key)).unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        other => panic!("{other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let claims = Claims::new(user, Vec::new(), Role::User, Duration::from_secs(3600));
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

async fn sign_in(node: &Node, user: &str, token: &str) -> Result<(), ConnectReturnCode> {
    Client::connect(options(node, user, user, token))
        .await
        .map(|_| ())
}

fn node_with_auth(auth: &str) -> Node {
    Node::builder().toml(&format!("[auth]\n{auth}")).start()
}

#[tokio::test]
async fn pem_public_keys_accept_rs256_and_es256_and_nothing_else() {
    let node = node_with_auth(&format!(
        "jwt_public_keys = [\"{}\", \"{}\"]\n",
        key_file("rsa1.pem").display(),
        key_file("ec1.pem").display()
    ));
    let rs = signed("alice", Algorithm::RS256, "rsa1.key", None);
    let es = signed("bob", Algorithm::ES256, "ec1.key", Some("ec1"));
    assert_eq!(sign_in(&node, "alice", &rs).await, Ok(()));
    assert_eq!(sign_in(&node, "bob", &es).await, Ok(()));

    // Signed by a key the node does not have.
    let stranger = signed("carol", Algorithm::RS256, "rsa2.key", None);
    assert_eq!(
        sign_in(&node, "carol", &stranger).await,
        Err(ConnectReturnCode::BadUserNamePassword)
    );
    // HS256 is not configured on this node, so an HS256 token is refused whatever its key.
    assert_eq!(
        sign_in(&node, "dave", &token("dave")).await,
        Err(ConnectReturnCode::BadUserNamePassword)
    );
    node.wait_for_log(&["algorithm_not_allowed"]).await;
}

#[tokio::test]
async fn jwks_keys_are_chosen_by_kid() {
    let node = node_with_auth(&format!(
        "jwks_file = \"{}\"\n",
        key_file("jwks.json").display()
    ));
    let rs = signed("alice", Algorithm::RS256, "rsa2.key", Some("jwks-rsa"));
    let es = signed("bob", Algorithm::ES256, "ec2.key", Some("jwks-ec"));
    assert_eq!(sign_in(&node, "alice", &rs).await, Ok(()));
    assert_eq!(sign_in(&node, "bob", &es).await, Ok(()));

    let unknown = signed("carol", Algorithm::RS256, "rsa2.key", Some("no-such-kid"));
    assert_eq!(
        sign_in(&node, "carol", &unknown).await,
        Err(ConnectReturnCode::BadUserNamePassword)
    );
    // The right kid with a signature from another key.
    let forged = signed("dave", Algorithm::RS256, "rsa1.key", Some("jwks-rsa"));
    assert_eq!(
        sign_in(&node, "dave", &forged).await,
        Err(ConnectReturnCode::BadUserNamePassword)
    );
}

/// A node whose only key is a copy of `rsa1.pem` the test can swap; the key lives in the
/// returned directory.
fn node_with_swappable_key() -> (Node, tempfile::TempDir, PathBuf) {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("issuer.pem");
    std::fs::copy(key_file("rsa1.pem"), &key).unwrap();
    let node = node_with_auth(&format!("jwt_public_keys = [\"{}\"]\n", key.display()));
    (node, keys, key)
}

#[tokio::test]
async fn a_rewritten_key_file_is_used_without_a_restart() {
    let (node, _keys, key) = node_with_swappable_key();
    let old = signed("alice", Algorithm::RS256, "rsa1.key", None);
    let new = signed("alice", Algorithm::RS256, "rsa2.key", None);
    assert_eq!(sign_in(&node, "alice", &old).await, Ok(()));
    assert!(sign_in(&node, "alice", &new).await.is_err());

    std::fs::copy(key_file("rsa2.pem"), &key).unwrap();
    node.wait_for_log(&["why=\"key file changed\""]).await;

    assert_eq!(sign_in(&node, "alice", &new).await, Ok(()));
    assert!(sign_in(&node, "alice", &old).await.is_err());
}

#[tokio::test]
async fn sighup_reloads_the_keys() {
    let (node, _keys, key) = node_with_swappable_key();
    let new = signed("alice", Algorithm::RS256, "rsa2.key", None);

    // Swap the key but keep the file's old modification time, so only SIGHUP can tell.
    let mtime = std::fs::metadata(&key).unwrap().modified().unwrap();
    std::fs::copy(key_file("rsa2.pem"), &key).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&key)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert!(sign_in(&node, "alice", &new).await.is_err());

    let status = std::process::Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    node.wait_for_log(&["why=\"SIGHUP\""]).await;
    assert_eq!(sign_in(&node, "alice", &new).await, Ok(()));
}
