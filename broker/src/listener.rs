//! The node's MQTT listeners: accept sockets, finish TLS and WebSocket handshakes, and hand
//! each connection to [`crate::conn::serve`].

use crate::node::Context;
use crate::transport::{Io, Transport};
use anyhow::{anyhow, Context as _};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{debug, error, info, warn};

/// How a listener's sockets carry MQTT.
#[derive(Clone)]
pub enum Kind {
    Tcp,
    Tls(TlsAcceptor),
    Ws,
    Wss(TlsAcceptor),
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Tcp => "mqtt",
            Kind::Tls(_) => "mqtt+tls",
            Kind::Ws => "ws",
            Kind::Wss(_) => "wss",
        }
    }
}

/// Binds `addr` and serves it until the process ends. Returns the bound address (the port
/// is chosen by the OS when `addr` has port 0).
pub async fn start(addr: SocketAddr, kind: Kind, ctx: Arc<Context>) -> anyhow::Result<SocketAddr> {
    let listener =
        bind(addr).with_context(|| format!("binding the {} listener on {addr}", kind.name()))?;
    let local = listener.local_addr()?;
    info!(kind = kind.name(), addr = %local, "listening");
    tokio::spawn(accept_loop(listener, kind, ctx));
    Ok(local)
}

/// Accept-queue length asked of the kernel, which caps it at `net.core.somaxconn`
/// (deploy/sysctl.d/90-roost.conf sets 4096). tokio's `TcpListener::bind` asks for 128: too
/// short for every phone reconnecting at once after a Pi reboots.
pub(crate) const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn accept_loop(listener: TcpListener, kind: Kind, ctx: Arc<Context>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = ctx.drain.stopping() => {
                // Dropping the socket refuses new connections: load balancers move on.
                info!(kind = kind.name(), "listener closed: node draining");
                return;
            }
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                error!(error = %e, kind = kind.name(), "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let kind = kind.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            // Handshakes count against the connect timeout like a slow CONNECT does. Boxed:
            // TLS and WebSocket handshakes are large futures, and inline they would size
            // this task (kept for the connection's whole life) for them.
            let upgraded = Box::pin(tokio::time::timeout(
                ctx.limits.connect_timeout,
                upgrade(socket, &kind, ctx.limits.max_packet_size),
            ))
            .await;
            match upgraded {
                Ok(Ok(transport)) => crate::conn::serve(transport, peer, ctx).await,
                Ok(Err(e)) => warn!(%peer, kind = kind.name(), error = %e, "handshake failed"),
                Err(_) => debug!(%peer, kind = kind.name(), "handshake timed out"),
            }
        });
    }
}

async fn upgrade(
    socket: TcpStream,
    kind: &Kind,
    max_packet_size: usize,
) -> anyhow::Result<Transport> {
    let config = ws_config(max_packet_size);
    Ok(match kind {
        Kind::Tcp => Transport::Tcp(socket),
        Kind::Tls(tls) => Transport::Tls(Box::new(tls.accept(socket).await?)),
        Kind::Ws => websocket(Box::new(socket), config).await?,
        Kind::Wss(tls) => websocket(Box::new(tls.accept(socket).await?), config).await?,
    })
}

/// Bytes an MQTT fixed header may add to a packet of the maximum size: the type byte and
/// up to four bytes of remaining length.
const MQTT_FIXED_HEADER_MAX: usize = 5;

/// The WebSocket limits of a node whose largest MQTT packet is `max_packet_size` bytes.
///
/// tungstenite's defaults buffer a frame of up to 16 MiB and a message of up to 64 MiB
/// whatever the MQTT limit is. Here a frame or message longer than one whole MQTT packet
/// of the maximum size is refused from its header, before its payload is buffered (the
/// connection is closed). The read buffer is allocated up front for every connection,
/// so it is kept small. Writes need no bound of their own: every send is flushed before
/// the next one, so the write buffer holds at most one outgoing packet.
/// (The handshake request is bounded by tungstenite itself, at 64 KiB, and by the
/// connect timeout.)
pub(crate) fn ws_config(max_packet_size: usize) -> WebSocketConfig {
    let max = max_packet_size.saturating_add(MQTT_FIXED_HEADER_MAX);
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_frame_size(Some(max))
        .max_message_size(Some(max))
}

/// MQTT over WebSocket: path `/mqtt`, subprotocol `mqtt` (MQTT spec, section 6).
async fn websocket(stream: Box<dyn Io>, config: WebSocketConfig) -> anyhow::Result<Transport> {
    // The callback's types are tungstenite's; its large error is its own choice.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() != "/mqtt" {
            let mut refusal = ErrorResponse::new(Some("MQTT is served at /mqtt".to_owned()));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        let offers_mqtt = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("mqtt"));
        if offers_mqtt {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
        }
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await?;
    Ok(Transport::Ws(Box::new(ws)))
}

/// A TLS acceptor from PEM files: the certificate chain and its private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = {
        let pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing certificates in {}", cert.display()))?
    };
    if certs.is_empty() {
        return Err(anyhow!("no certificate found in {}", cert.display()));
    }
    let key: PrivateKeyDer<'static> = {
        let pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        rustls_pemfile::private_key(&mut pem.as_slice())
            .with_context(|| format!("parsing the private key in {}", key.display()))?
            .ok_or_else(|| anyhow!("no private key found in {}", key.display()))?
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not fit together")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
