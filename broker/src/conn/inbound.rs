//! Small rules on what a client sends, shared by sign-in (the will's topic) and the session:
//! which topics may be published to, what a decode error means, and how a publish is made
//! fit for the router (own allocations, the sender's identity stamped on requests).

use crate::notice;
use crate::router::SystemMessage;
use roost_auth::Identity;
use roost_proto::stamp;
use roost_proto::topic::{self, Topic};
use rumqttd::protocol::{self, DisconnectReasonCode, Publish, PublishProperties};

use super::close::Close;

/// The publish with its topic and payload in allocations of their own, on `topic` if given
/// (the history ingress). Decoded, they are slices of the connection's read buffer, and
/// each message the router keeps in a filter's log would keep that whole buffer alive.
pub(crate) fn detach(mut publish: Publish, topic: Option<String>) -> Publish {
    publish.topic = match topic {
        Some(topic) => topic.into(),
        None => bytes::Bytes::copy_from_slice(&publish.topic),
    };
    publish.payload = bytes::Bytes::copy_from_slice(&publish.payload);
    publish
}

/// Removes `roost-` user properties a client set, and stamps the sender's verified identity
/// and the asking connection (client id, Maximum Packet Size) on requests for the history
/// service (see `roost_proto::stamp`).
pub(crate) fn stamp_identity(
    props: Option<PublishProperties>,
    who: &Identity,
    (client_id, max_packet): (&str, Option<u32>),
    topic: Topic,
) -> Option<PublishProperties> {
    let mut props = props;
    if let Some(p) = props.as_mut() {
        stamp::strip(&mut p.user_properties);
    }
    if let Topic::Req { .. } = topic {
        let p = props.get_or_insert_with(Default::default);
        stamp::stamp(
            &mut p.user_properties,
            &who.user,
            &who.groups,
            &who.role.to_string(),
        );
        stamp::stamp_connection(&mut p.user_properties, client_id, max_packet);
    }
    props
}

/// Where an accepted chat message on the stored topic `topic` goes under stamped delivery:
/// the history service's ingress, from which it publishes the stamped copy on `topic` once
/// the message is committed (docs/protocol.md section 4).
pub(crate) fn ingress_topic(topic: &str) -> String {
    roost_proto::topic::ingress(topic).unwrap_or_else(|| topic.to_owned())
}

/// Why a status a user publishes on their own `im/presence/{me}`, or a signal on
/// `im/sig/...`, is refused, if it is (`roost_proto::presence::check_user_status`,
/// `roost_proto::signal::check_signal`). Services publish what they like.
pub(crate) fn ephemeral_refusal(who: &Identity, topic: Topic, payload: &[u8]) -> Option<String> {
    if who.role.is_trusted_backend() {
        return None;
    }
    match topic {
        Topic::Presence { .. } => roost_proto::presence::check_user_status(payload).err(),
        Topic::SigDm { .. } | Topic::SigGroup { .. } => {
            roost_proto::signal::check_signal(payload).err()
        }
        _ => None,
    }
}

/// A Response Topic with a wildcard: a Protocol Error (MQTT 5 section 3.3.2.3.5), whatever
/// the publish.
pub(crate) fn response_topic_error(props: Option<&PublishProperties>) -> Option<Close> {
    let topic = props?.response_topic.as_deref()?;
    topic.contains(['+', '#']).then_some(Close::Protocol(
        DisconnectReasonCode::ProtocolError,
        "wildcard in the Response Topic",
    ))
}

/// The `error` notice refusing a request whose Response Topic is not the asker's own
/// (`im/sys/{me}` or below): the server never publishes where the asker may not read.
/// `None` when the publish is not a request or its Response Topic is fine.
pub(crate) fn foreign_response_topic(
    who: &Identity,
    client_id: &str,
    topic: Topic,
    props: &Option<PublishProperties>,
) -> Option<SystemMessage> {
    let Topic::Req { user } = topic else {
        return None;
    };
    let response = props.as_ref()?.response_topic.as_deref()?;
    if topic::is_own_response_topic(user, response) {
        return None;
    }
    Some(notice::error_at(
        topic::answer_topic(&who.user, client_id),
        None,
        notice::FORBIDDEN,
        format!("response topic {response} refused: answers go only to im/sys/{user} or below it"),
    ))
}

/// Why a connection closes when what the client sent does not decode.
pub(crate) fn decode_error(e: protocol::Error) -> Close {
    use protocol::Error as E;
    let code = match e {
        E::PayloadSizeLimitExceeded(_) => DisconnectReasonCode::PacketTooLarge,
        E::PacketIdZero | E::UnexpectedPacket(_) | E::ProtocolViolation(_) => {
            DisconnectReasonCode::ProtocolError
        }
        // QoS 3 (both QoS bits set) included: a Malformed Packet (MQTT 5 section 3.3.1.2).
        _ => DisconnectReasonCode::MalformedPacket,
    };
    let why = match e {
        E::PayloadSizeLimitExceeded(_) => "packet larger than the maximum packet size",
        E::InvalidQoS(_) => "QoS 3",
        E::TopicNotUtf8 | E::PayloadNotUtf8(_) => "invalid UTF-8",
        E::UnexpectedPacket(_) => "packet a client may not send",
        E::ProtocolViolation(why) => why,
        _ => "malformed packet",
    };
    Close::Protocol(code, why)
}

/// A topic a client may publish to: UTF-8 (checked by the caller), not empty, no wildcards,
/// no NUL, not `$SYS` or `$share` (other `$` topics, like `$app/x`, are the ACL's to judge).
pub fn valid_publish_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 65535
        && !topic.contains(['+', '#', '\0'])
        && !roost_proto::topic::is_reserved(topic)
}
