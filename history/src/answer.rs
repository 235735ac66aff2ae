//! Answering requests (`im/req/{me}`, docs/protocol.md section 5) for the history
//! service: each request is parsed, checked against what the asker may read, run against
//! the store, and its `result` published where the asking device reads ([`crate::reply`]),
//! pages cut by bytes until they fit the asker's packets. Apart from [`crate::service`],
//! which stores chat and decides when a request gets its turn ([`crate::fair`]), so that
//! each file stays one concern.

use crate::fair::Refusal;
use crate::reply::Reply;
use crate::service::Bus;
use crate::{Conv, HistoryError, Store};
use roost_proto::notice::{code, ErrorBody, Notice, Outcome};
use roost_proto::request::{Method, Request as WireRequest, RequestError};
use roost_proto::topic::{self, Topic};
use roost_proto::{limits, stamp};
use serde_json::{json, Value};
use tracing::warn;

/// A request waiting for its turn.
pub(crate) struct Request {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) user_properties: Vec<(String, String)>,
    pub(crate) response_topic: Option<String>,
    pub(crate) correlation_data: Option<Vec<u8>>,
}

impl Request {
    /// Where and how big the answer to this request of `me` may be.
    fn reply(&self, me: &str) -> Reply {
        Reply::to(
            me,
            &self.user_properties,
            self.response_topic.as_deref(),
            self.correlation_data.as_deref(),
        )
    }
}

/// Answers a request refused by [`Fair::push`] with a `rate_limited` error, and counts it.
pub(crate) async fn refuse_request<B: Bus>(
    bus: &mut B,
    me: &str,
    request: &Request,
    refusal: Refusal,
) {
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
    let req = WireRequest::parse(&request.payload)
        .map(|r| r.req)
        .unwrap_or(Value::Null);
    let answer = Notice::Result {
        req: &req,
        outcome: Outcome::Error {
            error: ErrorBody {
                code: code::RATE_LIMITED,
                message,
            },
        },
    };
    let reply = request.reply(me);
    bus.publish_answer(reply.topic, answer.to_bytes(), reply.correlation_data)
        .await;
}

/// Answers one request from `im/req/{me}` where the asking device reads (see
/// [`crate::reply`]), cutting pages by bytes until the answer fits the asker's packets.
pub(crate) async fn answer<B: Bus>(bus: &mut B, store: &Store, request: &Request) {
    let Topic::Req { user: me } = Topic::parse(&request.topic) else {
        return;
    };
    // The node stamps every request it routes; one without a stamp for this user did not
    // come through a node's front-end, and gets no group rights.
    let groups = if stamp::is_stamped_for(&request.user_properties, me) {
        stamp::groups(&request.user_properties)
    } else {
        Vec::new()
    };
    let reply = request.reply(me);
    let parsed = WireRequest::parse(&request.payload);
    let req = parsed.as_ref().map_or(Value::Null, |p| p.req.clone());
    let mut budget = reply.budget();
    let bytes = loop {
        let answer = match &parsed {
            Ok(parsed) => dispatch(bus, store, me, &groups, parsed, budget).await,
            Err(e) => Err(e.clone()),
        };
        let bytes = result_notice(&req, &answer);
        if reply.fits(bytes.len()) {
            break bytes;
        }
        // Only pages shrink; `read` (whose receipts must not go twice) answers in a few
        // bytes, and an error is one line.
        let pageable = matches!(answer, Ok(Answer::Plain(_) | Answer::Paged { .. }))
            && matches!(
                parsed.as_ref().map(|p| &p.method),
                Ok(Ok(Method::History | Method::Sync | Method::Conversations))
            );
        match reply.shrink(budget, bytes.len()).filter(|_| pageable) {
            Some(next) => budget = next,
            None => {
                warn!(
                    user = me,
                    len = bytes.len(),
                    "history: answer larger than the asker's maximum packet size"
                );
                let error = Err(RequestError {
                    code: code::TOO_LARGE,
                    message: "the answer does not fit your Maximum Packet Size, not even one item"
                        .to_owned(),
                });
                break result_notice(&req, &error);
            }
        }
    };
    bus.publish_answer(reply.topic, bytes, reply.correlation_data)
        .await;
}

