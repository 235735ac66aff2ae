//! The history service: stores chat messages, sends each sender the `ack` notice once the
//! message is committed, and answers requests (docs/protocol.md sections 4-5).
//!
//! It sees the node's traffic through a [`Bus`]: inside `roost serve` that is a link to the
//! router, in `roost history-worker` an MQTT connection. Either way it takes the stored
//! topics and the request topic through the shared subscriptions of
//! [`roost_proto::subscriptions::HISTORY`] (so several services split the load), and hands
//! each delivery back to [`Bus::ack`] once its batch is committed. What that ack means is
//! the bus's: a worker's PUBACK goes out only then, so the broker redelivers what a dying
//! worker had not stored; the in-node link acknowledges as it takes (broker/src/
//! history_link.rs says why). While the database is away no `ack` notice is sent.
//!
//! Under stamped delivery (`history.delivery`) chat arrives on the ingress topics
//! (`im/ingress/...`) instead of the stored ones, and the service is what delivers it: once
//! a message is committed it publishes the stamped copy on the stored topic
//! ([`Bus::forward`]), so nothing reaches a recipient before it is stored, and a retry of a
//! stored message is acked again but not delivered again. Under direct delivery the
//! recipients had the message at once and the service only stores it. Requests wait their
//! turn here and are answered by [`crate::answer`].

use crate::answer::{answer, refuse_request, Request};
use crate::fair::Fair;
use crate::{Conv, HistoryError, NewMessage, Retention, Store, Stored};
use roost_proto::chat::{self, ChatMessage};
use roost_proto::delivered::{self, Stamp};
use roost_proto::notice::{code, Notice};
use roost_proto::topic::{self, Topic};
use roost_proto::{id, stamp};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// Most messages stored in one transaction.
const MAX_BATCH: usize = 256;
/// How long a batch waits for more messages once it has one.
const BATCH_WINDOW: Duration = Duration::from_millis(2);

/// A message the bus delivered; `ack` is what [`Bus::ack`] needs to acknowledge it.
#[derive(Debug)]
pub struct Delivery<A> {
    pub topic: String,
    pub payload: Vec<u8>,
    /// The publish's QoS (0, 1 or 2): the stamped copy goes out with the same.
    pub qos: u8,
    pub user_properties: Vec<(String, String)>,
    /// The v5 Response Topic and Correlation Data of a request, if it had them.
    pub response_topic: Option<String>,
    pub correlation_data: Option<Vec<u8>>,
    pub ack: A,
}

/// A stamped copy to publish ([`Bus::forward`]).
#[derive(Debug)]
pub struct StampedCopy {
    /// The stored topic (`im/dm/...`, `im/grp/...`).
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    /// The sender's, as the node routed them (no `roost-` ones).
    pub user_properties: Vec<(String, String)>,
}

/// Where the service gets its messages and sends its notices.
#[allow(async_fn_in_trait)]
pub trait Bus {
    type Ack;
    /// The next delivery; `None` when the bus is closed for good. Must be cancel safe.
    async fn recv(&mut self) -> Option<Delivery<Self::Ack>>;
    /// Publishes a notice (QoS 1 where the bus can).
    async fn publish(&mut self, topic: String, payload: Vec<u8>);
    /// Publishes the answer to a request, with the request's v5 Correlation Data when it
    /// had one. A bus that cannot carry properties publishes without it.
    async fn publish_answer(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        correlation_data: Option<Vec<u8>>,
    ) {
        let _ = correlation_data;
        self.publish(topic, payload).await;
    }
    /// Acknowledges a delivery, so the broker will not deliver it again.
    async fn ack(&mut self, ack: Self::Ack);
    /// Publishes the stamped copy of a committed chat message on its stored topic, at
    /// `qos`, with the sender's MQTT 5 user properties, for the recipients (stamped
    /// delivery; see [`roost_proto::delivered`]).
    async fn forward(&mut self, copy: StampedCopy);
}

/// How a service runs, besides its database.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub retention: Retention,
    /// Requests per second each user may make (also their burst); more are answered
    /// `rate_limited`. 0 means [`DEFAULT_REQUESTS_PER_SECOND`].
    pub max_requests_per_second: u32,
}

/// `[history] max_requests_per_second` when not set.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 20;

