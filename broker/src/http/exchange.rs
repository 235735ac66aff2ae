//! An HTTP call that acts like an MQTT client of its user: a short-lived router link with
//! the client id `{user}:http-{random}`, an MQTT [`Session`] that checks what it publishes
//! exactly as it checks a connected client's PUBLISH (ACL, chat payload, retain, identity
//! stamp on requests), and subscriptions to the user's notice topics to hear the answer
//! (`ack`, `error`, request `result`).
//!
//! So a message sent over HTTP is stored by the history service and delivered live by the
//! router like any other, and a request is answered by the same code as over MQTT, with its
//! fairness and rate limits. Nothing about presence: an HTTP call is not a device coming
//! online.

use super::error::ApiError;
use crate::codec::{Codec, Version};
use crate::conn::{Actions, Env, Session};
use crate::node::Context;
use crate::router::Link;
use bytes::BytesMut;
use roost_auth::Identity;
use roost_proto::topic;
use rumqttd::protocol::{Filter, Packet, PubAck, PubAckReason, QoS, RetainForwardRule, Subscribe};
use rumqttd::Notification;
use serde_json::Value;
use std::sync::Arc;
use tokio::time::{timeout_at, Instant};
use tracing::debug;

/// The packet id of the one PUBLISH an exchange sends.
const PUBLISH_PKID: u16 = 1;

pub(crate) struct Exchange {
    ctx: Arc<Context>,
    link: Link,
    session: Session,
}

impl Exchange {
    /// Links to the router as a new device of `who` and subscribes to the user's notices:
    /// `im/sys/{user}` and the device's own `im/sys/{user}/{device}` (where answers meant
    /// for one device go). Ready once the router has acknowledged both.
    pub(crate) async fn open(
        ctx: Arc<Context>,
        who: Identity,
        deadline: Instant,
    ) -> Result<Exchange, ApiError> {
        let device = format!("http-{:016x}", rand::random::<u64>());
        let client_id = format!("{}:{device}", who.user);
        tracing::Span::current().record("client_id", client_id.as_str());
        let link = ctx
            .router
            .link(client_id.clone(), true, true, None, None)
            .await
            .map_err(|e| ApiError::unavailable(format!("the node cannot take the call: {e}")))?;
        let sys = topic::sys(&who.user);
        let filters = [format!("{sys}/{device}"), sys]
            .into_iter()
            .map(|path| Filter {
                path,
                qos: QoS::AtLeastOnce,
                nolocal: false,
                preserve_retain: false,
                retain_forward_rule: RetainForwardRule::Never,
            })
            .collect();
        let session = Session::new(Version::V5, who, client_id, false, 0, None);
        let mut exchange = Exchange { ctx, link, session };
        let subscribe = Subscribe { pkid: 1, filters };
        exchange.send(vec![Packet::Subscribe(subscribe, None)])?;
        loop {
            match exchange.next(deadline).await? {
                Notification::DeviceAck(ack) => {
                    if let Packet::SubAck(..) = Packet::from(ack) {
                        return Ok(exchange);
                    }
                }
                _ => continue,
            }
        }
    }

