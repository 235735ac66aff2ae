//! The chat payload check without building the payload: the node checks every chat PUBLISH
//! and only needs the verdict, and parsing into a `serde_json::Value` and then a
//! [`ChatMessage`](super::ChatMessage) allocated a map, a string per key and per value and
//! the message itself, once per message (BENCHMARKS.md, "dmmax").
//!
//! [`certainly_valid`] walks the payload with serde_json's own parser (same grammar, UTF-8
//! and escape rules, number range and nesting limit as the full parse), seeing each string
//! as a borrowed `&str`, and says `true` only for a payload the full parse accepts. Whatever
//! it is not sure of (any fault, a NUL, a duplicate known field, a float `ts`, a key
//! starting with `$`) it leaves to
//! the full parse, which then decides and words the refusal: so accept and refuse are the
//! full parse's decisions, byte for byte (`chat_scan_tests.rs` compares the two on many
//! inputs).

use super::is_valid_message_id;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Whether the full parse ([`super::ChatMessage::parse_within`], size aside) certainly
/// accepts `payload`. `false` means "not sure", not "refused".
pub(super) fn certainly_valid(payload: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(payload);
    match de.deserialize_any(Top) {
        // Trailing characters other than whitespace make the full parse fail.
        Ok(()) => de.end().is_ok(),
        Err(_) => false,
    }
}

/// The error that stops the scan: "not sure". Built only on the way out to the full parse.
fn unsure<E: de::Error>() -> E {
    E::custom("unsure")
}

/// The top level: an object with the chat fields.
struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat payload object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut id, mut kind, mut body, mut reply_to, mut ts) =
            (false, false, false, false, false);
        while let Some(field) = map.next_key_seed(FieldKey)? {
            // A known field twice: the full parse keeps the last one; not worth mirroring.
            let seen = match field {
                Field::Id => std::mem::replace(&mut id, true),
                Field::Kind => std::mem::replace(&mut kind, true),
                Field::Body => std::mem::replace(&mut body, true),
                Field::ReplyTo => std::mem::replace(&mut reply_to, true),
                Field::Ts => std::mem::replace(&mut ts, true),
                Field::Other => false,
            };
            if seen {
                return Err(unsure());
            }
            match field {
                Field::Id => map.next_value_seed(MessageId { nullable: false })?,
                Field::Kind => map.next_value_seed(Kind)?,
                Field::Body => map.next_value_seed(NoNul { nullable: false })?,
                Field::ReplyTo => map.next_value_seed(MessageId { nullable: true })?,
                Field::Ts => map.next_value_seed(Ts)?,
                Field::Other => map.next_value_seed(NoNul { nullable: true })?,
            }
        }
        if id && kind && body {
            Ok(())
        } else {
            Err(unsure())
        }
    }
}

/// A key of the top-level object.
enum Field {
    Id,
    Kind,
    Body,
    ReplyTo,
    Ts,
    Other,
}

struct FieldKey;

impl<'de> DeserializeSeed<'de> for FieldKey {
    type Value = Field;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldKey {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
        Ok(match key {
            "id" => Field::Id,
            "kind" => Field::Kind,
            "body" => Field::Body,
            "reply_to" => Field::ReplyTo,
            "ts" => Field::Ts,
            other if !plain_key(other) => return Err(unsure()),
            _ => Field::Other,
        })
    }
}

/// `id` (or, `nullable`, `reply_to`): a valid message id, which has no control character
/// and so no NUL.
struct MessageId {
    nullable: bool,
}

impl<'de> DeserializeSeed<'de> for MessageId {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessageId {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message id")
    }

    fn visit_str<E: de::Error>(self, id: &str) -> Result<(), E> {
        if is_valid_message_id(id) {
            Ok(())
        } else {
            Err(unsure())
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.nullable {
            Ok(())
        } else {
            Err(unsure())
        }
    }
}

/// `kind`: a non-empty string without control characters.
struct Kind;

impl<'de> DeserializeSeed<'de> for Kind {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Kind {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a kind")
    }

    fn visit_str<E: de::Error>(self, kind: &str) -> Result<(), E> {
        if kind.is_empty() || kind.chars().any(char::is_control) {
            Err(unsure())
        } else {
            Ok(())
        }
    }
}

/// `ts`: null or an integer an `i64` holds (a float, even `1.0` or `-0`, is refused by the
/// full parse: left to it).
struct Ts;

impl<'de> DeserializeSeed<'de> for Ts {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Ts {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a timestamp")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        if i64::try_from(v).is_ok() {
            Ok(())
        } else {
            Err(unsure())
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Any JSON value with no NUL in any string or key; `null` itself only if `nullable`
/// (`body` must not be null; null inside it is fine).
struct NoNul {
    nullable: bool,
}

impl<'de> DeserializeSeed<'de> for NoNul {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoNul {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        if s.contains('\0') {
            Err(unsure())
        } else {
            Ok(())
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.nullable {
            Ok(())
        } else {
            Err(unsure())
        }
    }

    // Nesting is bounded by serde_json's recursion limit, as for the full parse.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoNul { nullable: true })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Key)?.is_some() {
            map.next_value_seed(NoNul { nullable: true })?;
        }
        Ok(())
    }
}

/// Whether a key is an ordinary one: no NUL, and not starting with `$`. serde_json's
/// `Value` treats an object whose first key is one of its private tokens
/// (`$serde_json::private::RawValue` with the `raw_value` feature, which sqlx turns on, or
/// `...::Number`) as something else, e.g. JSON held in a string, parsed again: such a
/// payload is left to the full parse.
fn plain_key(key: &str) -> bool {
    !key.starts_with('$') && !key.contains('\0')
}

/// A key inside a value: a plain one.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        if plain_key(key) {
            Ok(())
        } else {
            Err(unsure())
        }
    }
}

#[cfg(test)]
#[path = "chat_scan_tests.rs"]
mod tests;