/// The `result` notice of `req` with this answer.
fn result_notice(req: &Value, answer: &Result<Answer, RequestError>) -> Vec<u8> {
    let outcome = match answer {
        Ok(Answer::Plain(result)) => Outcome::Result { result },
        Ok(Answer::Paged {
            result,
            cursor,
            more,
        }) => Outcome::Page {
            result,
            cursor: cursor.as_deref(),
            more: *more,
        },
        Err(e) => Outcome::Error {
            error: ErrorBody {
                code: e.code,
                message: &e.message,
            },
        },
    };
    Notice::Result { req, outcome }.to_bytes()
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

async fn dispatch<B: Bus>(
    bus: &mut B,
    store: &Store,
    me: &str,
    groups: &[String],
    request: &WireRequest,
    budget: usize,
) -> Result<Answer, RequestError> {
    let unavailable = |e: HistoryError| {
        if e.is_transient() {
            RequestError {
                code: code::UNAVAILABLE,
                message: "history is unavailable right now; try again".to_owned(),
            }
        } else {
            RequestError::invalid(e.to_string())
        }
    };
    match request.method.clone()? {
        Method::History => {
            let conv = readable_conv(request, me, groups)?;
            let limit = limits::history_limit(request.int_param("limit")?)?;
            let page = store
                .history_within(
                    &conv,
                    request.int_param("before_seq")?,
                    request.int_param("after_seq")?,
                    limit,
                    budget,
                )
                .await
                .map_err(unavailable)?;
            Ok(Answer::Plain(
                serde_json::to_value(page).unwrap_or(Value::Null),
            ))
        }
        Method::Sync => {
            let cursor = request.str_param("cursor");
            let limit = limits::sync_limit(request.int_param("limit")?)?;
            let page = store
                .sync_within(me, groups, cursor, limit, budget)
                .await
                .map_err(unavailable)?;
            Ok(Answer::Plain(
                serde_json::to_value(page).unwrap_or(Value::Null),
            ))
        }
        Method::Conversations => {
            let cursor = request.str_param("cursor");
            let limit = limits::conversations_limit(request.int_param("limit")?)?;
            let page = store
                .conversations_within(me, groups, cursor, limit, budget)
                .await
                .map_err(unavailable)?;
            Ok(Answer::Paged {
                result: serde_json::to_value(page.conversations).unwrap_or(Value::Null),
                cursor: page.cursor,
                more: page.more,
            })
        }
        Method::Read => {
            let conv = readable_conv(request, me, groups)?;
            let seq = request
                .int_param("seq")?
                .ok_or_else(|| RequestError::invalid("read needs seq"))?;
            let read_seq = store.mark_read(&conv, me, seq).await.map_err(unavailable)?;
            let conv_id = conv.to_string();
            let receipt = Notice::Receipt {
                conv: &conv_id,
                user: me,
                read_seq,
            }
            .to_bytes();
            for member in store
                .members_to_notify(&conv, me)
                .await
                .map_err(unavailable)?
            {
                bus.publish(topic::sys(&member), receipt.clone()).await;
            }
            Ok(Answer::Plain(
                json!({"conv": conv_id, "read_seq": read_seq}),
            ))
        }
        Method::Members => {
            let conv = readable_conv(request, me, groups)?;
            let conv_id = conv.to_string();
            let mut reads = store.reads(&[conv], None).await.map_err(unavailable)?;
            let reads = reads.remove(&conv_id).unwrap_or_default();
            Ok(Answer::Plain(json!({"conv": conv_id, "reads": reads})))
        }
    }
}

/// The `conv` parameter, if `me` may read it.
fn readable_conv(request: &WireRequest, me: &str, groups: &[String]) -> Result<Conv, RequestError> {
    let raw = request
        .str_param("conv")
        .ok_or_else(|| RequestError::invalid("missing conv"))?;
    let conv = Conv::parse(raw)
        .ok_or_else(|| RequestError::invalid(format!("{raw:?} is not a conversation id")))?;
    if !conv.can_read(me, groups) {
        return Err(RequestError {
            code: code::FORBIDDEN,
            message: format!("not a member of {raw}"),
        });
    }
    Ok(conv)
}
