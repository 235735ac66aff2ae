use std::slice::Iter;

use crate::router::Ack;

use super::*;
use bytes::{Buf, BufMut, Bytes, BytesMut};

mod connack;
mod connect;
mod disconnect;
mod ping;
mod puback;
mod pubcomp;
mod publish;
mod pubrec;
mod pubrel;
mod suback;
mod subscribe;
mod unsuback;
mod unsubscribe;

/// MQTT packet type
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    Connect = 1,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    PingReq,
    PingResp,
    Disconnect,
}

#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PropertyType {
    PayloadFormatIndicator = 1,
    MessageExpiryInterval = 2,
    ContentType = 3,
    ResponseTopic = 8,
    CorrelationData = 9,
    SubscriptionIdentifier = 11,
    SessionExpiryInterval = 17,
    AssignedClientIdentifier = 18,
    ServerKeepAlive = 19,
    AuthenticationMethod = 21,
    AuthenticationData = 22,
    RequestProblemInformation = 23,
    WillDelayInterval = 24,
    RequestResponseInformation = 25,
    ResponseInformation = 26,
    ServerReference = 28,
    ReasonString = 31,
    ReceiveMaximum = 33,
    TopicAliasMaximum = 34,
    TopicAlias = 35,
    MaximumQos = 36,
    RetainAvailable = 37,
    UserProperty = 38,
    MaximumPacketSize = 39,
    WildcardSubscriptionAvailable = 40,
    SubscriptionIdentifierAvailable = 41,
    SharedSubscriptionAvailable = 42,
}

/// Packet type from a byte
///
/// ```ignore
///          7                          3                          0
///          +--------------------------+--------------------------+
/// byte 1   | MQTT Control Packet Type | Flags for each type      |
///          +--------------------------+--------------------------+
///          |         Remaining Bytes Len  (1/2/3/4 bytes)        |
///          +-----------------------------------------------------+
///
/// <https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc385349207>
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd)]
pub struct FixedHeader {
    /// First byte of the stream. Used to identify packet types and
    /// several flags
    byte1: u8,
    /// Length of fixed header. Byte 1 + (1..4) bytes. So fixed header
    /// len can vary from 2 bytes to 5 bytes
    /// 1..4 bytes are variable length encoded to represent remaining length
    fixed_header_len: usize,
    /// Remaining length of the packet. Doesn't include fixed header bytes
    /// Represents variable header + payload size
    remaining_len: usize,
}

impl FixedHeader {
    pub fn new(byte1: u8, remaining_len_len: usize, remaining_len: usize) -> FixedHeader {
        FixedHeader {
            byte1,
            fixed_header_len: remaining_len_len + 1,
            remaining_len,
        }
    }

    pub fn packet_type(&self) -> Result<PacketType, Error> {
        let num = self.byte1 >> 4;
        match num {
            1 => Ok(PacketType::Connect),
            2 => Ok(PacketType::ConnAck),
            3 => Ok(PacketType::Publish),
            4 => Ok(PacketType::PubAck),
            5 => Ok(PacketType::PubRec),
            6 => Ok(PacketType::PubRel),
            7 => Ok(PacketType::PubComp),
            8 => Ok(PacketType::Subscribe),
            9 => Ok(PacketType::SubAck),
            10 => Ok(PacketType::Unsubscribe),
            11 => Ok(PacketType::UnsubAck),
            12 => Ok(PacketType::PingReq),
            13 => Ok(PacketType::PingResp),
            14 => Ok(PacketType::Disconnect),
            _ => Err(Error::InvalidPacketType(num)),
        }
    }

    /// Returns the size of full packet (fixed header + variable header + payload)
    /// Fixed header is enough to get the size of a frame in the stream
    pub fn frame_length(&self) -> usize {
        self.fixed_header_len + self.remaining_len
    }
}

