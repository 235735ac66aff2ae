//! MQTT 5 topic aliases a client sets on its PUBLISHes (`limits.topic_alias_maximum` of
//! them, announced in CONNACK): a publish with a topic and an alias maps the alias to the
//! topic, a later one with an empty topic and the alias means that topic. The table lives
//! with the connection (aliases do not outlive it, MQTT 5 section 3.3.2.3.4) and is bounded:
//! at most the maximum number of topics, each no larger than a packet.

use super::close::Close;
use super::session::Env;
use bytes::Bytes;
use rumqttd::protocol::DisconnectReasonCode;

/// One connection's aliases: `topics[alias - 1]`, empty where unset. Grown only as far as
/// the highest alias used.
#[derive(Default)]
pub(crate) struct Aliases {
    topics: Vec<Bytes>,
}

impl Aliases {
    /// The topic a PUBLISH carrying `topic` and `alias` is for, remembering a new mapping.
    /// An alias of 0 or above the maximum is a Topic Alias Invalid (0x94); an empty topic
    /// with an alias never set is a Protocol Error (0x82).
    pub(crate) fn resolve(&mut self, alias: u16, topic: Bytes, env: &Env) -> Result<Bytes, Close> {
        if alias == 0 || alias > env.limits.topic_alias_maximum {
            return Err(Close::Protocol(
                DisconnectReasonCode::TopicAliasInvalid,
                "topic alias 0 or above the Topic Alias Maximum",
            ));
        }
        let slot = usize::from(alias - 1);
        if topic.is_empty() {
            return match self.topics.get(slot) {
                Some(known) if !known.is_empty() => Ok(known.clone()),
                _ => Err(Close::Protocol(
                    DisconnectReasonCode::ProtocolError,
                    "topic alias used before it was set",
                )),
            };
        }
        if self.topics.len() <= slot {
            self.topics.resize(slot + 1, Bytes::new());
        }
        // Its own allocation: `topic` is a slice of the connection's read buffer.
        let topic = Bytes::copy_from_slice(&topic);
        self.topics[slot] = topic.clone();
        Ok(topic)
    }
}
