//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden, unstable).
//!
//! A network peer reaches the node's parsers through these paths, and the fuzz targets
//! must run them exactly as a connection does: the CONNECT sniff and the v3.1.1/v5
//! decoders with the node's packet size limit, and the WebSocket framing with the node's
//! WebSocket limits in front of the same decoder. Keeping them here lets the internals
//! stay `pub(crate)`.

use crate::codec::{sniff_connect, Codec, Sniff, Version};
use bytes::BytesMut;
use rumqttd::protocol::Packet;
use std::io::{self, Cursor, Read, Write};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Message, WebSocket};

/// A fresh MQTT connection's bytes: the CONNECT sniff, then the decoder of the version it
/// picked, as the session runs them.
pub fn mqtt_connection(input: &[u8], max_packet_size: usize) {
    if let Sniff::Connect(version) = sniff_connect(input, max_packet_size) {
        decode_all(
            &mut BytesMut::from(input),
            Codec::new(version, max_packet_size),
        );
    }
}

/// A signed-in connection's bytes, in one version: every packet decoded, and every
/// PUBLISH re-encoded for subscribers of either version (the node forwards publishes
/// between v3.1.1 and v5 clients).
pub fn mqtt_packets(input: &[u8], v5: bool, max_packet_size: usize) {
    let version = if v5 { Version::V5 } else { Version::V311 };
    decode_all(
        &mut BytesMut::from(input),
        Codec::new(version, max_packet_size),
    );
}

/// A WebSocket connection after its handshake: client frames read with the node's
/// WebSocket limits, binary messages appended to the MQTT buffer and decoded.
pub fn websocket(input: &[u8], v5: bool, max_packet_size: usize) {
    let stream = Peer {
        input: Cursor::new(input),
    };
    let config = crate::listener::ws_config(max_packet_size);
    let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
    let version = if v5 { Version::V5 } else { Version::V311 };
    let codec = Codec::new(version, max_packet_size);
    let mut buf = BytesMut::new();
    while let Ok(message) = ws.read() {
        match message {
            Message::Binary(data) => {
                buf.extend_from_slice(&data);
                if !decode_all(&mut buf, codec) {
                    return;
                }
            }
            Message::Close(_) | Message::Text(_) => return,
            _ => {}
        }
    }
}

/// Decodes until more bytes are needed (`true`) or the stream is refused (`false`).
fn decode_all(buf: &mut BytesMut, codec: Codec) -> bool {
    loop {
        match codec.decode(buf) {
            Ok(Some(Packet::Publish(publish, properties))) => {
                for version in [Version::V311, Version::V5] {
                    let packet = Packet::Publish(publish.clone(), properties.clone());
                    let _ = Codec::new(version, usize::MAX).encode(packet, &mut BytesMut::new());
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// A client socket: reads come from the fuzz input, writes (pongs, closes) go nowhere.
struct Peer<'a> {
    input: Cursor<&'a [u8]>,
}

impl Read for Peer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Peer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