fn property(num: u8) -> Result<PropertyType, Error> {
    let property = match num {
        1 => PropertyType::PayloadFormatIndicator,
        2 => PropertyType::MessageExpiryInterval,
        3 => PropertyType::ContentType,
        8 => PropertyType::ResponseTopic,
        9 => PropertyType::CorrelationData,
        11 => PropertyType::SubscriptionIdentifier,
        17 => PropertyType::SessionExpiryInterval,
        18 => PropertyType::AssignedClientIdentifier,
        19 => PropertyType::ServerKeepAlive,
        21 => PropertyType::AuthenticationMethod,
        22 => PropertyType::AuthenticationData,
        23 => PropertyType::RequestProblemInformation,
        24 => PropertyType::WillDelayInterval,
        25 => PropertyType::RequestResponseInformation,
        26 => PropertyType::ResponseInformation,
        28 => PropertyType::ServerReference,
        31 => PropertyType::ReasonString,
        33 => PropertyType::ReceiveMaximum,
        34 => PropertyType::TopicAliasMaximum,
        35 => PropertyType::TopicAlias,
        36 => PropertyType::MaximumQos,
        37 => PropertyType::RetainAvailable,
        38 => PropertyType::UserProperty,
        39 => PropertyType::MaximumPacketSize,
        40 => PropertyType::WildcardSubscriptionAvailable,
        41 => PropertyType::SubscriptionIdentifierAvailable,
        42 => PropertyType::SharedSubscriptionAvailable,
        num => return Err(Error::InvalidPropertyType(num)),
    };

    Ok(property)
}

/// Checks if the stream has enough bytes to frame a packet and returns fixed header
/// only if a packet can be framed with existing bytes in the `stream`.
/// The passed stream doesn't modify parent stream's cursor. If this function
/// returned an error, next `check` on the same parent stream is forced start
/// with cursor at 0 again (Iter is owned. Only Iter's cursor is changed internally)
pub fn check(stream: Iter<u8>, max_packet_size: usize) -> Result<FixedHeader, Error> {
    // Create fixed header if there are enough bytes in the stream
    // to frame full packet
    let stream_len = stream.len();
    let fixed_header = parse_fixed_header(stream)?;

    // Don't let rogue connections attack with huge payloads.
    // Disconnect them before reading all that data
    if fixed_header.remaining_len > max_packet_size {
        return Err(Error::PayloadSizeLimitExceeded(fixed_header.remaining_len));
    }

    // If the current call fails due to insufficient bytes in the stream,
    // after calculating remaining length, we extend the stream
    let frame_length = fixed_header.frame_length();
    if stream_len < frame_length {
        return Err(Error::InsufficientBytes(frame_length - stream_len));
    }

    Ok(fixed_header)
}

/// Parses fixed header
fn parse_fixed_header(mut stream: Iter<u8>) -> Result<FixedHeader, Error> {
    // At least 2 bytes are necessary to frame a packet
    let stream_len = stream.len();
    if stream_len < 2 {
        return Err(Error::InsufficientBytes(2 - stream_len));
    }

    let byte1 = stream.next().unwrap();
    let (len_len, len) = length(stream)?;

    Ok(FixedHeader::new(*byte1, len_len, len))
}

/// Parses variable byte integer in the stream and returns the length
/// and number of bytes that make it. Used for remaining length calculation
/// as well as for calculating property lengths
fn length(stream: Iter<u8>) -> Result<(usize, usize), Error> {
    let mut len: usize = 0;
    let mut len_len = 0;
    let mut done = false;
    let mut shift = 0;

    // Use continuation bit at position 7 to continue reading next
    // byte to frame 'length'.
    // Stream 0b1xxx_xxxx 0b1yyy_yyyy 0b1zzz_zzzz 0b0www_wwww will
    // be framed as number 0bwww_wwww_zzz_zzzz_yyy_yyyy_xxx_xxxx
    for byte in stream {
        len_len += 1;
        let byte = *byte as usize;
        len += (byte & 0x7F) << shift;

        // stop when continue bit is 0
        done = (byte & 0x80) == 0;
        if done {
            break;
        }

        shift += 7;

        // Only a max of 4 bytes allowed for remaining length
        // more than 4 shifts (0, 7, 14, 21) implies bad length
        if shift > 21 {
            return Err(Error::MalformedRemainingLength);
        }
    }

    // Not enough bytes to frame remaining length. wait for
    // one more byte
    if !done {
        return Err(Error::InsufficientBytes(1));
    }

    Ok((len_len, len))
}

