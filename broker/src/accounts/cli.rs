//! `roost user ...` and `roost group ...`: the account store from the command line, on
//! the database the config names (docs/operating.md). Passwords come from a prompt (echo
//! off) or, with `--password-stdin`, from the first line of standard input; never argv.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use roost_history::Store;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

#[derive(Args)]
pub struct ConfigArg {
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user (asks for the password).
    Add {
        user: String,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Tokens from login get the `admin` role (the admin HTTP API).
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password.
    Passwd {
        user: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user and their group memberships.
    Del { user: String },
    /// Refuse the user's sign-ins from now on.
    Disable { user: String },
    /// Let a disabled user sign in again.
    Enable { user: String },
    /// List the users.
    List,
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Add a group.
    Add {
        group: String,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// Delete a group and its memberships.
    Del { group: String },
    /// List the groups and their members.
    List,
    /// Add or remove members.
    #[command(subcommand)]
    Member(MemberCommand),
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Make USER a member of GROUP.
    Add { group: String, user: String },
    /// End USER's membership of GROUP.
    Del { group: String, user: String },
}

impl ConfigArg {
    pub fn path(&self) -> Option<&std::path::Path> {
        self.config.as_deref()
    }
}

async fn open(config: Option<&std::path::Path>) -> anyhow::Result<Store> {
    let config = roost_config::load(config)?;
    let url = crate::history::database_url(&config);
    Store::connect_with_pool(&url, Some(1))
        .await
        .with_context(|| format!("opening the account store {}", roost_config::mask_url(&url)))
}

/// Runs `roost user ...`.
pub fn user(command: UserCommand, config: &ConfigArg) -> anyhow::Result<()> {
    // Read the password before anything else (a prompt, then a slow database).
    let password = match &command {
        UserCommand::Add { password_stdin, .. } | UserCommand::Passwd { password_stdin, .. } => {
            let p = read_password(*password_stdin)?;
            Some(roost_auth::password::hash_password(&p)?)
        }
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = open(config.path()).await?;
        match command {
            UserCommand::Add {
                user,
                display_name,
                admin,
                ..
            } => {
                let hash = password.unwrap_or_default();
                store.add_user(&user, &display_name, &hash, admin).await?;
                println!("added user {user}");
            }
            UserCommand::Passwd { user, .. } => {
                store
                    .set_password(&user, &password.unwrap_or_default())
                    .await?;
                println!("password of {user} changed");
            }
            UserCommand::Del { user } => {
                store.delete_user(&user).await?;
                println!("deleted user {user}");
            }
            UserCommand::Disable { user } => {
                store.set_disabled(&user, true).await?;
                println!("disabled user {user}");
            }
            UserCommand::Enable { user } => {
                store.set_disabled(&user, false).await?;
                println!("enabled user {user}");
            }
            UserCommand::List => {
                for u in store.users().await? {
                    let mut flags = Vec::new();
                    if u.admin {
                        flags.push("admin");
                    }
                    if u.disabled {
                        flags.push("disabled");
                    }
                    println!("{}\t{}\t{}", u.id, u.display_name, flags.join(","));
                }
            }
        }
        store.close().await;
        anyhow::Ok(())
    })
}

/// Runs `roost group ...`.
pub fn group(command: GroupCommand, config: &ConfigArg) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = open(config.path()).await?;
        match command {
            GroupCommand::Add {
                group,
                display_name,
            } => {
                store.add_group(&group, &display_name).await?;
                println!("added group {group}");
            }
            GroupCommand::Del { group } => {
                store.delete_group(&group).await?;
                println!("deleted group {group}");
            }
            GroupCommand::List => {
                for g in store.groups().await? {
                    println!("{}\t{}\t{}", g.id, g.display_name, g.members.join(","));
                }
            }
            GroupCommand::Member(MemberCommand::Add { group, user }) => {
                store.add_member(&group, &user).await?;
                println!("{user} is a member of {group}");
            }
            GroupCommand::Member(MemberCommand::Del { group, user }) => {
                store.remove_member(&group, &user).await?;
                println!("{user} is no longer a member of {group}");
            }
        }
        store.close().await;
        anyhow::Ok(())
    })
}

/// The new password: the first line of stdin, or asked twice at the terminal, echo off.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(!p.is_empty(), "--password-stdin: the first line is empty");
        return Ok(p);
    }
    anyhow::ensure!(
        stdin.is_terminal(),
        "no terminal to ask for the password: use --password-stdin"
    );
    let first = prompt("Password: ")?;
    let second = prompt("Again: ")?;
    anyhow::ensure!(first == second, "the passwords differ");
    anyhow::ensure!(!first.is_empty(), "the password is empty");
    Ok(first)
}

/// One line from the terminal with echo turned off (restored afterwards).
fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    std::io::stderr().flush()?;
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it for a terminal fd (checked above).
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have_tty = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_tty {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: setting attributes read from the same fd, echo bit cleared.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if have_tty {
        // SAFETY: restoring the attributes saved above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
