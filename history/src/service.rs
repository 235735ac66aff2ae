//! The history service: stores chat messages, acknowledges them once committed, and answers
//! requests (PROTOCOL.md sections 4-5).
//!
//! It sees the node's traffic through a [`Bus`]: inside `roost serve` that is a link to the
//! router, in `roost history-worker` an MQTT connection. Either way it takes the stored
//! topics and the request topic through shared subscriptions (so several services split the
//! load) and acknowledges a delivery only after its message is committed: while the
//! database is away, deliveries wait unacknowledged, nothing is acked, and live chat (which
//! never waits for history) goes on.

use crate::fair::{Fair, Refusal};
use crate::payload::ChatPayload;
use crate::stamp;
use crate::{Conv, HistoryError, NewMessage, Retention, Store};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// The shared subscriptions a history service takes. Each filter has a group name of its
/// own: rumqttd keys shared groups by name alone, so one name over two filters loses
/// messages.
pub const SUBSCRIPTIONS: [&str; 3] = [
    "$share/roost-history-dm/im/dm/+/+",
    "$share/roost-history-grp/im/grp/+/+",
    "$share/roost-history-req/im/req/+",
];

/// Most messages stored in one transaction.
const MAX_BATCH: usize = 256;
/// `conversations` per page when the request does not say.
const DEFAULT_CONVERSATIONS_LIMIT: u32 = 100;
/// How long a batch waits for more messages once it has one.
const BATCH_WINDOW: Duration = Duration::from_millis(2);

/// A message the bus delivered; `ack` is what [`Bus::ack`] needs to acknowledge it.
#[derive(Debug)]
pub struct Delivery<A> {
    pub topic: String,
    pub payload: Vec<u8>,
    pub user_properties: Vec<(String, String)>,
    pub ack: A,
}

/// Where the service gets its messages and sends its notices.
#[allow(async_fn_in_trait)]
pub trait Bus {
    type Ack;
    /// The next delivery; `None` when the bus is closed for good. Must be cancel safe.
    async fn recv(&mut self) -> Option<Delivery<Self::Ack>>;
    /// Publishes a notice (QoS 1 where the bus can).
    async fn publish(&mut self, topic: String, payload: Vec<u8>);
    /// Acknowledges a delivery, so the broker will not deliver it again.
    async fn ack(&mut self, ack: Self::Ack);
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

/// A request waiting for its turn.
struct Request {
    topic: String,
    payload: Vec<u8>,
    user_properties: Vec<(String, String)>,
}

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
    // Acks go out in delivery order, after everything in the batch is done: MQTT wants
    // PUBACKs in order, and rumqttd's router drops a link that acks out of order. A
    // request is acknowledged once queued: it is a read (or an idempotent `read`), and a
    // client that gets no answer asks again.
    let mut acks = Vec::with_capacity(batch.len());
    let now = Instant::now();
    for delivery in batch {
        if let Some(me) = delivery.topic.strip_prefix("im/req/") {
            let me = me.to_owned();
            let request = Request {
                topic: delivery.topic,
                payload: delivery.payload,
                user_properties: delivery.user_properties,
            };
            if let Err((refusal, request)) = requests.push(&me, request, now) {
                refuse_request(bus, &me, &request, refusal).await;
            }
        } else {
            match chat_message(&delivery) {
                Ok(message) => messages.push(message),
                Err((from, notice)) => {
                    // The node refuses bad payloads before routing them; this only happens
                    // for publishes from trusted services. Dropped with an error.
                    refused_metric("payload");
                    warn!(
                        topic = delivery.topic,
                        "history: message not stored: {notice}"
                    );
                    if let Some(from) = from {
                        bus.publish(sys_topic(&from), notice.into_bytes()).await;
                    }
                }
            }
        }
        acks.push(delivery.ack);
    }

    if !messages.is_empty() {
        let outcomes = store_with_retry(store, &messages).await;
        for (message, outcome) in messages.iter().zip(outcomes) {
            let notice = match outcome {
                Ok(s) => {
                    json!({"type": "ack", "id": s.id, "conv": s.conv, "seq": s.seq, "ts": s.ts})
                }
                Err(e) => refused(message, &e),
            };
            bus.publish(sys_topic(&message.from), notice.to_string().into_bytes())
                .await;
        }
    }
    for ack in acks {
        bus.ack(ack).await;
    }
}