    /// Publishes `payload` to `topic` at QoS 1 through the MQTT session's checks. A refusal
    /// is the `error` notice a client would have got, as an [`ApiError`].
    pub(crate) fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), ApiError> {
        let packet = publish_packet(topic, payload)?;
        let env = Env {
            acl: &self.ctx.acl,
            registry: &self.ctx.registry,
            limits: &self.ctx.limits,
            retained: &self.ctx.retained,
            // The same delivery as an MQTT publish (stored first, then the stamped copy).
            stamped: self.ctx.stamped,
        };
        let mut out = Actions::default();
        if let Err(close) = self.session.on_client(packet, &env, &mut out) {
            // Only a topic no client may publish to gets here (a wildcard, `$`).
            return Err(ApiError::invalid(format!("cannot publish: {close:?}")));
        }
        if let Some(notice) = out.notices.first() {
            return Err(refusal(&notice.payload));
        }
        self.send(out.to_router)
    }

    /// Waits until a notice for which `wanted` returns `Some` arrives, or `deadline`.
    pub(crate) async fn answer<T>(
        &mut self,
        deadline: Instant,
        wanted: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        loop {
            let notification = match self.next(deadline).await {
                Ok(n) => n,
                Err(e) if Instant::now() >= deadline => {
                    debug!(error = %e.message, "http exchange: no answer in time");
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let Notification::Forward(forward) = notification else {
                continue;
            };
            let publish = forward.publish;
            if publish.qos() != QoS::AtMostOnce {
                let puback = PubAck {
                    pkid: publish.pkid(),
                    reason: PubAckReason::Success,
                };
                self.send(vec![Packet::PubAck(puback, None)])?;
            }
            let Ok(notice) = serde_json::from_slice::<Value>(&publish.payload) else {
                continue;
            };
            if let Some(found) = wanted(&notice) {
                return Ok(Some(found));
            }
        }
    }

    fn send(&mut self, packets: Vec<Packet>) -> Result<(), ApiError> {
        if self.link.try_send(packets) {
            Ok(())
        } else {
            Err(ApiError::unavailable("the router closed the call's link"))
        }
    }

    async fn next(&mut self, deadline: Instant) -> Result<Notification, ApiError> {
        match timeout_at(deadline, self.link.recv()).await {
            Ok(Some(notification)) => Ok(notification),
            Ok(None) => Err(ApiError::unavailable("the router closed the call's link")),
            Err(_) => Err(ApiError::unavailable("no answer in time; try again")),
        }
    }
}

/// The `error` notice the session made for a refused publish, as an API error.
fn refusal(notice: &[u8]) -> ApiError {
    let notice: Value = serde_json::from_slice(notice).unwrap_or(Value::Null);
    let field = |name: &str| notice["error"].get(name).or_else(|| notice.get(name));
    let code = field("code").and_then(Value::as_str).unwrap_or("forbidden");
    let message = field("message").and_then(Value::as_str).unwrap_or_default();
    ApiError::new(code, message)
}

/// A QoS 1 PUBLISH as a client's bytes would decode to (rumqttd keeps a publish's QoS and
/// packet id to its own crate, so the packet is made the way the front-end gets them).
fn publish_packet(topic: &str, payload: &[u8]) -> Result<Packet, ApiError> {
    let topic_len = u16::try_from(topic.len()).map_err(|_| ApiError::invalid("topic too long"))?;
    let mut body = Vec::with_capacity(4 + topic.len() + payload.len());
    body.extend_from_slice(&topic_len.to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&PUBLISH_PKID.to_be_bytes());
    body.extend_from_slice(payload);
    let mut frame = BytesMut::with_capacity(body.len() + 5);
    frame.extend_from_slice(&[0x30 | (1 << 1)]);
    let mut remaining = body.len();
    loop {
        let mut byte = (remaining % 128) as u8;
        remaining /= 128;
        if remaining > 0 {
            byte |= 0x80;
        }
        frame.extend_from_slice(&[byte]);
        if remaining == 0 {
            break;
        }
    }
    frame.extend_from_slice(&body);
    let max = frame.len();
    match Codec::new(Version::V311, max).decode(&mut frame) {
        Ok(Some(packet)) => Ok(packet),
        Ok(None) => Err(ApiError::invalid("incomplete publish")),
        Err(e) => Err(ApiError::invalid(format!("not a valid publish: {e:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_packets_decode_at_any_size() {
        for size in [0, 1, 127, 128, 16_383, 16_384, 70_000] {
            let payload = vec![b'x'; size];
            let Packet::Publish(publish, _) = publish_packet("im/dm/bob/alice", &payload).unwrap()
            else {
                panic!("not a publish");
            };
            assert_eq!(publish.qos(), QoS::AtLeastOnce);
            assert_eq!(publish.pkid(), PUBLISH_PKID);
            assert_eq!(&publish.topic[..], b"im/dm/bob/alice");
            assert_eq!(publish.payload.len(), size);
        }
    }

    #[test]
    fn refusals_keep_the_notice_code() {
        let e = refusal(br#"{"type":"error","code":"invalid_payload","message":"no id"}"#);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("invalid_payload", "no id")
        );
    }
}
