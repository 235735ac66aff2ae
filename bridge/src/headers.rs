//! The NATS headers that carry a publish's MQTT meaning across the cluster.
//!
//! Why: NATS carries a subject, a payload and headers; everything else a subscriber on
//! another node may see (QoS, retain, the MQTT 5 properties a chat client uses) travels
//! here, with the origin node (split horizon, and the retained stream's owner) and the
//! origin's publish sequence (so one message that matches several of a node's NATS
//! subscriptions is delivered there once, see `dedup`). Text values are percent-encoded
//! (`%`, space, controls, non-ASCII), since a header value cannot hold a line break;
//! correlation data is binary, so it is base64. Unknown headers are ignored, so a newer
//! node may add some.

use async_nats::HeaderMap;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

const ORIGIN: &str = "Roost-Origin";
const SEQ: &str = "Roost-Seq";
const QOS: &str = "Roost-QoS";
const RETAIN: &str = "Roost-Retain";
const CONTENT_TYPE: &str = "Roost-Content-Type";
const RESPONSE_TOPIC: &str = "Roost-Response-Topic";
const CORRELATION_DATA: &str = "Roost-Correlation-Data";
const USER_PROPERTY: &str = "Roost-User-Property";
const SERVED: &str = "Roost-Served";

/// Escaped in text values; `=` too, since a user property is `key=value`.
const TEXT: &AsciiSet = &CONTROLS.add(b'%').add(b' ').add(b'=');

/// Headers that are not a roost publish, or a damaged one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("header {0} is missing")]
    Missing(&'static str),
    #[error("header {0} has a bad value")]
    Bad(&'static str),
}

/// Everything about a publish but its topic and payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// `cluster.node_id` of the node where the message entered.
    pub(crate) origin: String,
    /// That node's count of messages it put on NATS, from 1.
    pub(crate) seq: u64,
    pub(crate) qos: u8,
    pub(crate) retain: bool,
    pub(crate) content_type: Option<String>,
    pub(crate) response_topic: Option<String>,
    pub(crate) correlation_data: Option<Bytes>,
    /// In order, repeats allowed, as MQTT 5 has them.
    pub(crate) user_properties: Vec<(String, String)>,
    /// The shared subscriptions `(group, filter)` the origin node delivered the message
    /// to with members of its own (`share`).
    pub(crate) served: Vec<(String, String)>,
}