/// Runs the service until the bus closes.
///
/// Messages to store always go first: a request is answered only when no delivery is
/// waiting, one request at a time, taking users in turn (see [`crate::fair`]).
pub async fn run<B: Bus>(mut bus: B, store: Store, settings: Settings) {
    let retention = settings.retention;
    if retention.max_age.is_some() || retention.max_messages.is_some() {
        tokio::spawn(enforce_retention(store.clone(), retention));
    }
    let rate = match settings.max_requests_per_second {
        0 => DEFAULT_REQUESTS_PER_SECOND,
        n => n,
    };
    let mut requests: Fair<Request> = Fair::new(rate);
    loop {
        let first = if requests.is_empty() {
            bus.recv().await
        } else {
            // Only what is already there: a waiting request should not wait for traffic.
            tokio::select! {
                biased;
                delivery = bus.recv() => delivery,
                () = std::future::ready(()) => {
                    if let Some((_, request)) = requests.pop() {
                        answer(&mut bus, &store, &request).await;
                    }
                    continue;
                }
            }
        };
        let Some(first) = first else {
            info!("history bus closed; service stops");
            return;
        };
        let mut batch = vec![first];
        let window = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(window, bus.recv()).await {
                Ok(Some(delivery)) => batch.push(delivery),
                _ => break,
            }
        }
        handle(&mut bus, &store, &mut requests, batch).await;
    }
}

/// Stores a batch's messages and queues its requests (refusing those over a user's
/// bounds at once), then acknowledges every delivery of the batch.
async fn handle<B: Bus>(
    bus: &mut B,
    store: &Store,
    requests: &mut Fair<Request>,
    batch: Vec<Delivery<B::Ack>>,
) {
    let mut messages = Vec::with_capacity(batch.len());
    // Per message: its stamped copy to be (payload still as sent) when it came through the
    // ingress (stamped delivery); `None` under direct delivery, where the recipients had it
    // at once.
    let mut copies: Vec<Option<StampedCopy>> = Vec::with_capacity(batch.len());
    // Acks go out in delivery order, after everything in the batch is done: MQTT wants
    // PUBACKs in order, and rumqttd's router drops a link that acks out of order. A
    // request is acknowledged once queued: it is a read (or an idempotent `read`), and a
    // client that gets no answer asks again.
    let mut acks = Vec::with_capacity(batch.len());
    let now = Instant::now();
    for delivery in batch {
        if let Topic::Req { user } = Topic::parse(&delivery.topic) {
            let me = user.to_owned();
            let request = Request {
                topic: delivery.topic,
                payload: delivery.payload,
                user_properties: delivery.user_properties,
                response_topic: delivery.response_topic,
                correlation_data: delivery.correlation_data,
            };
            if let Err((refusal, request)) = requests.push(&me, request, now) {
                refuse_request(bus, &me, &request, refusal).await;
            }
        } else {
            let original = topic::from_ingress(&delivery.topic);
            let stored_topic = original.as_deref().unwrap_or(&delivery.topic);
            match chat_message(stored_topic, &delivery.payload) {
                Ok(message) => {
                    messages.push(message);
                    copies.push(original.map(|topic| {
                        let mut user_properties = delivery.user_properties;
                        let qos = stamp::sent_qos(&user_properties, delivery.qos);
                        stamp::strip(&mut user_properties);
                        StampedCopy {
                            topic,
                            payload: Vec::new(),
                            qos,
                            user_properties,
                        }
                    }));
                }
                Err((from, notice)) => {
                    // The node refuses bad payloads before routing them; this only happens
                    // for publishes from trusted services. Dropped with an error.
                    refused_metric("payload");
                    warn!(
                        topic = delivery.topic,
                        "history: message not stored: {}",
                        String::from_utf8_lossy(&notice)
                    );
                    if let Some(from) = from {
                        bus.publish(topic::sys(&from), notice).await;
                    }
                }
            }
        }
        acks.push(delivery.ack);
    }

    if !messages.is_empty() {
        let outcomes = store_with_retry(store, &messages).await;
        crate::metrics::batch(messages.len());
        let new = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(s) if !s.duplicate));
        crate::metrics::stored(new.count() as u64);
        for ((message, copy), outcome) in messages.iter().zip(copies).zip(outcomes) {
            let notice = match outcome {
                Ok(s) => {
                    // In seq order per conversation (the batch's order), once committed, and
                    // only the first time: a retry of a stored `(from, id)` gets its `ack`
                    // again, not a second delivery.
                    if let (Some(copy), false) = (copy, s.duplicate) {
                        forward(bus, copy, &message.payload, &s).await;
                    }
                    Notice::Ack {
                        id: &s.id,
                        conv: &s.conv,
                        seq: s.seq,
                        ts: s.ts,
                    }
                    .to_bytes()
                }
                Err(e) => refused(message, &e),
            };
            bus.publish(topic::sys(&message.from), notice).await;
        }
    }
    for ack in acks {
        bus.ack(ack).await;
    }
}

