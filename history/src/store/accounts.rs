//! Accounts (issue 13): users with an argon2id password hash, groups and memberships,
//! kept in the history database so that a cluster's nodes share them (PostgreSQL) and a
//! single node needs nothing extra (SQLite). The store holds hash strings only: hashing
//! and checking passwords is `roost_auth::password`'s job, done by the caller.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::Store;
use crate::HistoryError;
use roost_proto::clock::now_ms;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// A user as listed (no hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: String,
    pub display_name: String,
    pub disabled: bool,
    pub admin: bool,
}

/// What a sign-in needs of a user.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub password_hash: String,
    pub disabled: bool,
    pub admin: bool,
}

/// A group with its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub members: Vec<String>,
}

/// What can go wrong with an account operation. `code()` is a stable label for APIs.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0:?} is not a valid id (1 to 64 characters from A-Z a-z 0-9 _ . -)")]
    InvalidId(String),
    #[error("the display name is longer than {MAX_DISPLAY_NAME_CHARS} characters or has control characters")]
    InvalidDisplayName,
    #[error("no user {0:?}")]
    UserNotFound(String),
    #[error("no group {0:?}")]
    GroupNotFound(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("group {0:?} already exists")]
    GroupExists(String),
    #[error("{user:?} is not a member of {group:?}")]
    NotMember { group: String, user: String },
    #[error(transparent)]
    Store(#[from] HistoryError),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Store(HistoryError::Database(e))
    }
}

impl AccountError {
    /// A stable code: `invalid_id`, `invalid_display_name`, `user_not_found`,
    /// `group_not_found`, `user_exists`, `group_exists`, `not_member`, `unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::InvalidId(_) => "invalid_id",
            AccountError::InvalidDisplayName => "invalid_display_name",
            AccountError::UserNotFound(_) => "user_not_found",
            AccountError::GroupNotFound(_) => "group_not_found",
            AccountError::UserExists(_) => "user_exists",
            AccountError::GroupExists(_) => "group_exists",
            AccountError::NotMember { .. } => "not_member",
            AccountError::Store(_) => "unavailable",
        }
    }
}

fn check_id(id: &str) -> Result<(), AccountError> {
    if roost_proto::id::is_valid_id(id) {
        Ok(())
    } else {
        Err(AccountError::InvalidId(id.chars().take(80).collect()))
    }
}

fn check_display_name(name: &str) -> Result<(), AccountError> {
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS || name.chars().any(char::is_control) {
        Err(AccountError::InvalidDisplayName)
    } else {
        Ok(())
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn account(row: &AnyRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        admin: row.try_get::<i64, _>("admin")? != 0,
    })
}

