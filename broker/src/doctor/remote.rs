//! What the node talks to on other hosts: the PostgreSQL history database and the cluster
//! links, reachable or not and how far away.
//!
//! Cluster links are the NATS servers of `[cluster] nats`: each must accept a TCP
//! connection, and a `nats://` server must greet with its `INFO` line, which tells a NATS
//! server from anything else listening on the port (a `tls://` URL is only connected to).

use super::{Check, Status};
use roost_config::Config;
use sqlx::Connection as _;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt as _;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Round trips timed to the database; the median is reported.
const PINGS: usize = 5;
/// Slower than this per query, history batches and HTTP reads suffer: the database is not
/// on the same LAN, or its host is overloaded.
const PG_WARN_LATENCY: Duration = Duration::from_millis(10);

/// What was learnt from the database.
pub(crate) struct PgFacts {
    pub version: String,
    pub latency: Duration,
    pub synchronous_commit: String,
    pub shared_buffers: String,
}

pub(crate) async fn postgres(config: &Config) -> Check {
    match config.history.database_url.as_deref() {
        Some(url) if url.starts_with("postgres") => {
            let facts = tokio::time::timeout(CONNECT_TIMEOUT, pg_facts(url))
                .await
                .unwrap_or_else(|_| Err(format!("no answer in {CONNECT_TIMEOUT:?}")));
            judge_postgres(facts)
        }
        _ => Check::new(
            "postgres",
            Status::Info,
            "not configured (history in SQLite)",
        ),
    }
}

async fn pg_facts(url: &str) -> Result<PgFacts, String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let t = Instant::now();
        sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        times.push(t.elapsed());
    }
    times.sort();
    let (version, synchronous_commit, shared_buffers): (String, String, String) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('synchronous_commit'), \
             current_setting('shared_buffers')",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(PgFacts {
        version,
        latency: times[PINGS / 2],
        synchronous_commit,
        shared_buffers,
    })
}

pub(crate) fn judge_postgres(facts: Result<PgFacts, String>) -> Check {
    const NAME: &str = "postgres";
    let facts = match facts {
        Ok(facts) => facts,
        Err(e) => {
            return Check::new(NAME, Status::Fail, format!("unreachable: {e}")).fix(
                "start PostgreSQL or correct history.database_url; the node runs without \
                 it but stores no history",
            )
        }
    };
    let found = format!(
        "PostgreSQL {}, {:.2} ms per query, synchronous_commit {}, shared_buffers {}",
        facts.version,
        facts.latency.as_secs_f64() * 1000.0,
        facts.synchronous_commit,
        facts.shared_buffers
    );
    if facts.latency > PG_WARN_LATENCY {
        return Check::new(NAME, Status::Warn, found)
            .fix("put the database on the same LAN, on a Pi that is not overloaded");
    }
    Check::new(NAME, Status::Ok, found)
}

/// What a TCP probe of a cluster link saw.
pub(crate) struct Probe {
    pub connect: Duration,
    /// The first line the server sent, for `nats://` URLs.
    pub greeting: Option<String>,
}

pub(crate) async fn cluster(config: &Config) -> Vec<Check> {
    let cluster = &config.cluster;
    let urls: Vec<&String> = cluster.nats.iter().collect();
    if urls.is_empty() {
        return vec![Check::new("cluster links", Status::Info, "not clustered")];
    }
    let mut checks = Vec::with_capacity(urls.len());
    for url in urls {
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, probe(url))
            .await
            .unwrap_or_else(|_| Err(format!("no answer in {CONNECT_TIMEOUT:?}")));
        checks.push(judge_link(url, probe));
    }
    checks
}

/// `scheme://host:port` -> (`scheme`, `host:port`).
fn split_url(url: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = url.split_once("://")?;
    Some((scheme, authority.trim_end_matches('/')))
}

async fn probe(url: &str) -> Result<Probe, String> {
    let (scheme, authority) = split_url(url).ok_or("not a scheme://host:port URL")?;
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let connect = started.elapsed();
    let greeting = if scheme == "nats" {
        // A NATS server speaks first: one `INFO {...}` line. Read at most 16 KiB of it.
        let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(stream, 16_384));
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        Some(line.trim_end().to_owned())
    } else {
        None
    };
    Ok(Probe { connect, greeting })
}

