//! `send`: one message, QoS 1, wait for the PUBACK (and optionally the server's `ack`).

use crate::args::ConnArgs;
use crate::display::sanitize;
use crate::identity::Identity;
use crate::session::{Event, Session};
use anyhow::{bail, Context, Result};
use roost_proto::id::is_valid_id;
use roost_proto::topic;
use serde_json::Value;
use tokio::io::AsyncReadExt;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    User(String),
    Group(String),
}

impl Recipient {
    /// From `--to` / `--group` (exactly one of them).
    pub fn from_flags(to: Option<String>, group: Option<String>) -> Result<Recipient> {
        let r = match (to, group) {
            (Some(u), None) => Recipient::User(u),
            (None, Some(g)) => Recipient::Group(g),
            _ => bail!("give exactly one of --to USER or --group G"),
        };
        let (Recipient::User(id) | Recipient::Group(id)) = &r;
        if !is_valid_id(id) {
            bail!("invalid id {id:?}: ids match [A-Za-z0-9_.-]{{1,64}}");
        }
        Ok(r)
    }

    /// The topic `me` publishes to for this recipient.
    pub fn topic(&self, me: &str) -> String {
        match self {
            Recipient::User(u) => topic::dm(u, me),
            Recipient::Group(g) => topic::group(g, me),
        }
    }
}

pub async fn run(
    conn: &ConnArgs,
    to: Option<String>,
    group: Option<String>,
    wait_ack: bool,
    text: Vec<String>,
) -> Result<()> {
    let recipient = Recipient::from_flags(to, group)?;
    let me = Identity::from_args(conn)?;
    let body = if text == ["-"] {
        let mut s = String::new();
        tokio::io::stdin()
            .read_to_string(&mut s)
            .await
            .context("reading stdin")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        text.join(" ")
    };
    let msg = crate::payload::new_text(body);
    let subs = if wait_ack {
        vec![topic::sys(&me.user)]
    } else {
        vec![]
    };
    let mut session = Session::connect(&crate::connect_options(conn, &me, subs)?).await?;
    session
        .client
        .publish(&recipient.topic(&me.user), msg.to_bytes())
        .await?;
    let mut acked = false;
    let confirmed = confirm(&mut session, &msg.id, wait_ack, &mut acked);
    match tokio::time::timeout(conn.timeout, confirmed).await {
        Ok(Ok(())) => println!("{}", msg.id),
        Ok(Err(e)) => {
            session.close().await;
            return Err(e);
        }
        Err(_) => {
            let what = if acked {
                "the server's ack"
            } else {
                "the PUBACK"
            };
            bail!(
                "timed out after {:?} waiting for {what} of message {}",
                conn.timeout,
                msg.id
            )
        }
    }
    session.close().await;
    Ok(())
}

/// Waits for our PUBACK (then sets `acked`), then (with `wait_ack`) for the `ack` or
/// `error` notice.
async fn confirm(session: &mut Session, id: &str, wait_ack: bool, acked: &mut bool) -> Result<()> {
    let mut pkid = None;
    loop {
        match session.next().await? {
            Event::Published { pkid: p } if pkid.is_none() => pkid = Some(p),
            Event::PubAck { pkid: p, refused } if Some(p) == pkid => {
                if let Some(why) = refused {
                    bail!("message {id} refused by the broker: {why}");
                }
                *acked = true;
                if !wait_ack {
                    return Ok(());
                }
            }
            Event::Message { payload, .. } => {
                let Ok(Value::Object(n)) = serde_json::from_slice::<Value>(&payload) else {
                    continue;
                };
                let str_of = |k: &str| n.get(k).and_then(Value::as_str);
                let about_us = str_of("id").is_none_or(|i| i == id);
                match str_of("type") {
                    Some("ack") if str_of("id") == Some(id) => return Ok(()),
                    Some("error") if about_us => bail!(
                        "the server refused message {id}: {}: {}",
                        sanitize(str_of("code").unwrap_or("?").as_bytes()),
                        sanitize(str_of("message").unwrap_or("").as_bytes())
                    ),
                    _ => {}
                }
            }
            Event::Disconnected(e) => {
                bail!("connection lost before message {id} was confirmed: {e}")
            }
            _ => {}
        }
    }
}