/// Reads a series of bytes with a length from a byte stream
fn read_mqtt_bytes(stream: &mut Bytes) -> Result<Bytes, Error> {
    let len = read_u16(stream)? as usize;

    // Prevent attacks with wrong remaining length. This method is used in
    // `packet.assembly()` with (enough) bytes to frame packet. Ensures that
    // reading variable len string or bytes doesn't cross promised boundary
    // with `read_fixed_header()`
    if len > stream.len() {
        return Err(Error::BoundaryCrossed(len));
    }

    Ok(stream.split_to(len))
}

/// Reads a string from bytes stream
fn read_mqtt_string(stream: &mut Bytes) -> Result<String, Error> {
    let s = read_mqtt_bytes(stream)?;
    match String::from_utf8(s.to_vec()) {
        Ok(v) => Ok(v),
        Err(_e) => Err(Error::TopicNotUtf8),
    }
}

/// Serializes bytes to stream (including length)
fn write_mqtt_bytes(stream: &mut BytesMut, bytes: &[u8]) {
    stream.put_u16(bytes.len() as u16);
    stream.extend_from_slice(bytes);
}

/// Serializes a string to stream
fn write_mqtt_string(stream: &mut BytesMut, string: &str) {
    write_mqtt_bytes(stream, string.as_bytes());
}

/// Writes remaining length to stream and returns number of bytes for remaining length
fn write_remaining_length(stream: &mut BytesMut, len: usize) -> Result<usize, Error> {
    if len > 268_435_455 {
        return Err(Error::PayloadTooLong);
    }

    let mut done = false;
    let mut x = len;
    let mut count = 0;

    while !done {
        let mut byte = (x % 128) as u8;
        x /= 128;
        if x > 0 {
            byte |= 128;
        }

        stream.put_u8(byte);
        count += 1;
        done = x == 0;
    }

    Ok(count)
}

/// Return number of remaining length bytes required for encoding length
fn len_len(len: usize) -> usize {
    if len >= 2_097_152 {
        4
    } else if len >= 16_384 {
        3
    } else if len >= 128 {
        2
    } else {
        1
    }
}

/// After collecting enough bytes to frame a packet (packet's frame())
/// , It's possible that content itself in the stream is wrong. Like expected
/// packet id or qos not being present. In cases where `read_mqtt_string` or
/// `read_mqtt_bytes` exhausted remaining length but packet framing expects to
/// parse qos next, these pre checks will prevent `bytes` crashes
fn read_u16(stream: &mut Bytes) -> Result<u16, Error> {
    if stream.len() < 2 {
        return Err(Error::MalformedPacket);
    }

    Ok(stream.get_u16())
}

fn read_u8(stream: &mut Bytes) -> Result<u8, Error> {
    if stream.is_empty() {
        return Err(Error::MalformedPacket);
    }

    Ok(stream.get_u8())
}

fn read_u32(stream: &mut Bytes) -> Result<u32, Error> {
    if stream.len() < 4 {
        return Err(Error::MalformedPacket);
    }

    Ok(stream.get_u32())
}

#[derive(Debug, Clone)]
pub struct V5;

/// ROOST PATCH: one reader for both sides. `from_server` is false for the packets a server
/// reads: those only a server sends are refused by type, before their body is parsed (upstream
/// reached `unreachable!()` on CONNACK and UNSUBACK). AUTH (type 15) is refused as
/// `UnexpectedPacket` too: enhanced authentication is not supported.
fn read(stream: &mut BytesMut, max_size: usize, from_server: bool) -> Result<Packet, Error> {
    let fixed_header = check(stream.iter(), max_size)?;

    // Test with a stream with exactly the size to check border panics
    let packet = stream.split_to(fixed_header.frame_length());
    if fixed_header.byte1 >> 4 == 15 && !from_server {
        return Err(Error::UnexpectedPacket("AUTH"));
    }
    let packet_type = fixed_header.packet_type()?;
    if !from_server {
        let name = match packet_type {
            PacketType::ConnAck => Some("CONNACK"),
            PacketType::SubAck => Some("SUBACK"),
            PacketType::UnsubAck => Some("UNSUBACK"),
            PacketType::PingResp => Some("PINGRESP"),
            _ => None,
        };
        if let Some(name) = name {
            return Err(Error::UnexpectedPacket(name));
        }
        check_client_flags(fixed_header.byte1)?;
    }
    // The whole frame is here: a body that ends early is malformed, not a reason to wait.
    read_body(fixed_header, packet_type, packet).map_err(|e| match e {
        Error::InsufficientBytes(_) => Error::MalformedPacket,
        e => e,
    })
}

