//! rumqttd's router, reached only through local links.
//!
//! The router runs on its own thread and routes between links. Every client connection gets
//! one link ([`Router::link`]); the node itself owns one more, the system link, through which
//! it publishes presence, notices and last wills ([`SystemPublisher`]).

use futures_util::FutureExt;
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet, Publish, PublishProperties};
use rumqttd::{Notification, RouterConfig, SegmentConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

/// One link to the router: a client's, the history service's or the node's own.
///
/// It owns rumqttd's link protocol so that no user repeats it: the router parks a link that
/// has a full buffer (`Unschedule`) until the link asks again (`wake`), and a send only
/// queues and notifies, so it never has to wait. Dropping the link tells the router it is
/// gone, so a link that ends any way at all (even by a panic) frees its router slot.
pub(crate) struct Link {
    tx: LinkTx,
    rx: LinkRx,
    /// Whether the router resumed a stored session for this client id.
    pub(crate) session_present: bool,
    /// The router parked this link; it is woken on the next receive.
    unscheduled: bool,
    /// The router dropped the link (session taken over) or was told it is gone.
    gone: bool,
}

impl Link {
    /// The next notification from the router; `None` once the link is gone. Cancel safe:
    /// nothing is lost when the future is dropped before it completes.
    pub(crate) async fn recv(&mut self) -> Option<Notification> {
        loop {
            if self.gone {
                return None;
            }
            if self.unscheduled {
                // Asked again only now, so a consumer that is still busy with what it took
                // (writing to a slow socket) holds the router back.
                if self.rx.wake().await.is_err() {
                    self.gone = true;
                    return None;
                }
                self.unscheduled = false;
            }
            match self.rx.next().await {
                Ok(Some(notification)) => {
                    if let Some(n) = self.take(notification) {
                        return Some(n);
                    }
                }
                Ok(None) => {}
                Err(_) => self.gone = true,
            }
        }
    }

    /// A notification the router has ready now, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Notification> {
        loop {
            match self.rx.next().now_or_never()? {
                Ok(Some(notification)) => {
                    if let Some(n) = self.take(notification) {
                        return Some(n);
                    }
                }
                Ok(None) => return None,
                Err(_) => {
                    self.gone = true;
                    return None;
                }
            }
        }
    }

    fn take(&mut self, notification: Notification) -> Option<Notification> {
        match notification {
            Notification::Unschedule => {
                self.unscheduled = true;
                None
            }
            // The router has dropped this link: telling it so again could reach a newer
            // link that got the same slot.
            n @ Notification::Disconnect(..) => {
                self.gone = true;
                Some(n)
            }
            n => Some(n),
        }
    }

    /// Hands packets to the router with one wake-up for the whole batch; never waits.
    /// `false` when the link is gone.
    pub(crate) fn try_send(&mut self, mut packets: Vec<Packet>) -> bool {
        let Some(last) = packets.pop() else {
            return !self.gone;
        };
        if self.gone {
            return false;
        }
        self.tx.buffer().extend(packets);
        // `send` is async in name only: it pushes and notifies without awaiting.
        match self.tx.send(last).now_or_never() {
            Some(Ok(_)) => true,
            _ => {
                self.gone = true;
                false
            }
        }
    }

    /// Tells the router this link is gone; nothing more is sent.
    pub(crate) fn close(&mut self) {
        if !std::mem::replace(&mut self.gone, true) {
            let disconnect = Disconnect {
                reason_code: DisconnectReasonCode::NormalDisconnection,
            };
            let _ = self
                .tx
                .send(Packet::Disconnect(disconnect, None))
                .now_or_never();
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.close();
    }
}

/// The router did not take a link (it is gone, or refused the client id).
#[derive(Debug, thiserror::Error)]
#[error("router refused the link: {0}")]
pub struct LinkRefused(String);

type MakeLink = dyn Fn(
        &str,
        bool,
        bool,
        Option<u16>,
        Option<Duration>,
    ) -> Result<(LinkTx, LinkRx, Notification), LinkRefused>
    + Send
    + Sync;

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
    /// What a resumed persistent session gets at most of its offline queue (`None`: all).
    pub max_queued_messages: Option<usize>,
    /// Filters with a log of their own size: the history service's, which must hold what
    /// arrives while the database is away.
    pub large: Vec<(String, usize, usize)>,
}

impl Router {
    /// Starts the router thread.
    pub fn start(sizing: Sizing) -> Router {
        Router::start_with(sizing, None)
    }

