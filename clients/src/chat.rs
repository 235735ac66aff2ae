//! `chat`: stdin lines become messages to the current recipient; what arrives is printed,
//! and what was missed while away is caught up with `sync` ([`crate::catchup`]) on start,
//! on every reconnect, and once more when leaving (so the kept cursor passes what was
//! shown live).

use crate::args::ConnArgs;
use crate::catchup::{CatchUp, Seen};
use crate::display::describe;
use crate::identity::Identity;
use crate::payload::new_text;
use crate::send::Recipient;
use crate::session::{Event, Session};
use crate::state::StateFile;
use anyhow::{bail, Context, Result};
use roost_proto::chat::ChatMessage;
use roost_proto::id::is_valid_id;
use roost_proto::topic::{chat_filters, Topic};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const HELP: &str = "\
  TEXT        send TEXT to the current recipient (//TEXT sends /TEXT)
  /to USER    talk to USER
  /group G    talk in group G
  /help       this help
  /quit       leave (after pending messages are acknowledged)";

struct Chat {
    me: Identity,
    target: Option<Recipient>,
    /// `(from, id)` of what was shown or sent: an echo, a redelivery or a message that
    /// comes both live and in a sync page is shown once.
    seen: Seen,
    /// `None` against a broker without roost's history (`--plain`).
    catchup: Option<CatchUp>,
    /// Published, waiting for the event loop to give them a packet id.
    queued: VecDeque<String>,
    /// Packet id -> message id, waiting for the PUBACK.
    inflight: HashMap<u16, String>,
}

impl Chat {
    fn busy(&self) -> bool {
        !self.queued.is_empty()
            || !self.inflight.is_empty()
            || self.catchup.as_ref().is_some_and(CatchUp::busy)
    }

    /// Asks for what was missed (the next page of it).
    async fn catch_up(&mut self, session: &Session) -> Result<()> {
        if let Some(catchup) = self.catchup.as_mut() {
            catchup.request(session, &self.me.user).await?;
        }
        Ok(())
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
        self.seen.insert(&self.me.user, &msg.id);
        self.queued.push_back(msg.id);
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

    async fn event(&mut self, session: &Session, ev: Event) -> Result<()> {
        match ev {
            Event::Message { topic, payload, .. } => {
                let parsed = Topic::parse(&topic);
                // Answers come on this device's own `im/sys/{me}/{device}` (protocol.md §5).
                let sys = matches!(parsed, Topic::Sys { .. })
                    || topic.starts_with(&format!("{}/", roost_proto::topic::sys(&self.me.user)));
                if let (true, Some(catchup)) = (sys, self.catchup.as_mut()) {
                    if let Some(page) = catchup.answer(&payload, &self.me.user, &mut self.seen) {
                        for line in page.lines {
                            println!("{line}");
                        }
                        if page.more {
                            self.catch_up(session).await?;
                        }
                        return Ok(());
                    }
                }
                let shown_before = match parsed {
                    Topic::Dm { from, .. } | Topic::Group { from, .. } => {
                        ChatMessage::parse(&payload).is_ok_and(|m| !self.seen.insert(from, &m.id))
                    }
                    _ => false,
                };
                if !shown_before {
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
            Event::Connected => {
                eprintln!("reconnected; catching up");
                self.catch_up(session).await?;
            }
            Event::Subscribed { refused } => {
                for f in refused {
                    eprintln!("warning: subscription to {f} refused by the broker");
                }
            }
        }
        Ok(())
    }
}

pub async fn run(conn: &ConnArgs, to: Option<String>, group: Option<String>) -> Result<()> {
    let me = Identity::from_args(conn)?;
    let target = match (to, group) {
        (None, None) => None,
        (to, group) => Some(Recipient::from_flags(to, group)?),
    };
    let filters = chat_filters(&me.user, &me.groups);
    // The same client id on every start (docs/writing-a-client.md, step 1).
    let mut state = StateFile::open(conn.state_dir.as_deref(), &me.user)?;
    let device = match &conn.device {
        Some(device) => device.clone(),
        None => state.device()?,
    };
    let mut options = crate::connect_options(conn, &me, filters)?;
    options.client_id = me.client_id(Some(&device))?;
    // Answers to this device's catch-up requests come to its own topic (protocol.md §5).
    let answers = roost_proto::topic::answer_topic(&me.user, &options.client_id);
    if !options.subscriptions.contains(&answers) {
        options.subscriptions.push(answers);
    }
    let mut session = Session::connect(&options).await?;
    let talking = match &target {
        Some(Recipient::User(u)) => format!("talking to {u}"),
        Some(Recipient::Group(g)) => format!("talking in group {g}"),
        None => "no recipient yet".to_string(),
    };
    eprintln!(
        "connected as {}; {talking}; /help for commands",
        session.client_id
    );
    let catchup = (!conn.plain).then(|| CatchUp::new(state, device));
    match &catchup {
        Some(c) if c.has_cursor() => eprintln!("catching up on what you missed"),
        Some(_) => eprintln!(
            "first start on this device: what you miss from now on is shown when you come back"
        ),
        None => {}
    }
    let mut chat = Chat {
        me,
        target,
        seen: Seen::default(),
        catchup,
        queued: VecDeque::new(),
        inflight: HashMap::new(),
    };
    chat.catch_up(&session).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line.context("reading stdin")? {
                Some(line) => if !chat.line(&session, &line).await? { break },
                None => break,
            },
            ev = session.next() => chat.event(&session, ev?).await?,
        }
    }
    // Leaving: let the pending messages get their PUBACK first, and a last sync move the
    // kept cursor past what was shown live; then linger a moment for the notices (`ack`,
    // `error`) that follow.
    let drain = async {
        if !chat.catchup.as_ref().is_some_and(CatchUp::busy) {
            chat.catch_up(&session).await?;
        }
        while chat.busy() {
            let ev = session.next().await?;
            chat.event(&session, ev).await?;
        }
        let linger = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(linger);
        loop {
            tokio::select! {
                _ = &mut linger => return anyhow::Ok(()),
                ev = session.next() => chat.event(&session, ev?).await?,
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