fn read_body(
    fixed_header: FixedHeader,
    packet_type: PacketType,
    packet: BytesMut,
) -> Result<Packet, Error> {
    if fixed_header.remaining_len == 0 {
        // no payload packets
        return match packet_type {
            PacketType::PingReq => Ok(Packet::PingReq(PingReq)),
            PacketType::PingResp => Ok(Packet::PingResp(PingResp)),
            PacketType::Disconnect => Ok(Packet::Disconnect(
                Disconnect {
                    reason_code: DisconnectReasonCode::NormalDisconnection,
                },
                None,
            )),
            _ => Err(Error::PayloadRequired),
        };
    }

    let packet = packet.freeze();
    let packet = match packet_type {
        PacketType::Connect => {
            let (connect, properties, will, willproperties, login) =
                connect::read(fixed_header, packet)?;
            Packet::Connect(
                connect,
                properties.map(Box::new),
                will,
                willproperties.map(Box::new),
                login,
            )
        }
        PacketType::Publish => {
            let (publish, properties) = publish::read(fixed_header, packet)?;
            Packet::Publish(publish, properties)
        }
        PacketType::PubAck => {
            let (puback, properties) = puback::read(fixed_header, packet)?;
            Packet::PubAck(puback, properties)
        }
        PacketType::Subscribe => {
            let (subscribe, properties) = subscribe::read(fixed_header, packet)?;
            Packet::Subscribe(subscribe, properties)
        }
        PacketType::SubAck => {
            let (suback, properties) = suback::read(fixed_header, packet)?;
            Packet::SubAck(suback, properties)
        }
        PacketType::Unsubscribe => {
            let (unsubscribe, properties) = unsubscribe::read(fixed_header, packet)?;
            Packet::Unsubscribe(unsubscribe, properties)
        }
        PacketType::PingReq => Packet::PingReq(PingReq),
        PacketType::PingResp => Packet::PingResp(PingResp),
        PacketType::Disconnect => {
            let (disconnect, properties) = disconnect::read(fixed_header, packet)?;
            Packet::Disconnect(disconnect, properties)
        }
        PacketType::PubRec => {
            let (pubrec, properties) = pubrec::read(fixed_header, packet)?;
            Packet::PubRec(pubrec, properties)
        }
        PacketType::PubRel => {
            let (pubrel, properties) = pubrel::read(fixed_header, packet)?;
            Packet::PubRel(pubrel, properties)
        }
        PacketType::PubComp => {
            let (pubcomp, properties) = pubcomp::read(fixed_header, packet)?;
            Packet::PubComp(pubcomp, properties)
        }
        PacketType::ConnAck => {
            let (connack, properties) = connack::read(fixed_header, packet)?;
            Packet::ConnAck(connack, properties)
        }
        PacketType::UnsubAck => {
            let (unsuback, properties) = unsuback::read(fixed_header, packet)?;
            Packet::UnsubAck(unsuback, properties)
        }
    };

    Ok(packet)
}

impl Protocol for V5 {
    fn read_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, Error> {
        read(stream, max_size, false)
    }

    fn read_reply_mut(&mut self, stream: &mut BytesMut, max_size: usize) -> Result<Packet, Error> {
        read(stream, max_size, true)
    }

