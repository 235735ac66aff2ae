//! MQTT framing for one connection, in the version the client spoke in its CONNECT.
//!
//! Decoding and encoding are rumqttd's own (`rumqttd::protocol`), so packets go to its router
//! unchanged. What this adds: choosing the version from CONNECT, and an encoder that never
//! hands v5-only fields to rumqttd's v4 writer, which panics on them.

use bytes::BytesMut;
use rumqttd::protocol::{self, v4::V4, v5::V5, Packet, Protocol as _};

/// The MQTT version a client connected with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

/// What the first bytes of a connection say about its CONNECT.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniff {
    /// Not enough bytes yet.
    NeedMore,
    /// A CONNECT with a protocol level we speak.
    Connect(Version),
    /// A CONNECT with a protocol level (or name) we don't speak.
    UnsupportedLevel(u8),
    /// A CONNECT whose fixed header declares more than the maximum packet size (the
    /// declared remaining length): refused before its body is read.
    TooLarge(usize),
    /// The first packet is not a CONNECT, or its header is garbage.
    NotConnect,
}

/// Looks at the start of a fresh connection to find the protocol level of its CONNECT.
pub fn sniff_connect(buf: &[u8], max_packet_size: usize) -> Sniff {
    let Some(&byte1) = buf.first() else {
        return Sniff::NeedMore;
    };
    if byte1 != 0x10 {
        return Sniff::NotConnect;
    }
    let Some((len, header_len)) = remaining_length(&buf[1..]) else {
        return if buf.len() > 5 {
            Sniff::NotConnect
        } else {
            Sniff::NeedMore
        };
    };
    if len > max_packet_size {
        return Sniff::TooLarge(len);
    }
    // Variable header: protocol name (u16 length + bytes), then the level byte.
    let start = 1 + header_len;
    let Some(name_len) = buf.get(start..start + 2) else {
        return Sniff::NeedMore;
    };
    let name_len = u16::from_be_bytes([name_len[0], name_len[1]]) as usize;
    let Some(&level) = buf.get(start + 2 + name_len) else {
        return Sniff::NeedMore;
    };
    let name = &buf[start + 2..start + 2 + name_len];
    match (name, level) {
        (b"MQTT", 4) => Sniff::Connect(Version::V311),
        (b"MQTT", 5) => Sniff::Connect(Version::V5),
        (b"MQTT", level) | (b"MQIsdp", level) => Sniff::UnsupportedLevel(level),
        _ => Sniff::NotConnect,
    }
}