impl Store {
    /// Adds a user. `display_name` empty: the id.
    pub async fn add_user(
        &self,
        id: &str,
        display_name: &str,
        password_hash: &str,
        admin: bool,
    ) -> Result<(), AccountError> {
        check_id(id)?;
        check_display_name(display_name)?;
        let name = if display_name.is_empty() {
            id
        } else {
            display_name
        };
        let _w = self.writer().await;
        let done = sqlx::query(
            "INSERT INTO accounts_users (id, display_name, password_hash, disabled, admin, created_ms) \
             VALUES ($1, $2, $3, 0, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(password_hash)
        .bind(i64::from(admin))
        .bind(now_ms())
        .execute(&self.inner.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(AccountError::UserExists(id.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a user's password hash.
    pub async fn set_password(&self, id: &str, password_hash: &str) -> Result<(), AccountError> {
        self.update_user(id, "password_hash = $2", password_hash.to_owned())
            .await
    }

    /// Disables (refused at sign-in) or enables a user.
    pub async fn set_disabled(&self, id: &str, disabled: bool) -> Result<(), AccountError> {
        self.update_user(id, "disabled = $2", i64::from(disabled))
            .await
    }

    async fn update_user<T>(&self, id: &str, set: &str, value: T) -> Result<(), AccountError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + 'static,
    {
        check_id(id)?;
        let _w = self.writer().await;
        let done = sqlx::query(&format!("UPDATE accounts_users SET {set} WHERE id = $1"))
            .bind(id)
            .bind(value)
            .execute(&self.inner.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::UserNotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Deletes a user and their memberships.
    pub async fn delete_user(&self, id: &str) -> Result<(), AccountError> {
        check_id(id)?;
        let _w = self.writer().await;
        let mut tx = self.inner.pool.begin().await?;
        sqlx::query("DELETE FROM accounts_members WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM accounts_users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::UserNotFound(id.to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<Account>, AccountError> {
        let rows =
            sqlx::query("SELECT id, display_name, disabled, admin FROM accounts_users ORDER BY id")
                .fetch_all(&self.inner.pool)
                .await?;
        Ok(rows.iter().map(account).collect::<Result<_, _>>()?)
    }

    /// One user, if there is one.
    pub async fn user(&self, id: &str) -> Result<Option<Account>, AccountError> {
        check_id(id)?;
        let row = sqlx::query(
            "SELECT id, display_name, disabled, admin FROM accounts_users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await?;
        Ok(row.as_ref().map(account).transpose()?)
    }

    /// What signing `id` in needs; `None` for no such user (or an invalid id).
    pub async fn credentials(&self, id: &str) -> Result<Option<Credentials>, AccountError> {
        if !roost_proto::id::is_valid_id(id) {
            return Ok(None);
        }
        let row =
            sqlx::query("SELECT password_hash, disabled, admin FROM accounts_users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.inner.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Credentials {
            password_hash: row.try_get("password_hash")?,
            disabled: row.try_get::<i64, _>("disabled")? != 0,
            admin: row.try_get::<i64, _>("admin")? != 0,
        }))
    }

    /// Adds a group. `display_name` empty: the id.
    pub async fn add_group(&self, id: &str, display_name: &str) -> Result<(), AccountError> {
        check_id(id)?;
        check_display_name(display_name)?;
        let name = if display_name.is_empty() {
            id
        } else {
            display_name
        };
        let _w = self.writer().await;
        let done = sqlx::query(
            "INSERT INTO accounts_groups (id, display_name, created_ms) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(name)
        .bind(now_ms())
        .execute(&self.inner.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(AccountError::GroupExists(id.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a group and its memberships.
    pub async fn delete_group(&self, id: &str) -> Result<(), AccountError> {
        check_id(id)?;
        let _w = self.writer().await;
        let mut tx = self.inner.pool.begin().await?;
        sqlx::query("DELETE FROM accounts_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM accounts_groups WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::GroupNotFound(id.to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every group with its members, by id.
    pub async fn groups(&self) -> Result<Vec<Group>, AccountError> {
        let rows = sqlx::query(
            "SELECT g.id, g.display_name, m.user_id FROM accounts_groups g \
             LEFT JOIN accounts_members m ON m.group_id = g.id ORDER BY g.id, m.user_id",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        let mut out: Vec<Group> = Vec::new();
        for row in &rows {
            let id: String = row.try_get("id")?;
            let member: Option<String> = row.try_get("user_id")?;
            if out.last().map(|g| g.id != id).unwrap_or(true) {
                out.push(Group {
                    id,
                    display_name: row.try_get("display_name")?,
                    members: Vec::new(),
                });
            }
            if let (Some(m), Some(g)) = (member, out.last_mut()) {
                g.members.push(m);
            }
        }
        Ok(out)
    }

    /// Makes `user` a member of `group` (already one: nothing changes).
    pub async fn add_member(&self, group: &str, user: &str) -> Result<(), AccountError> {
        check_id(group)?;
        check_id(user)?;
        let _w = self.writer().await;
        let mut tx = self.inner.pool.begin().await?;
        let has_group = sqlx::query("SELECT 1 FROM accounts_groups WHERE id = $1")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        if has_group.is_none() {
            return Err(AccountError::GroupNotFound(group.to_owned()));
        }
        let has_user = sqlx::query("SELECT 1 FROM accounts_users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
        if has_user.is_none() {
            return Err(AccountError::UserNotFound(user.to_owned()));
        }
        let done = sqlx::query("INSERT INTO accounts_members (group_id, user_id) VALUES ($1, $2)")
            .bind(group)
            .bind(user)
            .execute(&mut *tx)
            .await;
        match done {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends `user`'s membership of `group`.
    pub async fn remove_member(&self, group: &str, user: &str) -> Result<(), AccountError> {
        check_id(group)?;
        check_id(user)?;
        let _w = self.writer().await;
        let done = sqlx::query("DELETE FROM accounts_members WHERE group_id = $1 AND user_id = $2")
            .bind(group)
            .bind(user)
            .execute(&self.inner.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(AccountError::NotMember {
                group: group.to_owned(),
                user: user.to_owned(),
            });
        }
        Ok(())
    }

    /// The groups `user` is a member of, by id (for the token's `groups`).
    pub async fn groups_of(&self, user: &str) -> Result<Vec<String>, AccountError> {
        let rows = sqlx::query(
            "SELECT group_id FROM accounts_members WHERE user_id = $1 ORDER BY group_id",
        )
        .bind(user)
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("group_id"))
            .collect::<Result<_, _>>()?)
    }
}