    /// Starts the router thread, telling `interest_hook` of every subscription a session
    /// gains or loses (the cluster bridge's interest; see `bridge_link`).
    pub fn start_with(sizing: Sizing, interest_hook: Option<rumqttd::InterestHook>) -> Router {
        let config = RouterConfig {
            // The node enforces its own limit before asking the router; the margin is for
            // the system link and connections that are closing.
            max_connections: sizing.max_connections + 64,
            max_outgoing_packet_count: 200,
            max_segment_size: sizing.segment_size,
            max_segment_count: sizing.segment_count,
            max_queued_messages: sizing.max_queued_messages,
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
        let mut router = rumqttd::Router::new(0, config);
        if let Some(hook) = interest_hook {
            router = router.with_interest_hook(hook);
        }
        let router_tx = router.spawn();
        let make_link = move |client_id: &str,
                              clean: bool,
                              clean_start: bool,
                              receive_maximum: Option<u16>,
                              session_expiry: Option<Duration>| {
            LinkBuilder::new(client_id, router_tx.clone())
                .clean_session(clean)
                // MQTT 5 Clean Start: a saved session is discarded even when this one is kept.
                .clean_start(clean_start)
                // How long a persistent session outlives the link (`None`: for ever).
                .session_expiry(session_expiry)
                // QoS 1/2 deliveries the client takes at once (v5 Receive Maximum).
                .receive_maximum(receive_maximum)
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
    /// the blocking pool. `clean`: the session ends with the link; `clean_start`: a saved
    /// session of `client_id` is discarded (always so when `clean`).
    pub(crate) async fn link(
        &self,
        client_id: String,
        clean: bool,
        clean_start: bool,
        receive_maximum: Option<u16>,
        session_expiry: Option<Duration>,
    ) -> Result<Link, LinkRefused> {
        let make_link = self.make_link.clone();
        let built = tokio::task::spawn_blocking(move || {
            make_link(
                &client_id,
                clean,
                clean_start,
                receive_maximum,
                session_expiry,
            )
        })
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
            unscheduled: false,
            gone: false,
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
    tx: mpsc::Sender<Queued>,
}

/// A system message waiting for the router.
struct Queued {
    message: SystemMessage,
    /// The publish properties of the rare message that has some (a will's).
    props: Option<PublishProperties>,
    /// Told once the message is in the router's queue (`publish_in_order`).
    handed: Option<oneshot::Sender<()>>,
}

/// How many system messages may wait for the router before publishers wait.
const SYSTEM_QUEUE: usize = 4096;

impl SystemPublisher {
    pub async fn start(router: &Router) -> Result<SystemPublisher, LinkRefused> {
        let link = router
            .link(crate::keys::SYSTEM.to_owned(), true, true, None, None)
            .await?;
        let (tx, rx) = mpsc::channel(SYSTEM_QUEUE);
        tokio::spawn(run_system_link(link, rx));
        Ok(SystemPublisher { tx })
    }

    pub async fn publish(&self, message: SystemMessage) {
        self.publish_with(message, None).await
    }

    /// Publishes `message` with MQTT 5 properties (a will's user properties, in order).
    pub async fn publish_with(&self, message: SystemMessage, props: Option<PublishProperties>) {
        self.queue(message, props, None).await;
    }

    /// Publishes `message` and returns once it is in the router's queue, so that whatever
    /// reaches the router after the call returns is routed after it. Why: a user's
    /// `online` must be in the retained store before their CONNACK goes out; otherwise a
    /// status the client publishes at once, or a subscription it makes, could reach the
    /// router first (a client's `away` overwritten by the late `online`).
    pub async fn publish_in_order(&self, message: SystemMessage) {
        let (handed, done) = oneshot::channel();
        if self.queue(message, None, Some(handed)).await {
            // An error means the link dropped it (the router is gone): nothing to wait for.
            let _ = done.await;
        }
    }

    async fn queue(
        &self,
        message: SystemMessage,
        props: Option<PublishProperties>,
        handed: Option<oneshot::Sender<()>>,
    ) -> bool {
        let queued = Queued {
            message,
            props,
            handed,
        };
        if self.tx.send(queued).await.is_err() {
            error!("system link is gone; a presence, notice or will was not published");
            return false;
        }
        true
    }
}

async fn run_system_link(mut link: Link, mut rx: mpsc::Receiver<Queued>) {
    loop {
        tokio::select! {
            queued = rx.recv() => {
                let Some(Queued { message, props, handed }) = queued else { return };
                let publish = Publish::new(message.topic.into_bytes(), message.payload, message.retain);
                if !link.try_send(vec![Packet::Publish(publish, props)]) {
                    error!("router is gone; system link stops");
                    return;
                }
                if let Some(handed) = handed {
                    // The caller may have stopped waiting (its connection gone).
                    let _ = handed.send(());
                }
            }
            // The router answers nothing the node needs; draining keeps its buffers empty.
            notification = link.recv() => if notification.is_none() {
                warn!("system link closed by the router");
                return;
            }
        }
    }
}
