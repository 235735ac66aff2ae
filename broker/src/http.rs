//! The node's HTTP side: `/healthz` for load balancers, `/metrics` for Prometheus.

use anyhow::Context as _;
use axum::routing::get;
use std::net::SocketAddr;
use tracing::{error, info};

pub async fn start(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let metrics = crate::metrics::install();
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        );
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
