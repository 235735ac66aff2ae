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
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use roost_auth::Verifier;
use roost_history::Conv;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, error, info};

#[derive(Clone)]
struct Api {
    verifier: Arc<Verifier>,
    history: History,
    drain: Arc<Drain>,
}

pub async fn start(
    config: &roost_config::Http,
    verifier: Arc<Verifier>,
    history: History,
    drain: Arc<Drain>,
    accounts: axum::Router,
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
        })
        .merge(accounts);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the http listener on {}", config.listen))?;
    let local = listener.local_addr()?;
    info!(kind = "http", addr = %local, max_connections = config.max_connections, "listening");
    tokio::spawn(serve(listener, app, config.clone()));
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

/// Serves HTTP/1.1 with bounds a slow or idle peer cannot get around: at most
/// `max_connections` open at once (more are answered 503 and closed), and
/// `header_timeout` to send each request head, which also ends idle keep-alive
/// connections. Without them, unfinished requests held sockets until the process ran out
/// of file descriptors and MQTT sign-ins failed. Only the accounts routes read a request
/// body (JSON, at most 16 KiB); elsewhere a connection whose request has one is closed
/// after the answer instead of being drained.
async fn serve(listener: TcpListener, app: axum::Router, config: roost_config::Http) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                error!(error = %e, kind = "http", "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            crate::metrics::http_refused("max_connections");
            debug!(%peer, "http: connection refused, too many open");
            // Best effort and never waiting: the socket closes either way.
            let _ = socket.try_write(BUSY);
            continue;
        };
        // The peer address, for handlers that limit per address (login).
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let connection = http.serve_connection(TokioIo::new(socket), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                if e.is_timeout() {
                    crate::metrics::http_refused("header_timeout");
                    debug!(%peer, "http: request head not sent in time; closed");
                } else {
                    debug!(%peer, error = %e, "http: connection ended");
                }
            }
            drop(slot);
        });
    }
}

/// Largest request head (request line and headers) read; a longer one gets 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The answer to a connection over `http.max_connections`.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

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