    fn write(&self, packet: Packet, buffer: &mut BytesMut) -> Result<usize, Error> {
        let size = match packet {
            Packet::Connect(
                connect,
                connect_properties,
                last_will,
                last_will_properties,
                login,
            ) => connect::write(
                &connect,
                &connect_properties.map(|p| *p),
                &last_will,
                &last_will_properties.map(|p| *p),
                &login,
                buffer,
            )?,
            Packet::ConnAck(connack, properties) => connack::write(&connack, &properties, buffer)?,
            Packet::Publish(publish, properties) => publish::write(&publish, &properties, buffer)?,
            Packet::PubAck(puback, properties) => puback::write(&puback, &properties, buffer)?,
            Packet::Subscribe(subscribe, properties) => {
                subscribe::write(&subscribe, &properties, buffer)?
            }
            Packet::SubAck(suback, properties) => suback::write(&suback, &properties, buffer)?,
            Packet::PubRec(pubrec, properties) => pubrec::write(&pubrec, &properties, buffer)?,
            Packet::PubRel(pubrel, properties) => pubrel::write(&pubrel, &properties, buffer)?,
            Packet::PubComp(pubcomp, properties) => pubcomp::write(&pubcomp, &properties, buffer)?,
            Packet::Unsubscribe(unsubscribe, properties) => {
                unsubscribe::write(&unsubscribe, &properties, buffer)?
            }
            Packet::UnsubAck(unsuback, properties) => {
                unsuback::write(&unsuback, &properties, buffer)?
            }
            Packet::Disconnect(disconnect, properties) => {
                disconnect::write(&disconnect, &properties, buffer)?
            }
            Packet::PingReq(pingreq) => ping::pingreq::write(buffer)?,
            Packet::PingResp(pingresp) => ping::pingresp::write(buffer)?,
            _ => unreachable!(),
        };
        Ok(size)
    }
}

/// ROOST PATCH: what a server reads from a client never panics.
#[cfg(test)]
mod roost_read_test {
    use super::*;

    fn read_one(bytes: &[u8]) -> Result<Packet, Error> {
        V5.read_mut(&mut BytesMut::from(bytes), 1024)
    }

    #[test]
    fn server_only_packets_are_errors() {
        let cases: [(&[u8], &str); 5] = [
            (&[0x20, 0x03, 0x00, 0x00, 0x00], "CONNACK"),
            (&[0x90, 0x04, 0x00, 0x01, 0x00, 0x00], "SUBACK"),
            (&[0xb0, 0x04, 0x00, 0x01, 0x00, 0x00], "UNSUBACK"),
            (&[0xd0, 0x00], "PINGRESP"),
            (&[0xf0, 0x02, 0x00, 0x00], "AUTH"),
        ];
        for (bytes, name) in cases {
            // Followed by a PINGREQ: the refused frame is consumed, nothing after it is lost.
            let mut stream = BytesMut::from(bytes);
            stream.extend_from_slice(&[0xc0, 0x00]);
            assert_eq!(
                V5.read_mut(&mut stream, 1024),
                Err(Error::UnexpectedPacket(name)),
                "{name}"
            );
            assert!(matches!(
                V5.read_mut(&mut stream, 1024),
                Ok(Packet::PingReq(_))
            ));
        }
    }

    #[test]
    fn a_body_cut_short_is_malformed_not_insufficient() {
        // SUBSCRIBE whose property length is a variable byte integer that never ends.
        assert_eq!(
            read_one(&[0x82, 0x03, 0x00, 0x01, 0x80]),
            Err(Error::MalformedPacket)
        );
        // A frame that has not fully arrived still asks for more bytes.
        assert_eq!(
            read_one(&[0x82, 0x05, 0x00]),
            Err(Error::InsufficientBytes(4))
        );
    }

    #[test]
    fn replies_decode_on_the_client_side() {
        let mut connack = BytesMut::from(&[0x20u8, 0x03, 0x00, 0x00, 0x00][..]);
        assert!(matches!(
            V5.read_reply_mut(&mut connack, 1024),
            Ok(Packet::ConnAck(..))
        ));
        let mut unsuback = BytesMut::from(&[0xb0u8, 0x04, 0x00, 0x01, 0x00, 0x00][..]);
        assert!(matches!(
            V5.read_reply_mut(&mut unsuback, 1024),
            Ok(Packet::UnsubAck(..))
        ));
    }

