//! The node's HTTP side: `/healthz` for load balancers (`ok`, `degraded`, `draining`), `/metrics` for Prometheus, and the
//! history API `GET /api/v1/conversations/{conv}/messages` (Bearer JWT, same rules as the
//! `history` request over MQTT).

use crate::drain::{Drain, Health};
use crate::history::History;
use anyhow::Context as _;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use roost_auth::Verifier;
use roost_history::Conv;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{error, info};

#[derive(Clone)]
struct Api {
    verifier: Arc<Verifier>,
    history: History,
    drain: Arc<Drain>,
}

pub async fn start(
    addr: SocketAddr,
    verifier: Arc<Verifier>,
    history: History,
    drain: Arc<Drain>,
) -> anyhow::Result<SocketAddr> {
    let metrics = crate::metrics::install();
    let app = axum::Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        )
        .route("/api/v1/conversations/{conv}/messages", get(messages))
        .with_state(Api {
            verifier,
            history,
            drain,
        });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the http listener on {addr}"))?;
    let local = listener.local_addr()?;
    info!(kind = "http", addr = %local, "listening");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "http server stopped");
        }
    });
    Ok(local)
}

/// 200 `ok` or `degraded` while the node takes users, 503 `draining` once it does not.
async fn healthz(State(api): State<Api>) -> (StatusCode, String) {
    let health = api.drain.health();
    let status = match health {
        Health::Ok | Health::Degraded => StatusCode::OK,
        Health::Draining => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, format!("{}\n", health.word()))
}

#[derive(Deserialize)]
struct PageQuery {
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: Option<u32>,
}

/// An API error: a status and a JSON body `{"error": {"code", "message"}}`.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.1, "message": self.2}});
        (self.0, Json(body)).into_response()
    }
}

async fn messages(
    State(api): State<Api>,
    Path(conv): Path<String>,
    Query(page): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <token>".to_owned(),
            )
        })?;
    let who = api
        .verifier
        .verify(token.trim())
        .map_err(|e| ApiError(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))?;
    let conv = Conv::parse(&conv).ok_or_else(|| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{conv:?} is not a conversation id"),
        )
    })?;
    if !conv.can_read(&who.user, &who.groups) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{} may not read {conv}", who.user),
        ));
    }
    let unavailable = || {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "history is unavailable right now".to_owned(),
        )
    };
    let store = api.history.get().ok_or_else(unavailable)?;
    let limit = roost_proto::limits::history_limit(page.limit.map(i64::from));
    match store
        .history(&conv, page.before_seq, page.after_seq, limit)
        .await
    {
        Ok(page) => Ok(Json(page).into_response()),
        Err(e) if e.is_transient() => Err(unavailable()),
        Err(e) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            e.to_string(),
        )),
    }
}
