//! One client byte stream, whatever carries it: TCP, TLS, WebSocket or WebSocket over TLS.
//!
//! MQTT over WebSocket puts MQTT bytes in binary frames with no alignment to packets, so the
//! session treats every transport as a plain byte stream: `read_into` appends whatever
//! arrived, `write_all` sends bytes.

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// A stream that is either plain TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// WebSocket over TCP or TLS.
    Ws(Box<WebSocketStream<Box<dyn Io>>>),
}

impl Transport {
    /// Which listener kind this is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Tcp(_) => "tcp",
            Transport::Tls(_) => "tls",
            Transport::Ws(_) => "ws",
        }
    }

    /// Appends the next bytes that arrive to `buf`; `Ok(0)` means the peer closed.
    ///
    /// Cancel safe: a WebSocket message is appended whole or not at all, and the stream
    /// reads of TCP and TLS are cancel safe themselves.
    pub async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read_buf(buf).await,
            Transport::Tls(s) => s.read_buf(buf).await,
            Transport::Ws(ws) => loop {
                match ws.next().await {
                    None => return Ok(0),
                    Some(Err(WsError::Capacity(e))) => {
                        // Refused from the frame header, before its payload was buffered
                        // (see `listener::ws_config`).
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("WebSocket frame over the maximum packet size: {e}"),
                        ));
                    }
                    Some(Err(e)) => return Err(io::Error::other(e)),
                    Some(Ok(Message::Binary(data))) => {
                        if data.is_empty() {
                            continue;
                        }
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                    Some(Ok(Message::Close(_))) => return Ok(0),
                    // Pings are answered by tungstenite itself; text frames are not MQTT.
                    Some(Ok(Message::Text(_))) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "text frame on an MQTT WebSocket",
                        ))
                    }
                    Some(Ok(_)) => continue,
                }
            },
        }
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(bytes).await,
            Transport::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Transport::Ws(ws) => ws
                .send(Message::binary(bytes.to_vec()))
                .await
                .map_err(io::Error::other),
        }
    }

    /// Closes the write side so a refused client sees its CONNACK before the socket goes.
    pub async fn shutdown(&mut self) {
        let _ = match self {
            Transport::Tcp(s) => s.shutdown().await,
            Transport::Tls(s) => s.shutdown().await,
            Transport::Ws(ws) => SinkExt::close(&mut **ws).await.map_err(io::Error::other),
        };
    }
}