    /// ROOST PATCH: what MQTT 5 calls malformed (0x81) or a protocol error (0x82) in a
    /// client's packet is a decode error; upstream accepted all of these.
    #[test]
    fn invalid_client_packets_are_refused() {
        let connect = |flags: u8, props: &[u8], tail: &[u8]| {
            let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, flags, 0, 60];
            body.push(props.len() as u8);
            body.extend_from_slice(props);
            body.extend_from_slice(&[0, 1, b'c']);
            body.extend_from_slice(tail);
            let mut frame = vec![0x10, body.len() as u8];
            frame.extend(body);
            frame
        };
        let subscribe = |byte1: u8, filter: &[u8], options: u8| {
            let mut frame = vec![byte1, (6 + filter.len()) as u8, 0, 1, 0, 0];
            frame.push(filter.len() as u8);
            frame.extend_from_slice(filter);
            frame.push(options);
            frame
        };
        let malformed = Error::MalformedPacket;
        let protocol = Error::ProtocolViolation;
        let cases: Vec<(&str, Vec<u8>, Error)> = vec![
            ("CONNECT reserved flag", connect(0x03, &[], &[]), malformed),
            (
                "password flag, no password",
                connect(0x42, &[], &[]),
                malformed,
            ),
            (
                "CONNECT property twice",
                connect(0x02, &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2], &[]),
                protocol("a property given more than once"),
            ),
            ("SUBSCRIBE flags 0000", subscribe(0x80, b"a", 1), malformed),
            (
                "reserved option bits",
                subscribe(0x82, b"a", 0x41),
                malformed,
            ),
            (
                "Retain Handling 3",
                subscribe(0x82, b"a", 0x30),
                protocol("Retain Handling 3"),
            ),
            (
                "No Local on $share",
                subscribe(0x82, b"$share/g/a", 0x04),
                protocol("No Local on a shared subscription"),
            ),
            (
                "empty SUBSCRIBE",
                vec![0x82, 3, 0, 1, 0],
                protocol("SUBSCRIBE without a topic filter"),
            ),
            (
                "empty UNSUBSCRIBE",
                vec![0xa2, 3, 0, 1, 0],
                protocol("UNSUBSCRIBE without a topic filter"),
            ),
            (
                "UNSUBSCRIBE flags 0000",
                vec![0xa0, 6, 0, 1, 0, 0, 1, b'a'],
                malformed,
            ),
            ("PUBREL flags 0000", vec![0x60, 2, 0, 1], malformed),
            ("PINGREQ flags 0001", vec![0xc1, 0], malformed),
            (
                "DUP on QoS 0",
                vec![0x38, 5, 0, 1, b'a', 0, b'x'],
                malformed,
            ),
            (
                "PUBLISH property twice",
                vec![0x30, 9, 0, 1, b'a', 4, 0x01, 1, 0x01, 1, b'x'],
                protocol("a property given more than once"),
            ),
        ];
        for (name, bytes, error) in cases {
            // Followed by a PINGREQ: the refused frame is consumed, nothing after it is lost.
            let mut stream = BytesMut::from(&bytes[..]);
            stream.extend_from_slice(&[0xc0, 0x00]);
            assert_eq!(V5.read_mut(&mut stream, 1024), Err(error), "{name}");
            assert!(matches!(
                V5.read_mut(&mut stream, 1024),
                Ok(Packet::PingReq(_))
            ));
        }

        // The valid neighbours of those still decode.
        let user = [0x26, 0, 1, b'k', 0, 1, b'v'];
        let mut twice = vec![0x30, 19, 0, 1, b'a', 14];
        twice.extend_from_slice(&user);
        twice.extend_from_slice(&user);
        twice.push(b'x');
        let valid: Vec<Vec<u8>> = vec![
            connect(0x02, &[], &[]),
            connect(0x42, &[], &[0, 1, b'p']),
            subscribe(0x82, b"a", 0x2d),
            vec![0xa2, 6, 0, 1, 0, 0, 1, b'a'],
            vec![0x62, 2, 0, 1],
            vec![0x3a, 7, 0, 1, b'a', 0, 1, 0, b'x'],
            twice,
        ];
        for bytes in valid {
            assert!(
                read_one(&bytes).is_ok(),
                "{bytes:x?}: {:?}",
                read_one(&bytes)
            );
        }
    }
}
