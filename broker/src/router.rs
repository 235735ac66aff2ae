//! rumqttd's router, reached only through local links.
//!
//! The router runs on its own thread and routes between links. Every client connection gets
//! one link ([`Router::link`]); the node itself owns one more, the system link, through which
//! it publishes presence, notices and last wills ([`SystemPublisher`]).

use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish};
use rumqttd::{Notification, RouterConfig, SegmentConfig};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{error, warn};

/// Links made and the ack the router answered with.
pub struct Link {
    pub tx: LinkTx,
    pub rx: LinkRx,
    /// Whether the router resumed a stored session for this client id.
    pub session_present: bool,
}

/// The router did not take a link (it is gone, or refused the client id).
#[derive(Debug, thiserror::Error)]
#[error("router refused the link: {0}")]
pub struct LinkRefused(String);

type MakeLink =
    dyn Fn(&str, bool) -> Result<(LinkTx, LinkRx, Notification), LinkRefused> + Send + Sync;

/// Handle to the running router.
#[derive(Clone)]
pub struct Router {
    // rumqttd's router channel carries a type it does not export, so the channel lives
    // inside this closure rather than in a named field.
    make_link: Arc<MakeLink>,
}

/// Sizes of the router's in-memory logs. Every subscribed filter gets its own commit log,
/// and each user subscribes to filters of their own, so these are per user, not global.
pub struct Sizing {
    pub max_connections: usize,
    /// Log size of an ordinary filter (a user's inbox): recent messages kept for slow or
    /// briefly offline subscribers.
    pub segment_size: usize,
    pub segment_count: usize,
    /// Filters with a log of their own size: the history service's, which must hold what
    /// arrives while the database is away.
    pub large: Vec<(String, usize, usize)>,
}

impl Router {
    /// Starts the router thread.
    pub fn start(sizing: Sizing) -> Router {
        let config = RouterConfig {
            // The node enforces its own limit before asking the router; the margin is for
            // the system link and connections that are closing.
            max_connections: sizing.max_connections + 64,
            max_outgoing_packet_count: 200,
            max_segment_size: sizing.segment_size,
            max_segment_count: sizing.segment_count,
            custom_segment: Some(
                sizing
                    .large
                    .into_iter()
                    .map(|(filter, size, count)| {
                        let segment = SegmentConfig {
                            max_segment_size: size,
                            max_segment_count: count,
                        };
                        (filter, segment)
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        let router_tx = rumqttd::Router::new(0, config).spawn();
        let make_link = move |client_id: &str, clean: bool| {
            LinkBuilder::new(client_id, router_tx.clone())
                .clean_session(clean)
                // The front-end refuses topic aliases; the router must not invent them.
                .topic_alias_max(0)
                .build()
                .map_err(|e| LinkRefused(e.to_string()))
        };
        Router {
            make_link: Arc::new(make_link),
        }
    }

    /// Registers a client with the router. Blocks until the router answers, so it runs on
    /// the blocking pool.
    pub async fn link(&self, client_id: String, clean: bool) -> Result<Link, LinkRefused> {
        let make_link = self.make_link.clone();
        let built = tokio::task::spawn_blocking(move || make_link(&client_id, clean))
            .await
            .map_err(|e| LinkRefused(e.to_string()))??;
        let (tx, rx, ack) = built;
        let session_present = match ack {
            Notification::DeviceAck(ack) => match Packet::from(ack) {
                Packet::ConnAck(connack, _) => connack.session_present,
                _ => false,
            },
            _ => false,
        };
        Ok(Link {
            tx,
            rx,
            session_present,
        })
    }
}

/// A message the node publishes in its own name.
#[derive(Debug)]
pub struct SystemMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Publishes presence, notices and wills through the node's own link. Cheap to clone.
#[derive(Clone)]
pub struct SystemPublisher {
    tx: mpsc::Sender<SystemMessage>,
}

/// How many system messages may wait for the router before publishers wait.
const SYSTEM_QUEUE: usize = 4096;

impl SystemPublisher {
    pub async fn start(router: &Router) -> Result<SystemPublisher, LinkRefused> {
        let link = router.link("roost-system".to_owned(), true).await?;
        let (tx, rx) = mpsc::channel(SYSTEM_QUEUE);
        tokio::spawn(run_system_link(link, rx));
        Ok(SystemPublisher { tx })
    }

    pub async fn publish(&self, message: SystemMessage) {
        if self.tx.send(message).await.is_err() {
            error!("system link is gone; a presence, notice or will was not published");
        }
    }
}

async fn run_system_link(mut link: Link, mut rx: mpsc::Receiver<SystemMessage>) {
    loop {
        tokio::select! {
            message = rx.recv() => {
                let Some(message) = message else { return };
                let publish = Publish::new(message.topic.into_bytes(), message.payload, message.retain);
                if let Err(e) = link.tx.send(Packet::Publish(publish, None)).await {
                    error!(error = %e, "router is gone; system link stops");
                    return;
                }
            }
            // The router answers nothing the node needs; draining keeps its buffers empty.
            notification = link.rx.next() => match notification {
                Ok(Some(Notification::Unschedule)) => {
                    if link.rx.wake().await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "system link closed by the router");
                    return;
                }
            }
        }
    }
}
