//! `chat`: stdin lines become messages to the current recipient; what arrives is printed.

use crate::args::ConnArgs;
use crate::display::describe;
use crate::identity::Identity;
use crate::payload::new_text;
use crate::send::Recipient;
use crate::session::{Event, Session};
use anyhow::{bail, Context, Result};
use roost_proto::chat::ChatMessage;
use roost_proto::id::is_valid_id;
use roost_proto::topic::{chat_filters, Topic};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const HELP: &str = "\
  TEXT        send TEXT to the current recipient (//TEXT sends /TEXT)
  /to USER    talk to USER
  /group G    talk in group G
  /help       this help
  /quit       leave (after pending messages are acknowledged)";

/// Ids of messages sent by this connection, to drop their echo (v3.1.1 has no No Local).
#[derive(Default)]
struct SentIds {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl SentIds {
    const CAP: usize = 4096;

    fn insert(&mut self, id: String) {
        if self.order.len() == Self::CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.clone());
        self.order.push_back(id);
    }
}

struct Chat {
    me: Identity,
    target: Option<Recipient>,
    sent: SentIds,
    /// Published, waiting for the event loop to give them a packet id.
    queued: VecDeque<String>,
    /// Packet id -> message id, waiting for the PUBACK.
    inflight: HashMap<u16, String>,
}

impl Chat {
    fn busy(&self) -> bool {
        !self.queued.is_empty() || !self.inflight.is_empty()
    }

    /// Handles one input line; `false` means quit.
    async fn line(&mut self, session: &Session, line: &str) -> Result<bool> {
        let line = line.trim_end_matches('\r');
        let text = match line.strip_prefix('/') {
            Some(rest) if rest.starts_with('/') => rest,
            Some(cmd) => return Ok(self.command(cmd)),
            None if line.trim().is_empty() => return Ok(true),
            None => line,
        };
        let Some(target) = &self.target else {
            eprintln!("no recipient yet: /to USER or /group G");
            return Ok(true);
        };
        let msg = new_text(text);
        session
            .client
            .publish(&target.topic(&self.me.user), msg.to_bytes())
            .await?;
        self.queued.push_back(msg.id.clone());
        self.sent.insert(msg.id);
        Ok(true)
    }

    fn command(&mut self, cmd: &str) -> bool {
        let mut words = cmd.split_whitespace();
        match (words.next().unwrap_or(""), words.next()) {
            ("quit" | "exit" | "q", _) => return false,
            ("to", Some(user)) if is_valid_id(user) => {
                eprintln!("talking to {user}");
                self.target = Some(Recipient::User(user.to_string()));
            }
            ("group", Some(g)) if is_valid_id(g) => {
                if !self.me.groups.iter().any(|mine| mine == g) {
                    eprintln!("note: {g} is not one of your groups; you will not see its messages");
                }
                eprintln!("talking in group {g}");
                self.target = Some(Recipient::Group(g.to_string()));
            }
            ("to" | "group", _) => {
                eprintln!("usage: /to USER or /group G (ids: [A-Za-z0-9_.-]{{1,64}})")
            }
            ("help", _) => eprintln!("{HELP}"),
            (other, _) => eprintln!("unknown command /{other}; /help lists them"),
        }
        true
    }

    fn event(&mut self, ev: Event) {
        match ev {
            Event::Message { topic, payload, .. } => {
                let mine = match Topic::parse(&topic) {
                    Topic::Dm { from, .. } | Topic::Group { from, .. } => from == self.me.user,
                    _ => false,
                };
                let echo = mine
                    && ChatMessage::parse(&payload).is_ok_and(|m| self.sent.set.contains(&m.id));
                if !echo {
                    println!("{}", describe(&self.me.user, &topic, &payload));
                }
            }
            Event::Published { pkid } => {
                if let Some(id) = self.queued.pop_front() {
                    self.inflight.insert(pkid, id);
                }
            }
            Event::PubAck { pkid, refused } => {
                if let (Some(id), Some(why)) = (self.inflight.remove(&pkid), refused) {
                    println!("[error] message {id} refused: {why}");
                }
            }
            Event::Disconnected(e) => {
                eprintln!("connection lost ({e}); reconnecting");
                for (_, id) in self.inflight.drain() {
                    println!("[error] message {id} may not have been delivered");
                }
            }
            Event::Connected => eprintln!("reconnected"),
            Event::Subscribed { refused } => {
                for f in refused {
                    eprintln!("warning: subscription to {f} refused by the broker");
                }
            }
        }
    }
}

pub async fn run(conn: &ConnArgs, to: Option<String>, group: Option<String>) -> Result<()> {
    let me = Identity::from_args(conn)?;
    let target = match (to, group) {
        (None, None) => None,
        (to, group) => Some(Recipient::from_flags(to, group)?),
    };
    let filters = chat_filters(&me.user, &me.groups);
    let mut session = Session::connect(&crate::connect_options(conn, &me, filters)?).await?;
    let talking = match &target {
        Some(Recipient::User(u)) => format!("talking to {u}"),
        Some(Recipient::Group(g)) => format!("talking in group {g}"),
        None => "no recipient yet".to_string(),
    };
    eprintln!(
        "connected as {}; {talking}; /help for commands",
        session.client_id
    );
    let mut chat = Chat {
        me,
        target,
        sent: SentIds::default(),
        queued: VecDeque::new(),
        inflight: HashMap::new(),
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line.context("reading stdin")? {
                Some(line) => if !chat.line(&session, &line).await? { break },
                None => break,
            },
            ev = session.next() => chat.event(ev?),
        }
    }
    // Leaving: let the pending messages get their PUBACK first, then linger a moment for
    // the notices (`ack`, `error`) that follow them.
    let drain = async {
        while chat.busy() {
            chat.event(session.next().await?);
        }
        let linger = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(linger);
        loop {
            tokio::select! {
                _ = &mut linger => return anyhow::Ok(()),
                ev = session.next() => chat.event(ev?),
            }
        }
    };
    let drained = tokio::time::timeout(conn.timeout, drain).await;
    let unacked = chat.queued.len() + chat.inflight.len();
    session.close().await;
    match drained {
        Ok(result) => result,
        Err(_) if unacked > 0 => bail!("gave up waiting for the PUBACK of {unacked} message(s)"),
        Err(_) => Ok(()),
    }
}
