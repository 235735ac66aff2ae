//! `listen`: print what arrives, readable or as JSON lines.

use crate::args::ConnArgs;
use crate::display::{describe, json_line};
use crate::identity::Identity;
use crate::session::{Event, Session};
use anyhow::Result;
use roost_proto::topic::chat_filters;

/// Subscribes to `topics` (default: the chat filters of the user) and prints messages
/// until `count` have arrived. Status goes to stderr, messages to stdout.
pub async fn run(
    conn: &ConnArgs,
    count: Option<u64>,
    json: bool,
    topics: Vec<String>,
) -> Result<()> {
    let me = Identity::from_args(conn)?;
    let filters = if topics.is_empty() {
        chat_filters(&me.user, &me.groups)
    } else {
        topics
    };
    let mut session =
        Session::connect(&crate::connect_options(conn, &me, filters.clone())?).await?;
    eprintln!(
        "listening as {} on {}",
        session.client_id,
        filters.join(" ")
    );
    let mut received = 0u64;
    while count.is_none_or(|n| received < n) {
        match session.next().await? {
            Event::Message { topic, payload, .. } => {
                if json {
                    println!("{}", json_line(&topic, &payload));
                } else {
                    println!("{}", describe(&me.user, &topic, &payload));
                }
                received += 1;
            }
            Event::Disconnected(e) => eprintln!("connection lost ({e}); reconnecting"),
            Event::Connected => eprintln!("reconnected"),
            Event::Subscribed { refused } => {
                for f in refused {
                    eprintln!("warning: subscription to {f} refused by the broker");
                }
            }
            _ => {}
        }
    }
    session.close().await;
    Ok(())
}
