//! Errors, split into "the request is wrong" and "the database is (for now) not
//! able to serve it".

/// What can go wrong in the history store.
///
/// [`HistoryError::is_bad_request`] errors are the caller's fault and retrying
/// the same call cannot help (answer with an error). [`HistoryError::is_transient`]
/// errors mean the database is unavailable, busy or raced with another writer:
/// retry the same call later (with backoff); no partial write was committed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A conversation id that is not `dm:{a}:{b}` (a < b) or `grp:{g}` with valid ids.
    #[error("invalid conversation id {0:?}")]
    InvalidConversation(String),
    /// A sync cursor that this store did not produce.
    #[error("invalid sync cursor {0:?}")]
    InvalidCursor(String),
    /// A message of a batch that cannot be stored (bad sender, id or conversation).
    /// The whole batch was refused; check messages with [`crate::NewMessage::validate`]
    /// before batching them.
    #[error("invalid message #{index} in batch: {reason}")]
    InvalidMessage { index: usize, reason: String },
    /// A database URL that is neither `postgres://` nor `sqlite:`.
    #[error("unsupported database url (expected postgres://... or sqlite:...): {0}")]
    UnsupportedUrl(String),
    /// The database said no, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("history schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl HistoryError {
    /// The request itself is invalid; retrying it cannot succeed.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            HistoryError::InvalidConversation(_)
                | HistoryError::InvalidCursor(_)
                | HistoryError::InvalidMessage { .. }
        )
    }

    /// The database is unavailable, overloaded, or another writer raced this one:
    /// retrying the same call later is expected to succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            HistoryError::Database(e) => sqlx_transient(e),
            HistoryError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => sqlx_transient(e),
            _ => false,
        }
    }

    /// The database refused a value of this call as data (PostgreSQL SQLSTATE class 22,
    /// a data exception such as 22021 "invalid byte sequence" for a NUL in text, or a
    /// class 23 constraint other than the unique ones; SQLite TOOBIG, CONSTRAINT,
    /// MISMATCH). Unlike an outage, retrying the same values cannot succeed: the one
    /// message carrying them must be set apart (see [`crate::Store::store_each`]).
    pub fn is_refused_data(&self) -> bool {
        match self {
            HistoryError::Database(sqlx::Error::Database(db)) => match db_code(db.as_ref()) {
                // Unique violations are races between writers (see `sqlx_transient`).
                _ if db.kind() == sqlx::error::ErrorKind::UniqueViolation => false,
                // SQLite (extended) result code: TOOBIG, CONSTRAINT, MISMATCH.
                Some(Code::Sqlite(n)) => matches!(n & 0xff, 18..=20),
                Some(Code::Sqlstate(code)) => code.starts_with("22") || code.starts_with("23"),
                None => false,
            },
            // A value the driver itself could not encode.
            HistoryError::Database(sqlx::Error::Encode(_)) => true,
            _ => false,
        }
    }
}

/// A database error's code, by database: SQLSTATEs are five characters, often all
/// digits ("22021", "40001"), so they cannot be told from SQLite's numeric result codes
/// by their text.
enum Code<'a> {
    Sqlstate(&'a str),
    Sqlite(i32),
}

fn db_code(db: &dyn sqlx::error::DatabaseError) -> Option<Code<'_>> {
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return Some(Code::Sqlstate(pg.code()));
    }
    db.code()?.parse().ok().map(Code::Sqlite)
}

fn sqlx_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            // A unique violation can only come from two writers storing the same
            // (from, id) at once: a retry finds the first one's row and reports a
            // duplicate.
            if db.kind() == sqlx::error::ErrorKind::UniqueViolation {
                return true;
            }
            match db_code(db.as_ref()) {
                // SQLite (extended) result code: BUSY, LOCKED, IOERR, FULL.
                Some(Code::Sqlite(n)) => matches!(n & 0xff, 5 | 6 | 10 | 13),
                Some(Code::Sqlstate(code)) => {
                    let class = code.get(..2).unwrap_or("");
                    matches!(class, "08" | "40" | "53" | "58")
                        || matches!(
                            code,
                            "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "25P03"
                        )
                }
                None => false,
            }
        }
        _ => false,
    }
}
