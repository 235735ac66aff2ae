//! The node's HTTP side: `/healthz` for load balancers (`ok`, `degraded`, `draining`),
//! `/metrics` for Prometheus, the app API under `/api/v1` ([`api`]: Bearer JWT, the
//! same JSON and error codes as over MQTT, JSON errors for everything else too, CORS for
//! `http.cors_origins`), the web chat app at `/` ([`web`]) and MQTT over WebSocket at
//! `/mqtt` ([`ws`]), so the app needs one origin.

mod api;
mod error;
mod exchange;
mod web;
mod ws;

use crate::drain::{Drain, Health};
use crate::history::History;
use crate::node::Context;
use anyhow::Context as _;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::routing::{get, post};
use error::ApiError;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use roost_auth::Verifier;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tracing::{debug, error, info};

#[derive(Clone)]
struct Api {
    ctx: Arc<Context>,
    verifier: Arc<Verifier>,
    history: History,
    drain: Arc<Drain>,
    /// Calls that act as a client on a router link (sends and requests) at once.
    calls: Arc<Semaphore>,
}

/// Router links HTTP calls may hold at once; more are answered 503 at once. The router
/// keeps a margin of 64 links above `limits.max_connections` for the node's own.
const MAX_CALLS: usize = 32;

impl Api {
    /// A slot for a call that links to the router, unless the node drains or has too many.
    fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if self.drain.health() == Health::Draining {
            return Err(ApiError::unavailable("the node is draining; try another"));
        }
        self.calls.clone().try_acquire_owned().map_err(|_| {
            crate::metrics::http_refused("calls");
            ApiError::unavailable("too many calls at once; try again")
        })
    }
}

pub async fn start(
    config: &roost_config::Http,
    ctx: Arc<Context>,
    history: History,
    accounts: axum::Router,
) -> anyhow::Result<SocketAddr> {
    let metrics = crate::metrics::install();
    let api = Api {
        verifier: ctx.verifier.clone(),
        drain: ctx.drain.clone(),
        ctx,
        history,
        calls: Arc::new(Semaphore::new(MAX_CALLS)),
    };
    let v1 = axum::Router::new()
        .route("/conversations", get(api::conversations))
        .route(
            "/conversations/{conv}/messages",
            get(api::messages).post(api::send),
        )
        .route("/conversations/{conv}/read", post(api::read))
        .route("/sync", get(api::sync))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        // A chat message is the largest body; over it is `too_large`, as over MQTT.
        .layer(DefaultBodyLimit::max(roost_proto::limits::MAX_CHAT_PAYLOAD))
        // The head has `header_timeout`; the body gets as long.
        .layer(RequestBodyTimeoutLayer::new(config.header_timeout));
    let v1 = match cors(&config.cors_origins) {
        Some(layer) => v1.layer(layer),
        None => v1,
    };
    let app = axum::Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        )
        .nest("/api/v1", v1)
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/style.css", get(web::style))
        .route("/mqtt", get(ws::mqtt))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(api)
        .merge(accounts);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the http listener on {}", config.listen))?;
    let local = listener.local_addr()?;
    info!(kind = "http", addr = %local, max_connections = config.max_connections, "listening");
    tokio::spawn(serve(listener, app, config.clone()));
    Ok(local)
}

/// CORS for the API when `http.cors_origins` names origins: preflights answered, and the
/// `Access-Control-Allow-*` headers on answers to those origins. None at all otherwise.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    // Validated with the config (`roost_config`): each is a valid header value.
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
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
/// of file descriptors and MQTT sign-ins failed. Request bodies (the API's POSTs) are
/// bounded in size and in time (`header_timeout` again).
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
        // Upgrades: `/mqtt` turns the connection into MQTT over WebSocket (its slot here
        // is then given back: the MQTT side has its own limits).
        let connection = http
            .serve_connection(TokioIo::new(socket), service)
            .with_upgrades();
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
