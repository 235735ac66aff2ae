//! `/api/v1`: what an app can do over MQTT, over HTTP, with a Bearer JWT (docs/protocol.md
//! section 6). Same JSON, same error codes:
//!
//! - `GET conversations/{conv}/messages` reads the history database directly (as it
//!   always has: a read needs no service);
//! - `GET conversations`, `GET sync` and `POST conversations/{conv}/read` are the MQTT
//!   requests, published on `im/req/{user}` and answered by the history service;
//! - `POST conversations/{conv}/messages` publishes the chat message on its topic, through
//!   the same checks as an MQTT PUBLISH, and answers with its `ack`.
//!
//! The last three go through an [`Exchange`]: a short-lived router link acting as a client.

use super::error::ApiError;
use super::exchange::Exchange;
use super::Api;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use roost_auth::Identity;
use roost_history::Conv;
use roost_proto::{limits, notice::code, topic};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{field, info_span, Instrument};

/// How long a send waits for its `ack` before answering 202 (stored later, or resend).
const ACK_WAIT: Duration = Duration::from_secs(10);
/// How long a request waits for its answer before answering 503.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

type Answer = Result<Response, ApiError>;

/// The verified identity of the `Authorization: Bearer` token.
fn identity(api: &Api, headers: &HeaderMap) -> Result<Identity, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <token>"))?;
    api.verifier
        .verify(token.trim())
        .map_err(|e| ApiError::unauthorized(e.to_string()))
}

