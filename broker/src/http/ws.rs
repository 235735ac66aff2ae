//! MQTT over WebSocket at `/mqtt` on the HTTP listener, so the web app (served at `/`)
//! needs one origin. Only the HTTP upgrade is done here: the upgraded socket becomes the
//! same [`Transport::Ws`] the `ws_listen` listener makes, with the same frame limits, and is
//! served by [`crate::conn::serve`], so sign-in, ACL and limits are the same code.

use super::error::ApiError;
use super::Api;
use crate::drain::Health;
use crate::transport::{Io, Transport};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

pub(super) async fn mqtt(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let key = websocket_key(headers).ok_or_else(|| {
        ApiError::invalid(
            "MQTT over WebSocket is served here: send a WebSocket upgrade (version 13, \
             subprotocol mqtt)",
        )
    })?;
    if api.drain.health() == Health::Draining {
        return Err(ApiError::unavailable("the node is draining; try another"));
    }
    let offers_mqtt = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("mqtt"));
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut request);

    let ctx = api.ctx.clone();
    tokio::spawn(async move {
        // The switch and the WebSocket setup count against the connect timeout, as on the
        // WebSocket listener; the CONNECT then has its own.
        let upgraded = tokio::time::timeout(ctx.limits.connect_timeout, upgrade).await;
        let io: Box<dyn Io> = match upgraded {
            Ok(Ok(upgraded)) => Box::new(TokioIo::new(upgraded)),
            Ok(Err(e)) => return debug!(%peer, error = %e, "http: /mqtt upgrade failed"),
            Err(_) => return debug!(%peer, "http: /mqtt upgrade timed out"),
        };
        let config = crate::listener::ws_config(ctx.limits.max_packet_size);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        crate::conn::serve(Transport::Ws(Box::new(ws)), peer, ctx).await;
    });

    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let out = response.headers_mut();
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    out.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|_| ApiError::invalid("bad Sec-WebSocket-Key"))?,
    );
    if offers_mqtt {
        out.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("mqtt"),
        );
    }
    Ok(response)
}

/// The `Sec-WebSocket-Key` of a WebSocket upgrade request (RFC 6455 section 4.2.1), or
/// None when this is not one.
fn websocket_key(headers: &HeaderMap) -> Option<&str> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return None;
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION)?.as_bytes() != b"13" {
        return None;
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)?
        .to_str()
        .ok()?
        .trim();
    // A base64 nonce of 16 bytes: 24 characters.
    (key.len() == 24).then_some(key)
}
