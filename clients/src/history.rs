//! `history`: ask the node's history service, over MQTT, for a conversation's messages (or,
//! with no conversation, the list of conversations with unread counts).

use crate::args::ConnArgs;
use crate::display::sanitize;
use crate::identity::Identity;
use crate::payload::new_message_id;
use crate::session::{Event, Session};
use anyhow::{bail, Context, Result};
use roost_proto::topic;
use serde_json::{json, Value};

/// Which conversation: `--with USER`, `--group G` or a raw `--conv dm:a:b`.
pub struct Which {
    pub with: Option<String>,
    pub group: Option<String>,
    pub conv: Option<String>,
}

impl Which {
    fn conv(&self, me: &str) -> Result<Option<String>> {
        Ok(match (&self.with, &self.group, &self.conv) {
            (None, None, None) => None,
            (Some(user), None, None) => {
                let (a, b) = if me < user.as_str() {
                    (me, user.as_str())
                } else {
                    (user.as_str(), me)
                };
                Some(format!("dm:{a}:{b}"))
            }
            (None, Some(g), None) => Some(format!("grp:{g}")),
            (None, None, Some(c)) => Some(c.clone()),
            _ => bail!("give at most one of --with, --group, --conv"),
        })
    }
}

pub async fn run(
    conn: &ConnArgs,
    which: Which,
    before: Option<i64>,
    after: Option<i64>,
    limit: u32,
    json_out: bool,
) -> Result<()> {
    let me = Identity::from_args(conn)?;
    let conv = which.conv(&me.user)?;
    let (method, params) = match &conv {
        Some(conv) => (
            "history",
            json!({"conv": conv, "before_seq": before, "after_seq": after, "limit": limit}),
        ),
        None => ("conversations", json!({})),
    };
    let req = new_message_id();
    let request = json!({"req": req, "method": method, "params": params});

    // The answer comes to this device's own topic, not to the user's other devices.
    let mut options = crate::connect_options(conn, &me, Vec::new())?;
    options.subscriptions = vec![topic::answer_topic(&me.user, &options.client_id)];
    let mut session = Session::connect(&options).await?;
    session
        .client
        .publish(&topic::req(&me.user), request.to_string().into_bytes())
        .await?;
    let answer = tokio::time::timeout(conn.timeout, result_for(&mut session, &req))
        .await
        .with_context(|| {
            format!(
                "no answer from the history service within {:?}",
                conn.timeout
            )
        });
    session.close().await;
    let result = answer??;

    if json_out {
        println!("{result}");
    } else if conv.is_some() {
        print_messages(&result);
    } else {
        print_conversations(&result);
    }
    Ok(())
}

/// Waits for the `result` notice answering `req`.
async fn result_for(session: &mut Session, req: &str) -> Result<Value> {
    loop {
        match session.next().await? {
            Event::Message { payload, .. } => {
                let Ok(notice) = serde_json::from_slice::<Value>(&payload) else {
                    continue;
                };
                if notice["type"] != "result" || notice["req"] != req {
                    continue;
                }
                if let Some(error) = notice.get("error") {
                    bail!(
                        "history refused: {}: {}",
                        sanitize(error["code"].as_str().unwrap_or("?").as_bytes()),
                        sanitize(error["message"].as_str().unwrap_or("").as_bytes())
                    );
                }
                return Ok(notice["result"].clone());
            }
            Event::Disconnected(e) => bail!("connection lost: {e}"),
            _ => {}
        }
    }
}

fn print_messages(result: &Value) {
    let empty = Vec::new();
    let messages = result["messages"].as_array().unwrap_or(&empty);
    if messages.is_empty() {
        println!("(no messages)");
    }
    for m in messages {
        let body = match &m["payload"]["body"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!(
            "#{} {}: {}",
            m["seq"],
            sanitize(m["from"].as_str().unwrap_or("?").as_bytes()),
            sanitize(body.as_bytes())
        );
    }
    if result["more"] == true {
        println!(
            "(more: use --before {})",
            messages.first().map_or(json!(0), |m| m["seq"].clone())
        );
    }
}

fn print_conversations(result: &Value) {
    let empty = Vec::new();
    let list = result.as_array().unwrap_or(&empty);
    if list.is_empty() {
        println!("(no conversations)");
    }
    for c in list {
        println!(
            "{}  last #{}  unread {}",
            sanitize(c["conv"].as_str().unwrap_or("?").as_bytes()),
            c["last_seq"],
            c["unread"]
        );
    }
}
