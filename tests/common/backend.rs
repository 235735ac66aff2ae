//! Which history database a test runs on, where its PostgreSQL is, and the one macro that
//! runs a test case on both backends. Shared by the end-to-end tests (tests/common) and
//! roost-history's own tests (history/tests/common includes this file), so both find
//! PostgreSQL the same way: `ROOST_TEST_PG_URL` (scripts/test sets it when it starts a
//! private server), else the machine's server at 127.0.0.1:5432, database `test`.
//!
//! PostgreSQL being unreachable is a failure with a message saying so, never a skip.

/// The admin database every test machine provides unless `ROOST_TEST_PG_URL` says otherwise.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which database the history of a test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: a SQLite file of the test's own.
    Sqlite,
    /// A fresh database of the test's own on the test PostgreSQL server.
    Postgres,
}

/// The test PostgreSQL's admin URL (trust auth, user `postgres`): new databases are made
/// from this connection.
pub fn pg_admin_url() -> String {
    std::env::var("ROOST_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs each named `async fn case(backend: Backend)` on SQLite and on PostgreSQL, as the
/// tests `sqlite::case` and `postgres::case`. Invoke once per test file, where the cases
/// are defined.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(crate::common::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(crate::common::Backend::Postgres).await;
            })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;