/// Publishes the stamped copy of a stored message on its stored topic.
async fn forward<B: Bus>(bus: &mut B, mut copy: StampedCopy, sent: &str, s: &Stored) {
    let stamp = Stamp {
        conv: &s.conv,
        seq: s.seq,
        ts: s.ts,
        from: &s.from,
    };
    match delivered::stamped(sent.as_bytes(), &stamp) {
        Some(payload) => {
            copy.payload = payload;
            bus.forward(copy).await
        }
        // The node routes only JSON objects to stored topics; nothing else gets this far.
        None => warn!(
            conv = s.conv,
            seq = s.seq,
            "history: stored message not delivered: its payload is not a JSON object"
        ),
    }
}

/// A stored-topic delivery as a message to store, or the notice explaining why not (and to
/// whom).
fn chat_message(
    stored_topic: &str,
    payload: &[u8],
) -> Result<NewMessage, (Option<String>, Vec<u8>)> {
    let Some((conv, from)) = Conv::from_topic(stored_topic) else {
        // What the subscriptions let through without a conversation is a DM to oneself
        // (`im/dm/{me}/{me}`: `dm:{a}:{b}` needs a < b). Its sender must hear that it is not
        // stored, or a client resending until acked would resend it forever.
        let from = Topic::parse(stored_topic)
            .from()
            .filter(|f| id::is_valid_id(f))
            .map(str::to_owned);
        let message =
            format!("{stored_topic} is not stored: a direct message is between two users");
        let id = ChatMessage::parse(payload).ok().map(|p| p.id);
        let notice = Notice::Error {
            code: code::FORBIDDEN,
            message: &message,
            id: id.as_deref(),
        };
        return Err((from, notice.to_bytes()));
    };
    let parsed = match ChatMessage::parse(payload) {
        Ok(p) => p,
        Err(e) => {
            let id = chat::payload_id(payload);
            let notice = Notice::Error {
                code: e.code(),
                message: &e.to_string(),
                id: id.as_deref(),
            };
            return Err((Some(from), notice.to_bytes()));
        }
    };
    Ok(NewMessage {
        conv,
        from,
        id: parsed.id,
        payload: String::from_utf8_lossy(payload).into_owned(),
    })
}

/// Stores a batch, waiting out database outages. Returns only once every message is
/// committed or set apart as one that can never be stored (one outcome per message).
async fn store_with_retry(
    store: &Store,
    messages: &[NewMessage],
) -> Vec<Result<crate::Stored, HistoryError>> {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        match store.store_each(messages).await {
            Ok(outcomes) => {
                crate::metrics::database_up(true);
                if failures > 0 {
                    info!(failures, "history: database is back; batch stored");
                }
                return outcomes;
            }
            Err(e) => {
                crate::metrics::database_up(false);
                failures += 1;
                // Logged once, then every tenth try, so an outage does not flood the log.
                if failures == 1 || failures % 10 == 0 {
                    error!(error = %e, transient = e.is_transient(), failures, messages = messages.len(),
                        "history: could not store a batch; retrying (nothing is acked meanwhile)");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A message that can never be stored: logged, counted, and its sender told with an
/// `error` notice carrying its `id` (in place of the `ack`). Its delivery is acknowledged
/// like any other, so it is not delivered again.
fn refused(message: &NewMessage, e: &HistoryError) -> Vec<u8> {
    let reason = if e.is_bad_request() {
        "invalid"
    } else {
        "database"
    };
    refused_metric(reason);
    warn!(from = %message.from, conv = %message.conv, id = ?message.id, reason, error = %e,
        "history: message refused, not stored; its sender gets an error notice");
    Notice::Error {
        code: code::INVALID_PAYLOAD,
        message: "message not stored: the history database refused its content",
        id: Some(&message.id),
    }
    .to_bytes()
}

fn refused_metric(reason: &'static str) {
    metrics::counter!("roost_history_refused_total", "reason" => reason).increment(1);
}

async fn enforce_retention(store: Store, retention: Retention) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match store.apply_retention(&retention).await {
            Ok(0) => {}
            Ok(deleted) => info!(deleted, "history: retention removed old messages"),
            Err(e) => warn!(error = %e, "history: retention pass failed; next in 10 minutes"),
        }
    }
}
