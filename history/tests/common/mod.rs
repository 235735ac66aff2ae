//! Real databases for the history tests: a SQLite file in a temporary folder, or
//! a PostgreSQL database of its own per test (created on the shared server,
//! dropped when the test ends, even when it fails).
//!
//! PostgreSQL is required: `ROOST_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) must be reachable, and a test that
//! cannot reach it fails; it is never skipped. Where it is and the backend macro are
//! shared with the end-to-end tests (tests/common/backend.rs).

#![allow(dead_code)]

#[path = "../../../tests/common/backend.rs"]
mod backend;
pub(crate) use backend::on_both_backends;
pub use backend::{pg_admin_url, with_database, Backend};

use roost_history::{Conv, NewMessage, Store};
use sqlx::Connection;

/// A database for one test.
pub struct TestDb {
    pub url: String,
    pg_database: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::sqlite().await,
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", dir.path().join("history.db").display());
        TestDb {
            url,
            pg_database: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = pg_admin_url();
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => panic!(
                "PostgreSQL is not reachable at {admin}: {e}\n\
                 The history tests need a real PostgreSQL server: run them with scripts/test \
                 (it starts one when none is reachable), or point ROOST_TEST_PG_URL at one."
            ),
        };
        let name = format!("roost_hist_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin}: {e}"));
        conn.close().await.ok();
        TestDb {
            url: with_database(&admin, &name),
            pg_database: Some(name),
            _dir: None,
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect history store: {e}"))
    }

    /// Runs raw SQL on the test database (to age messages, inspect tables).
    pub async fn execute(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("raw connection");
        sqlx::query(sql).execute(&mut conn).await.expect(sql);
        conn.close().await.ok();
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("raw connection");
        let n: i64 = sqlx::query_scalar(sql)
            .fetch_one(&mut conn)
            .await
            .expect(sql);
        conn.close().await.ok();
        n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_database.take() else {
            return;
        };
        let admin = pg_admin_url();
        // Drop may run inside the test's runtime: use a thread with its own.
        let result = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(result, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database: {result:?}");
        }
    }
}

/// Ends every connection to the test database `name` (as a server restart would).
pub async fn terminate_connections(name: &str) {
    let mut conn = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("admin connection");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(name)
        .execute(&mut conn)
        .await
        .expect("pg_terminate_backend");
    conn.close().await.ok();
}

pub fn conv(s: &str) -> Conv {
    Conv::parse(s).unwrap_or_else(|| panic!("test conversation {s}"))
}

/// A message with a payload as a client would send it.
pub fn msg(conv_id: &str, from: &str, id: &str) -> NewMessage {
    NewMessage {
        conv: conv(conv_id),
        from: from.to_owned(),
        id: id.to_owned(),
        payload: serde_json::json!({"id": id, "kind": "text", "body": format!("{from} says {id}")})
            .to_string(),
    }
}