/// Answers a request refused by [`Fair::push`] with a `rate_limited` error, and counts it.
async fn refuse_request<B: Bus>(bus: &mut B, me: &str, request: &Request, refusal: Refusal) {
    let reason = match refusal {
        Refusal::Rate => "rate",
        Refusal::Queue => "queue",
    };
    metrics::counter!("roost_history_requests_refused_total", "reason" => reason).increment(1);
    warn!(
        user = me,
        reason, "history: request refused, over the user's bounds"
    );
    let message = match refusal {
        Refusal::Rate => "too many requests per second; slow down",
        Refusal::Queue => "too many requests waiting; wait for the answers first",
    };
    let reply = json!({"type": "result", "req": req_of(&request.payload),
        "error": {"code": "rate_limited", "message": message}});
    bus.publish(sys_topic(me), reply.to_string().into_bytes())
        .await;
}

/// The request's `req` (correlation id), or null.
fn req_of(payload: &[u8]) -> Value {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v.get("req").cloned())
        .unwrap_or(Value::Null)
}

/// A stored-topic delivery as a message to store, or the notice explaining why not.
fn chat_message<A>(delivery: &Delivery<A>) -> Result<NewMessage, (Option<String>, String)> {
    let Some((conv, from)) = Conv::from_topic(&delivery.topic) else {
        // What the subscriptions let through without a conversation is a DM to oneself
        // (`im/dm/{me}/{me}`: `dm:{a}:{b}` needs a < b). Its sender must hear that it is not
        // stored, or a client resending until acked would resend it forever.
        let from = delivery
            .topic
            .rsplit('/')
            .next()
            .filter(|f| roost_auth::id::is_valid_id(f))
            .map(str::to_owned);
        let mut notice = json!({"type": "error", "code": "forbidden",
            "message": format!("{} is not stored: a direct message is between two users", delivery.topic)});
        if let Ok(payload) = ChatPayload::parse(&delivery.payload) {
            notice["id"] = Value::from(payload.id);
        }
        return Err((from, notice.to_string()));
    };
    let payload = match ChatPayload::parse(&delivery.payload) {
        Ok(p) => p,
        Err(e) => {
            let notice = json!({"type": "error", "code": e.code, "message": e.message});
            return Err((Some(from), notice.to_string()));
        }
    };
    Ok(NewMessage {
        conv,
        from,
        id: payload.id,
        payload: String::from_utf8_lossy(&delivery.payload).into_owned(),
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
                if failures > 0 {
                    info!(failures, "history: database is back; batch stored");
                }
                return outcomes;
            }
            Err(e) => {
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
fn refused(message: &NewMessage, e: &HistoryError) -> Value {
    let reason = if e.is_bad_request() {
        "invalid"
    } else {
        "database"
    };
    refused_metric(reason);
    warn!(from = %message.from, conv = %message.conv, id = ?message.id, reason, error = %e,
        "history: message refused, not stored; its sender gets an error notice");
    json!({"type": "error", "code": "invalid_payload", "id": message.id,
        "message": "message not stored: the history database refused its content"})
}

fn refused_metric(reason: &'static str) {
    metrics::counter!("roost_history_refused_total", "reason" => reason).increment(1);
}

fn sys_topic(user: &str) -> String {
    format!("im/sys/{user}")
}

/// Answers one request from `im/req/{me}` on `im/sys/{me}`.
async fn answer<B: Bus>(bus: &mut B, store: &Store, request: &Request) {
    let Some(me) = request.topic.strip_prefix("im/req/") else {
        return;
    };
    // The node stamps every request it routes; one without a stamp for this user did not
    // come through a node's front-end, and gets no group rights.
    let stamped = request
        .user_properties
        .iter()
        .any(|(k, v)| k == stamp::USER && v == me);
    let groups = if stamped {
        stamp::groups(&request.user_properties)
    } else {
        Vec::new()
    };
    let parsed: Result<Value, _> = serde_json::from_slice(&request.payload);
    let req = req_of(&request.payload);
    let outcome = match &parsed {
        Ok(v) => dispatch(bus, store, me, &groups, v).await,
        Err(e) => Err((
            "invalid_request",
            format!("a request is a JSON object: {e}"),
        )),
    };
    let reply = match outcome {
        Ok(Answer::Plain(result)) => json!({"type": "result", "req": req, "result": result}),
        Ok(Answer::Paged {
            result,
            cursor,
            more,
        }) => {
            json!({"type": "result", "req": req, "result": result, "cursor": cursor, "more": more})
        }
        Err((code, message)) => {
            json!({"type": "result", "req": req, "error": {"code": code, "message": message}})
        }
    };
    bus.publish(sys_topic(me), reply.to_string().into_bytes())
        .await;
}

/// A request's result; `conversations` pages with `cursor` and `more` beside its list
/// (the list itself stays the documented array).
enum Answer {
    Plain(Value),
    Paged {
        result: Value,
        cursor: Option<String>,
        more: bool,
    },
}

type Outcome = Result<Answer, (&'static str, String)>;

async fn dispatch<B: Bus>(
    bus: &mut B,
    store: &Store,
    me: &str,
    groups: &[String],
    request: &Value,
) -> Outcome {
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
    let unavailable = |e: crate::HistoryError| {
        if e.is_transient() {
            (
                "unavailable",
                "history is unavailable right now; try again".to_owned(),
            )
        } else {
            ("invalid_request", e.to_string())
        }
    };
    match method {
        "history" => {
            let conv = readable_conv(&params, me, groups)?;
            let limit = int_param(&params, "limit")?.unwrap_or(50).clamp(1, 100) as u32;
            let page = store
                .history(
                    &conv,
                    int_param(&params, "before_seq")?,
                    int_param(&params, "after_seq")?,
                    limit,
                )
                .await
                .map_err(unavailable)?;
            Ok(Answer::Plain(
                serde_json::to_value(page).unwrap_or(Value::Null),
            ))
        }
        "sync" => {
            let cursor = params.get("cursor").and_then(Value::as_str);
            let limit = int_param(&params, "limit")?.unwrap_or(100).clamp(1, 500) as u32;
            let page = store
                .sync(me, groups, cursor, limit)
                .await
                .map_err(unavailable)?;
            Ok(Answer::Plain(
                serde_json::to_value(page).unwrap_or(Value::Null),
            ))
        }
        "conversations" => {
            let cursor = params.get("cursor").and_then(Value::as_str);
            let limit = int_param(&params, "limit")?
                .unwrap_or(i64::from(DEFAULT_CONVERSATIONS_LIMIT))
                .clamp(1, i64::from(crate::MAX_CONVERSATIONS_LIMIT)) as u32;
            let page = store
                .conversations(me, groups, cursor, limit)
                .await
                .map_err(unavailable)?;
            Ok(Answer::Paged {
                result: serde_json::to_value(page.conversations).unwrap_or(Value::Null),
                cursor: page.cursor,
                more: page.more,
            })
        }
        "read" => {
            let conv = readable_conv(&params, me, groups)?;
            let seq = int_param(&params, "seq")?
                .ok_or(("invalid_request", "read needs seq".to_owned()))?;
            let read_seq = store.mark_read(&conv, me, seq).await.map_err(unavailable)?;
            let receipt = json!({"type": "receipt", "conv": conv.to_string(), "user": me, "read_seq": read_seq});
            for member in store
                .members_to_notify(&conv, me)
                .await
                .map_err(unavailable)?
            {
                bus.publish(sys_topic(&member), receipt.to_string().into_bytes())
                    .await;
            }
            Ok(Answer::Plain(
                json!({"conv": conv.to_string(), "read_seq": read_seq}),
            ))
        }
        "" => Err(("invalid_request", "missing method".to_owned())),
        other => Err(("unknown_method", format!("no method {other:?}"))),
    }
}

/// The `conv` parameter, if `me` may read it.
fn readable_conv(
    params: &Value,
    me: &str,
    groups: &[String],
) -> Result<Conv, (&'static str, String)> {
    let raw = params
        .get("conv")
        .and_then(Value::as_str)
        .ok_or(("invalid_request", "missing conv".to_owned()))?;
    let conv = Conv::parse(raw).ok_or((
        "invalid_request",
        format!("{raw:?} is not a conversation id"),
    ))?;
    if !conv.can_read(me, groups) {
        return Err(("forbidden", format!("not a member of {raw}")));
    }
    Ok(conv)
}

fn int_param(params: &Value, name: &str) -> Result<Option<i64>, (&'static str, String)> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or(("invalid_request", format!("{name} must be an integer"))),
    }
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