impl Meta {
    pub(crate) fn to_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, text(&self.origin));
        headers.insert(SEQ, self.seq.to_string());
        headers.insert(QOS, self.qos.to_string());
        if self.retain {
            headers.insert(RETAIN, "1");
        }
        if let Some(value) = &self.content_type {
            headers.insert(CONTENT_TYPE, text(value));
        }
        if let Some(value) = &self.response_topic {
            headers.insert(RESPONSE_TOPIC, text(value));
        }
        if let Some(value) = &self.correlation_data {
            headers.insert(CORRELATION_DATA, BASE64.encode(value));
        }
        for (key, value) in &self.user_properties {
            headers.append(USER_PROPERTY, format!("{}={}", text(key), text(value)));
        }
        for (group, filter) in &self.served {
            headers.append(SERVED, format!("{}={}", text(group), text(filter)));
        }
        headers
    }

    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Meta, HeaderError> {
        let get = |name| headers.get(name).map(|v| v.as_str());
        let origin = untext(get(ORIGIN).ok_or(HeaderError::Missing(ORIGIN))?)
            .filter(|origin| !origin.is_empty())
            .ok_or(HeaderError::Bad(ORIGIN))?;
        let seq = get(SEQ)
            .ok_or(HeaderError::Missing(SEQ))?
            .parse()
            .map_err(|_| HeaderError::Bad(SEQ))?;
        let qos = match get(QOS).ok_or(HeaderError::Missing(QOS))? {
            "0" => 0,
            "1" => 1,
            "2" => 2,
            _ => return Err(HeaderError::Bad(QOS)),
        };
        let retain = match get(RETAIN) {
            None => false,
            Some("1") => true,
            Some(_) => return Err(HeaderError::Bad(RETAIN)),
        };
        let optional = |name| match get(name) {
            None => Ok(None),
            Some(value) => untext(value).map(Some).ok_or(HeaderError::Bad(name)),
        };
        let correlation_data = match get(CORRELATION_DATA) {
            None => None,
            Some(value) => Some(Bytes::from(
                BASE64
                    .decode(value)
                    .map_err(|_| HeaderError::Bad(CORRELATION_DATA))?,
            )),
        };
        let pairs = |name| {
            headers
                .get_all(name)
                .map(|pair| {
                    let (key, value) = pair
                        .as_str()
                        .split_once('=')
                        .ok_or(HeaderError::Bad(name))?;
                    untext(key).zip(untext(value)).ok_or(HeaderError::Bad(name))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let user_properties = pairs(USER_PROPERTY)?;
        let served = pairs(SERVED)?;
        Ok(Meta {
            origin,
            seq,
            qos,
            retain,
            content_type: optional(CONTENT_TYPE)?,
            response_topic: optional(RESPONSE_TOPIC)?,
            correlation_data,
            user_properties,
            served,
        })
    }
}

pub(crate) fn text(value: &str) -> String {
    utf8_percent_encode(value, TEXT).to_string()
}

pub(crate) fn untext(value: &str) -> Option<String> {
    percent_decode_str(value)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Meta {
        Meta {
            origin: "pi-1.eu".into(),
            seq: u64::MAX,
            qos: 2,
            retain: true,
            content_type: Some("application/json; charset=utf-8".into()),
            response_topic: Some("im/sys/alice bob/ünï\r\n%".into()),
            correlation_data: Some(Bytes::from_static(b"\0\xff\r\nbinary")),
            user_properties: vec![
                ("k".into(), "v".into()),
                ("k".into(), "second, same key".into()),
                ("a=b".into(), "c=d\n%25".into()),
                ("".into(), "".into()),
                ("日本".into(), " trailing ".into()),
            ],
            served: vec![
                ("g".into(), "jobs/+".into()),
                ("g 2=x".into(), "a/#".into()),
            ],
        }
    }

    #[test]
    fn round_trip() {
        for meta in [
            full(),
            Meta {
                origin: "n".into(),
                seq: 1,
                ..Meta::default()
            },
        ] {
            let headers = meta.to_headers();
            for (_, values) in headers.iter() {
                for value in values {
                    let value = value.as_str();
                    assert!(!value.contains(['\r', '\n']), "{value:?}");
                    assert_eq!(value.trim(), value, "{value:?}");
                }
            }
            assert_eq!(Meta::from_headers(&headers), Ok(meta));
        }
    }

    #[test]
    fn user_properties_keep_their_order() {
        let meta = full();
        let back = Meta::from_headers(&meta.to_headers()).unwrap();
        assert_eq!(back.user_properties, meta.user_properties);
    }

    #[test]
    fn damaged_headers_are_refused() {
        let good = full().to_headers();
        assert_eq!(
            Meta::from_headers(&HeaderMap::new()),
            Err(HeaderError::Missing(ORIGIN))
        );
        for (name, value) in [
            (ORIGIN, ""),
            (SEQ, "-1"),
            (SEQ, "x"),
            (QOS, "3"),
            (RETAIN, "true"),
            (CORRELATION_DATA, "not base64!"),
            (USER_PROPERTY, "no-equals-sign"),
            (CONTENT_TYPE, "%FF"),
        ] {
            let mut headers = good.clone();
            headers.insert(name, value);
            assert_eq!(
                Meta::from_headers(&headers),
                Err(HeaderError::Bad(name)),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn unknown_headers_are_ignored() {
        let meta = full();
        let mut headers = meta.to_headers();
        headers.insert("Roost-Future", "x");
        assert_eq!(Meta::from_headers(&headers), Ok(meta));
    }
}
