//! The node's history: the database handle the HTTP API reads from, and (unless turned
//! off) the history service running inside the node on a router link.

use crate::history_link::LinkBus;
use crate::router::Router;
use roost_config::Config;
use roost_history::{Retention, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OnceCell};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// The history database, once it has been reached. The node starts without it (live chat
/// never waits for history) and keeps trying until it answers.
pub type History = Arc<OnceCell<Store>>;

/// The history service running in the node, to finish when the node drains.
pub struct Service {
    finish: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Service {
    /// Tells the service that no client is left: it stores what it has taken and stops.
    /// Waits at most `bound` (the database may be away).
    pub async fn finish(self, bound: Duration) {
        self.finish.send_replace(true);
        match tokio::time::timeout(bound, self.task).await {
            Ok(_) => info!("history service finished"),
            Err(_) => warn!(
                ?bound,
                "history service did not finish in time (database away?)"
            ),
        }
    }
}

pub async fn start(config: &Config, router: &Router) -> anyhow::Result<(History, Service)> {
    let url = database_url(config);
    let history: History = Arc::new(OnceCell::new());
    let (finish, finishing) = watch::channel(false);
    // Subscribe first: what arrives while the database is still away waits in the router.
    let bus = if config.history.service {
        let stamped = config.history.delivery() == roost_config::Delivery::Stamped;
        Some(LinkBus::start(router, finishing, stamped).await?)
    } else {
        None
    };
    let settings = service_settings(config);
    let ready = history.clone();
    let pool_size = config.history.pool_size;
    let task = tokio::spawn(async move {
        let store = connect(&url, pool_size).await;
        let _ = ready.set(store.clone());
        tokio::spawn(watch_database(store.clone()));
        if let Some(bus) = bus {
            info!("history service running in this node");
            roost_history::service::run(bus, store, settings).await;
        }
    });
    Ok((history, Service { finish, task }))
}

/// The history service's settings from `[history]` (for the node and `history-worker`).
pub fn service_settings(config: &Config) -> roost_history::service::Settings {
    roost_history::service::Settings {
        retention: Retention {
            max_age: config.history.max_age,
            max_messages: config.history.max_messages,
        },
        max_requests_per_second: config.history.max_requests_per_second,
    }
}

/// The configured database, or SQLite in the data dir.
pub fn database_url(config: &Config) -> String {
    match &config.history.database_url {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}",
            config.node.data_dir.join("history.db").display()
        ),
    }
}

/// Connects (and migrates), retrying with backoff for as long as it takes.
pub async fn connect(url: &str, pool_size: Option<u32>) -> Store {
    let shown = roost_config::mask_url(url);
    let mut backoff = Duration::from_millis(200);
    let mut tries = 0u32;
    loop {
        match Store::connect_with_pool(url, pool_size).await {
            Ok(store) => {
                roost_history::metrics::database_up(true);
                info!(database = shown, "history database ready");
                return store;
            }
            Err(e) => {
                roost_history::metrics::database_up(false);
                tries += 1;
                if tries == 1 || tries % 10 == 0 {
                    warn!(database = shown, error = %e, tries, "history database not reachable; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Keeps `roost_history_database_up` true to the database while nothing is stored either.
async fn watch_database(store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let up = matches!(
            tokio::time::timeout(Duration::from_secs(5), store.ping()).await,
            Ok(Ok(()))
        );
        roost_history::metrics::database_up(up);
    }
}
