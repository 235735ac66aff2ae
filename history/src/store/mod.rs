//! The store: one code path over sqlx's `Any` driver, portable SQL with `$n`
//! placeholders (both PostgreSQL and SQLite accept them).
//!
//! Split by concern: this file connects and owns the pool; [`write`] stores
//! batches (and the seq/gid allocation that sync relies on), [`isolate`] keeps
//! one refused message from stalling its batch, [`read`] serves
//! pages, sync, conversation lists and read cursors, [`reads`] other members' read
//! positions, [`retention`] deletes old messages, [`accounts`] keeps users, groups and
//! memberships (issue 13), and [`sql`] holds the small SQL-building helpers they share.

mod accounts;
mod isolate;
mod people;
mod read;
mod reads;
mod retention;
mod sql;
mod write;

pub use people::{MAX_CONTACTS, MAX_DISABLED};
pub use reads::Reads;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyPool;
use tokio::sync::{Mutex, MutexGuard};

use crate::HistoryError;

pub use accounts::{Account, AccountError, Credentials, Group};

/// How long a SQLite connection waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// Connections in a PostgreSQL history pool unless `history.pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 10;
/// The same for SQLite, which has one writer at a time anyway.
pub const SQLITE_POOL_SIZE: u32 = 4;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The history store. Cheap to clone (a connection pool inside); several
/// `Store`s, in one process or several, may share one PostgreSQL database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer at a time: writers of this process queue here
    /// instead of spinning on SQLITE_BUSY (other processes still wait through
    /// `busy_timeout`). `None` on PostgreSQL.
    sqlite_writer: Option<Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects and applies the schema migrations.
    ///
    /// - `postgres://user@host:port/db` (or `postgresql://`);
    /// - `sqlite://path/history.db` or `sqlite:path` (file and parent folder
    ///   created if missing; WAL journal; writers wait up to 10 s for another
    ///   process's lock);
    /// - `sqlite::memory:` (one connection, gone when the store is dropped).
    pub async fn connect(database_url: &str) -> Result<Store, HistoryError> {
        Store::connect_with_pool(database_url, None).await
    }

    /// [`Store::connect`] with `pool_size` database connections (`history.pool_size`);
    /// `None`: [`DEFAULT_POOL_SIZE`] on PostgreSQL, [`SQLITE_POOL_SIZE`] on SQLite. An
    /// in-memory SQLite database always has one.
    pub async fn connect_with_pool(
        database_url: &str,
        pool_size: Option<u32>,
    ) -> Result<Store, HistoryError> {
        sqlx::any::install_default_drivers();
        let backend = if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            Backend::Postgres
        } else if database_url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            let scheme = database_url.split(':').next().unwrap_or_default();
            return Err(HistoryError::UnsupportedUrl(format!("{scheme}:...")));
        };

        let pool = match backend {
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(pool_size.unwrap_or(DEFAULT_POOL_SIZE))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(database_url)
                    .await?
            }
            Backend::Sqlite => {
                let (url, in_memory) = sqlite_url(database_url)?;
                let options = AnyPoolOptions::new()
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            sqlx::query(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    });
                let options = if in_memory {
                    // Every connection to `:memory:` is its own database: keep exactly one.
                    options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    options.max_connections(pool_size.unwrap_or(SQLITE_POOL_SIZE))
                };
                let pool = options.connect(&url).await?;
                if !in_memory {
                    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                        .fetch_one(&pool)
                        .await?;
                    if !mode.eq_ignore_ascii_case("wal") {
                        let _: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                            .fetch_one(&pool)
                            .await?;
                    }
                }
                pool
            }
        };

        let mut migrator = Migrator::new(EmbeddedMigrations).await?;
        // Other software may keep its own sqlx migrations in the same database.
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        tracing::debug!(?backend, "history store connected, schema up to date");

        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                sqlite_writer: (backend == Backend::Sqlite).then(|| Mutex::new(())),
            }),
        })
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Closes the connection pool (waits for connections in use to come back).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), HistoryError> {
        sqlx::query("SELECT 1").execute(&self.inner.pool).await?;
        Ok(())
    }

    async fn writer(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.inner.sqlite_writer {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }
}

/// Splits a `sqlite:` URL into the URL to connect with (`mode=rwc` added so the
/// file is created) and whether it is in memory; creates the parent folder.
fn sqlite_url(url: &str) -> Result<(String, bool), HistoryError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let params: Vec<&str> = query.map(|q| q.split('&').collect()).unwrap_or_default();
    let in_memory = path.is_empty() || path == ":memory:" || params.contains(&"mode=memory");
    if in_memory {
        return Ok((url.to_owned(), true));
    }
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .map_err(|e| HistoryError::Database(sqlx::Error::Io(e)))?;
        }
    }
    let url = if params.iter().any(|p| p.starts_with("mode=")) {
        url.to_owned()
    } else if query.is_some() {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    };
    Ok((url, false))
}

/// The schema, compiled in (no migrations folder needed at run time). Applied
/// migrations are checksummed: never edit one, add the next.
#[derive(Debug)]
struct EmbeddedMigrations;

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(vec![
                Migration::new(
                    20261125000001,
                    "history".into(),
                    MigrationType::Simple,
                    include_str!("../../migrations/20261125000001_history.sql").into(),
                    false,
                ),
                Migration::new(
                    20261125000002,
                    "sync index".into(),
                    MigrationType::Simple,
                    include_str!("../../migrations/20261125000002_sync_index.sql").into(),
                    false,
                ),
                Migration::new(
                    20261201000001,
                    "accounts".into(),
                    MigrationType::Simple,
                    include_str!("../../migrations/20261201000001_accounts.sql").into(),
                    false,
                ),
            ])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls() {
        let (u, mem) = sqlite_url("sqlite::memory:").unwrap();
        assert!(mem);
        assert_eq!(u, "sqlite::memory:");
        let dir = std::env::temp_dir().join(format!("roost-hist-url-{}", std::process::id()));
        let file = dir.join("sub/history.db");
        let (u, mem) = sqlite_url(&format!("sqlite://{}", file.display())).unwrap();
        assert!(!mem);
        assert!(u.ends_with("?mode=rwc"));
        assert!(file.parent().unwrap().is_dir());
        let (u, _) = sqlite_url(&format!("sqlite://{}?mode=ro", file.display())).unwrap();
        assert!(u.ends_with("?mode=ro"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
