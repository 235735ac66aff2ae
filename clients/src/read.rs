//! `read`: store my read position in a conversation (the `read` request); the other
//! members get a receipt.

use crate::args::ConnArgs;
use crate::display::sanitize;
use crate::identity::Identity;
use anyhow::Result;
use serde_json::json;

pub async fn run(conn: &ConnArgs, conv: String, seq: i64) -> Result<()> {
    let me = Identity::from_args(conn)?;
    let result = crate::history::ask(conn, &me, "read", json!({"conv": conv, "seq": seq})).await?;
    println!(
        "read up to {} in {}",
        result["read_seq"],
        sanitize(result["conv"].as_str().unwrap_or("?").as_bytes())
    );
    Ok(())
}