/// Decodes the MQTT variable-length "remaining length": (value, bytes it took).
/// `None` when more bytes are needed or the encoding is longer than the spec's 4 bytes.
fn remaining_length(buf: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in buf.iter().take(4).enumerate() {
        value |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// One connection's encoder and decoder.
#[derive(Clone, Copy, Debug)]
pub struct Codec {
    pub version: Version,
    max_packet_size: usize,
}

impl Codec {
    pub fn new(version: Version, max_packet_size: usize) -> Codec {
        Codec {
            version,
            max_packet_size,
        }
    }

    /// Takes the next whole packet off the front of `buf`. `Ok(None)` means wait for more
    /// bytes. A frame that declares more than the maximum packet size is refused from its
    /// fixed header, before any of its body is read.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, protocol::Error> {
        if buf.is_empty() {
            return Ok(None);
        }
        let packet = match self.version {
            Version::V311 => V4.read_mut(buf, self.max_packet_size),
            Version::V5 => V5.read_mut(buf, self.max_packet_size),
        };
        match packet {
            Ok(packet) => Ok(Some(packet)),
            Err(protocol::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Appends `packet` to `out` in this connection's version. For v3.1.1 every v5-only
    /// field (properties, reason codes without a v3 meaning) is dropped first.
    pub fn encode(&self, packet: Packet, out: &mut BytesMut) -> Result<usize, protocol::Error> {
        match self.version {
            Version::V5 => V5.write(packet, out),
            Version::V311 => match to_v311(packet) {
                Some(packet) => V4.write(packet, out),
                None => Ok(0),
            },
        }
    }
}

/// The v3.1.1 form of a packet, or `None` when v3.1.1 has no such packet from a server
/// (a server DISCONNECT: v3.1.1 servers just close the connection).
fn to_v311(packet: Packet) -> Option<Packet> {
    use rumqttd::protocol::SubscribeReasonCode as Code;
    Some(match packet {
        Packet::Publish(p, _) => Packet::Publish(p, None),
        Packet::PubAck(p, _) => Packet::PubAck(p, None),
        Packet::PubRec(p, _) => Packet::PubRec(p, None),
        Packet::PubRel(p, _) => Packet::PubRel(p, None),
        Packet::PubComp(p, _) => Packet::PubComp(p, None),
        Packet::SubAck(mut s, _) => {
            for code in &mut s.return_codes {
                *code = match *code {
                    Code::QoS0 | Code::QoS1 | Code::QoS2 => *code,
                    Code::Success(q) => match q {
                        protocol::QoS::AtMostOnce => Code::QoS0,
                        protocol::QoS::AtLeastOnce => Code::QoS1,
                        protocol::QoS::ExactlyOnce => Code::QoS2,
                    },
                    _ => Code::Failure,
                };
            }
            Packet::SubAck(s, None)
        }
        Packet::UnsubAck(u, _) => Packet::UnsubAck(u, None),
        Packet::ConnAck(c, _) => Packet::ConnAck(c, None),
        Packet::PingResp(p) => Packet::PingResp(p),
        Packet::Disconnect(..) => return None,
        // Client-to-server packets are never encoded by the server.
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_frame(name: &[u8], level: u8) -> Vec<u8> {
        let mut body = vec![0, name.len() as u8];
        body.extend_from_slice(name);
        body.extend_from_slice(&[level, 0x02, 0, 60, 0, 0]);
        let mut frame = vec![0x10, body.len() as u8];
        frame.extend(body);
        frame
    }

    /// No packet size limit.
    const ANY: usize = usize::MAX;

    #[test]
    fn sniffs_versions() {
        assert_eq!(
            sniff_connect(&connect_frame(b"MQTT", 4), ANY),
            Sniff::Connect(Version::V311)
        );
        assert_eq!(
            sniff_connect(&connect_frame(b"MQTT", 5), ANY),
            Sniff::Connect(Version::V5)
        );
        assert_eq!(
            sniff_connect(&connect_frame(b"MQIsdp", 3), ANY),
            Sniff::UnsupportedLevel(3)
        );
        assert_eq!(
            sniff_connect(&connect_frame(b"HTTP", 4), ANY),
            Sniff::NotConnect
        );
        assert_eq!(sniff_connect(&[0x30, 0], ANY), Sniff::NotConnect);
        assert_eq!(sniff_connect(&[0x10], ANY), Sniff::NeedMore);
        assert_eq!(
            sniff_connect(&connect_frame(b"MQTT", 4)[..5], ANY),
            Sniff::NeedMore
        );
    }

    #[test]
    fn oversize_connect_refused_from_header() {
        // A CONNECT declaring 200 MiB, and nothing more.
        let header = [0x10u8, 0x80, 0x80, 0x80, 0x64];
        assert_eq!(sniff_connect(&header, 65536), Sniff::TooLarge(200 << 20));
        assert_eq!(
            sniff_connect(&connect_frame(b"MQTT", 4), 65536),
            Sniff::Connect(Version::V311)
        );
    }

    #[test]
    fn oversize_frame_refused_from_header() {
        // Declares 200 MiB and carries nothing: refused without waiting for the body.
        let mut buf = BytesMut::from(&[0x30u8, 0x80, 0x80, 0x80, 0x64][..]);
        let codec = Codec::new(Version::V311, 65536);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(protocol::Error::PayloadSizeLimitExceeded(_))
        ));
    }

    #[test]
    fn publish_header_fields() {
        // QoS 1 publish, topic "a/b", pkid 0x1234, payload "x".
        let frame = [0x32, 8, 0, 3, b'a', b'/', b'b', 0x12, 0x34, b'x'];
        let mut buf = BytesMut::from(&frame[..]);
        let got = Codec::new(Version::V311, 1024)
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        let Packet::Publish(publish, _) = got else {
            panic!("{got:?}")
        };
        assert_eq!((publish.qos() as u8, publish.pkid()), (1, 0x1234));
        assert!(buf.is_empty());
    }

    #[test]
    fn qos3_is_an_error() {
        let mut buf = BytesMut::from(&[0x36u8, 5, 0, 1, b'a', 0, 1][..]);
        assert!(Codec::new(Version::V311, 1024).decode(&mut buf).is_err());
    }

    #[test]
    fn v311_drops_v5_properties_instead_of_panicking() {
        use rumqttd::protocol::{Publish, PublishProperties};
        let props = PublishProperties {
            user_properties: vec![("k".into(), "v".into())],
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        let packet = Packet::Publish(Publish::new("a/b", "hi", false), Some(props));
        let mut out = BytesMut::new();
        Codec::new(Version::V311, 1024)
            .encode(packet, &mut out)
            .unwrap();
        assert_eq!(&out[..], &[0x30, 7, 0, 3, b'a', b'/', b'b', b'h', b'i']);
    }
}