fn conversation(raw: &str) -> Result<Conv, ApiError> {
    Conv::parse(raw).ok_or_else(|| ApiError::invalid(format!("{raw:?} is not a conversation id")))
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/v1/conversations/{conv}/messages?before_seq=&after_seq=&limit=`: `history`.
pub(super) async fn messages(
    State(api): State<Api>,
    conv: Result<Path<String>, PathRejection>,
    page: Result<Query<PageQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let who = identity(&api, &headers)?;
    let Path(conv) = conv?;
    let Query(page) = page?;
    let conv = conversation(&conv)?;
    if !conv.can_read(&who.user, &who.groups) {
        return Err(ApiError::new(
            code::FORBIDDEN,
            format!("not a member of {conv}"),
        ));
    }
    let limit = limits::history_limit(page.limit)?;
    let unavailable = || ApiError::unavailable("history is unavailable right now; try again");
    let store = api.history.get().ok_or_else(unavailable)?;
    match store
        .history(&conv, page.before_seq, page.after_seq, limit)
        .await
    {
        Ok(page) => Ok(Json(page).into_response()),
        Err(e) if e.is_transient() => Err(unavailable()),
        Err(e) => Err(ApiError::invalid(e.to_string())),
    }
}

#[derive(Deserialize)]
pub(super) struct CursorQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

impl CursorQuery {
    fn params(self) -> Value {
        let mut params = json!({});
        if let Some(cursor) = self.cursor {
            params["cursor"] = json!(cursor);
        }
        if let Some(limit) = self.limit {
            params["limit"] = json!(limit);
        }
        params
    }
}

/// `GET /api/v1/conversations?cursor=&limit=`: the `conversations` request, as
/// `{conversations, cursor, more}`.
pub(super) async fn conversations(
    State(api): State<Api>,
    query: Result<Query<CursorQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let who = identity(&api, &headers)?;
    let Query(query) = query?;
    let answer = request(&api, who, "conversations", query.params()).await?;
    let body = json!({
        "conversations": answer["result"],
        "cursor": answer["cursor"],
        "more": answer["more"],
    });
    Ok(Json(body).into_response())
}

/// `GET /api/v1/sync?cursor=&limit=`: the `sync` request's result.
pub(super) async fn sync(
    State(api): State<Api>,
    query: Result<Query<CursorQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    let who = identity(&api, &headers)?;
    let Query(query) = query?;
    let mut answer = request(&api, who, "sync", query.params()).await?;
    Ok(Json(answer["result"].take()).into_response())
}

#[derive(Deserialize)]
pub(super) struct ReadBody {
    seq: i64,
}

/// `POST /api/v1/conversations/{conv}/read` `{"seq": N}`: the `read` request's result.
pub(super) async fn read(
    State(api): State<Api>,
    conv: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<ReadBody>, JsonRejection>,
) -> Answer {
    let who = identity(&api, &headers)?;
    let Path(conv) = conv?;
    let Json(body) = body?;
    let params = json!({"conv": conv, "seq": body.seq});
    let mut answer = request(&api, who, "read", params).await?;
    Ok(Json(answer["result"].take()).into_response())
}

/// `POST /api/v1/conversations/{conv}/messages` with a chat message as the body: published
/// on the conversation's topic as the user. 200 with the `ack` (`{id, conv, seq, ts}`)
/// once stored; 202 with `{id, conv}` when it was delivered but not stored within
/// [`ACK_WAIT`] (the database is away: send it again later, with the same `id`).
pub(super) async fn send(
    State(api): State<Api>,
    conv: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let who = identity(&api, &headers)?;
    let Path(conv) = conv?;
    let body = body.map_err(|e| {
        let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
        let code = if too_large {
            code::TOO_LARGE
        } else {
            code::INVALID_REQUEST
        };
        ApiError::new(code, e.body_text())
    })?;
    let parsed = conversation(&conv)?;
    let me = who.user.clone();
    let topic = match &parsed {
        Conv::Dm { a, b } if *a == me => topic::dm(b, &me),
        Conv::Dm { a, b } if *b == me => topic::dm(a, &me),
        Conv::Dm { .. } => {
            return Err(ApiError::new(
                code::FORBIDDEN,
                format!("not a member of {conv}"),
            ))
        }
        Conv::Group(group) => topic::group(group, &me),
    };
    let span = info_span!("http_send", user = %me, conv = %conv, client_id = field::Empty);
    async move {
        let _call = api.admit()?;
        let deadline = Instant::now() + ACK_WAIT;
        let mut exchange = Exchange::open(api.ctx.clone(), who, deadline).await?;
        exchange.publish(&topic, &body)?;
        // Valid: the session refused it otherwise.
        let id = crate::notice::payload_id(&body).unwrap_or_default();
        let heard = exchange
            .answer(deadline, |notice| {
                let mine = notice["id"] == id.as_str();
                match notice["type"].as_str() {
                    Some("ack") if mine => Some(Ok(notice.clone())),
                    Some("error") if mine => Some(Err(ApiError::new(
                        notice["code"].as_str().unwrap_or(code::INVALID_PAYLOAD),
                        notice["message"].as_str().unwrap_or_default(),
                    ))),
                    _ => None,
                }
            })
            .await?;
        match heard {
            Some(Ok(mut ack)) => {
                if let Some(fields) = ack.as_object_mut() {
                    fields.remove("type");
                }
                Ok(Json(ack).into_response())
            }
            Some(Err(refused)) => Err(refused),
            None => {
                Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "conv": conv}))).into_response())
            }
        }
    }
    .instrument(span)
    .await
}

/// Publishes a request on `im/req/{user}` and waits for its `result` notice: the notice
/// (`result`, and `cursor`/`more` for pages), or its `error` as an [`ApiError`].
async fn request(api: &Api, who: Identity, method: &str, params: Value) -> Result<Value, ApiError> {
    let span = info_span!(
        "http_request",
        user = %who.user,
        method,
        client_id = field::Empty
    );
    async move {
        let _call = api.admit()?;
        let req = format!("http-{:016x}", rand::random::<u64>());
        let payload = json!({"req": req, "method": method, "params": params}).to_string();
        let deadline = Instant::now() + ANSWER_WAIT;
        let me = who.user.clone();
        let mut exchange = Exchange::open(api.ctx.clone(), who, deadline).await?;
        exchange.publish(&topic::req(&me), payload.as_bytes())?;
        let answer = exchange
            .answer(deadline, |notice| {
                (notice["type"] == "result" && notice["req"] == req.as_str())
                    .then(|| notice.clone())
            })
            .await?
            .ok_or_else(|| {
                ApiError::unavailable("the history service did not answer in time; try again")
            })?;
        if let Some(error) = answer.get("error") {
            return Err(ApiError::new(
                error["code"].as_str().unwrap_or(code::INVALID_REQUEST),
                error["message"].as_str().unwrap_or_default(),
            ));
        }
        Ok(answer)
    }
    .instrument(span)
    .await
}