pub(crate) fn judge_link(url: &str, probe: Result<Probe, String>) -> Check {
    const NAME: &str = "cluster link";
    let probe = match probe {
        Ok(probe) => probe,
        Err(e) => {
            return Check::new(NAME, Status::Fail, format!("{url}: unreachable: {e}"))
                .fix("start that NATS server, or open its port in the firewall")
        }
    };
    let ms = probe.connect.as_secs_f64() * 1000.0;
    let Some(greeting) = probe.greeting else {
        return Check::new(NAME, Status::Ok, format!("{url}: reachable, {ms:.2} ms"));
    };
    let info = greeting
        .strip_prefix("INFO ")
        .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok());
    match info {
        Some(info) => {
            let field = |k: &str| info[k].as_str().unwrap_or("?").to_owned();
            Check::new(
                NAME,
                Status::Ok,
                format!(
                    "{url}: NATS {} ({}), {ms:.2} ms",
                    field("version"),
                    field("server_name")
                ),
            )
        }
        None => Check::new(
            NAME,
            Status::Fail,
            format!("{url}: reachable but no NATS INFO greeting"),
        )
        .fix("something else listens on that port: point the URL at the NATS client port (4222)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(latency_ms: u64) -> Result<PgFacts, String> {
        Ok(PgFacts {
            version: "15.14".into(),
            latency: Duration::from_millis(latency_ms),
            synchronous_commit: "on".into(),
            shared_buffers: "128MB".into(),
        })
    }

    #[test]
    fn postgres_judgement() {
        let ok = judge_postgres(facts(1));
        assert_eq!(ok.status, Status::Ok);
        assert!(ok.found.contains("PostgreSQL 15.14"), "{}", ok.found);
        assert!(ok.found.contains("synchronous_commit on"), "{}", ok.found);
        assert_eq!(judge_postgres(facts(40)).status, Status::Warn);
        let down = judge_postgres(Err("connection refused".into()));
        assert_eq!(down.status, Status::Fail);
        assert!(down.found.contains("connection refused"));
    }

    #[tokio::test]
    async fn postgres_only_when_configured() {
        let config = Config::default();
        assert_eq!(postgres(&config).await.status, Status::Info);
        assert_eq!(cluster(&config).await[0].status, Status::Info);
    }

    fn probe(greeting: Option<&str>) -> Result<Probe, String> {
        Ok(Probe {
            connect: Duration::from_micros(420),
            greeting: greeting.map(str::to_owned),
        })
    }

    #[test]
    fn link_judgement() {
        let mqtt = judge_link("tls://10.0.0.12:4222", probe(None));
        assert_eq!(mqtt.status, Status::Ok);
        assert_eq!(mqtt.found, "tls://10.0.0.12:4222: reachable, 0.42 ms");

        let info = r#"INFO {"server_id":"N1","server_name":"pi1","version":"2.10.18","max_payload":1048576}"#;
        let nats = judge_link("nats://10.0.0.11:4222", probe(Some(info)));
        assert_eq!(nats.status, Status::Ok);
        assert_eq!(
            nats.found,
            "nats://10.0.0.11:4222: NATS 2.10.18 (pi1), 0.42 ms"
        );

        // An HTTP server, or an MQTT broker, on the NATS port says nothing or something else.
        let wrong = judge_link("nats://10.0.0.11:4222", probe(Some("HTTP/1.1 400")));
        assert_eq!(wrong.status, Status::Fail);
        assert_eq!(
            judge_link("nats://10.0.0.11:4222", probe(Some(""))).status,
            Status::Fail
        );

        let down = judge_link("nats://10.0.0.13:4222", Err("connection refused".into()));
        assert_eq!(down.status, Status::Fail);
        assert!(down.found.contains("10.0.0.13"));
    }

    #[tokio::test]
    async fn probes_a_listening_and_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = super::probe(&format!("tls://{addr}")).await;
        assert!(up.is_ok());
        drop(listener);
        assert!(super::probe(&format!("tls://{addr}")).await.is_err());
    }
}
