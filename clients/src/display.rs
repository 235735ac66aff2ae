//! Turning received messages into lines for people (`chat`, `listen`) or scripts
//! (`listen --json`). Everything here treats the payload as untrusted bytes.

use roost_proto::chat::ChatMessage;
use roost_proto::topic::Topic;
use serde_json::Value;

/// Text safe to print on a terminal: invalid UTF-8 replaced, control characters escaped.
pub fn sanitize(bytes: &[u8]) -> String {
    clean(&String::from_utf8_lossy(bytes))
}

fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// One readable line for a message received by `me`:
/// `[dm] bob: hello`, `[dm -> bob] me: hi` (sent from another device of mine),
/// `[grp family] carol: hi`, `[presence] bob is online`, `[sys] error forbidden: ...`.
pub fn describe(me: &str, topic: &str, payload: &[u8]) -> String {
    match Topic::parse(topic) {
        Topic::Dm { to, from } if from == me && to != me => {
            format!("[dm -> {}] me: {}", clean(to), chat_text(payload))
        }
        Topic::Dm { from, .. } => format!("[dm] {}: {}", clean(from), chat_text(payload)),
        Topic::Group { group, from } => {
            let who = if from == me { "me" } else { from };
            format!(
                "[grp {}] {}: {}",
                clean(group),
                clean(who),
                chat_text(payload)
            )
        }
        Topic::Presence { user } => format!("[presence] {} is {}", clean(user), presence(payload)),
        Topic::Sys { .. } => format!("[sys] {}", notice(payload)),
        Topic::SigDm { .. } | Topic::SigGroup { .. } | Topic::Req { .. } | Topic::Other(_) => {
            format!("[{}] {}", clean(topic), sanitize(payload))
        }
    }
}

fn chat_text(payload: &[u8]) -> String {
    match ChatMessage::parse(payload) {
        Ok(m) if m.kind == "text" => clean(&m.body_text()),
        Ok(m) => format!("({}) {}", clean(&m.kind), clean(&m.body_text())),
        Err(_) => format!("(not a chat message) {}", sanitize(payload)),
    }
}

/// `online` / `offline` from a plain or JSON presence payload
/// (`"online"`, `{"status": "online"}`, `{"state": ..}`, `{"online": true}`).
fn presence(payload: &[u8]) -> String {
    if payload.is_empty() {
        return "gone (presence cleared)".to_string();
    }
    let status = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::String(s)) => Some(s),
        Ok(Value::Object(o)) => o
            .get("status")
            .or_else(|| o.get("state"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| {
                o.get("online")
                    .and_then(Value::as_bool)
                    .map(|b| if b { "online" } else { "offline" }.to_string())
            }),
        _ => None,
    };
    clean(&status.unwrap_or_else(|| String::from_utf8_lossy(payload).into_owned()))
}

/// A server notice (docs/protocol.md section 5), e.g. `ack id=.. conv=dm:a:b seq=3`.
pub fn notice(payload: &[u8]) -> String {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(payload) else {
        return sanitize(payload);
    };
    let field = |k: &str| match o.get(k) {
        Some(Value::String(s)) => clean(s),
        Some(v) => clean(&v.to_string()),
        None => "?".to_string(),
    };
    match o.get("type").and_then(Value::as_str) {
        Some("ack") => format!(
            "ack id={} conv={} seq={}",
            field("id"),
            field("conv"),
            field("seq")
        ),
        Some("error") => {
            let id = match o.get("id") {
                Some(_) => format!(" (id {})", field("id")),
                None => String::new(),
            };
            format!("error {}: {}{}", field("code"), field("message"), id)
        }
        Some("receipt") => format!(
            "receipt {} read {} up to seq {}",
            field("user"),
            field("conv"),
            field("read_seq")
        ),
        _ => sanitize(payload),
    }
}

/// `{"topic": .., "payload": <parsed JSON, or the payload as a (lossy) string>}`.
pub fn json_line(topic: &str, payload: &[u8]) -> String {
    let payload = serde_json::from_slice::<Value>(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    // Built by hand so that `topic` comes first whatever serde_json's map ordering.
    format!(
        "{{\"topic\":{},\"payload\":{}}}",
        Value::String(topic.to_string()),
        payload
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Vec<u8> {
        crate::payload::new_text(body).to_bytes()
    }

    #[test]
    fn chat_lines() {
        assert_eq!(
            describe("alice", "im/dm/alice/bob", &chat("hello")),
            "[dm] bob: hello"
        );
        assert_eq!(
            describe("alice", "im/dm/bob/alice", &chat("yo")),
            "[dm -> bob] me: yo"
        );
        assert_eq!(
            describe("alice", "im/grp/family/carol", &chat("hi")),
            "[grp family] carol: hi"
        );
        assert_eq!(
            describe("alice", "im/dm/alice/bob", b"\xffnot\x1b[2Jjson"),
            "[dm] bob: (not a chat message) \u{fffd}not\\u{1b}[2Jjson"
        );
    }

    #[test]
    fn presence_and_sys() {
        assert_eq!(
            describe("a", "im/presence/bob", b"online"),
            "[presence] bob is online"
        );
        assert_eq!(
            describe("a", "im/presence/bob", br#"{"status":"offline","ts":1}"#),
            "[presence] bob is offline"
        );
        assert_eq!(
            describe(
                "a",
                "im/sys/a",
                br#"{"type":"error","code":"forbidden","message":"no"}"#
            ),
            "[sys] error forbidden: no"
        );
        assert_eq!(
            describe(
                "a",
                "im/sys/a",
                br#"{"type":"ack","id":"x","conv":"dm:a:b","seq":4,"ts":1}"#
            ),
            "[sys] ack id=x conv=dm:a:b seq=4"
        );
    }

    #[test]
    fn json() {
        assert_eq!(
            json_line("t", br#"{"a":1}"#),
            r#"{"topic":"t","payload":{"a":1}}"#
        );
        assert_eq!(
            json_line("t", b"plain"),
            r#"{"topic":"t","payload":"plain"}"#
        );
    }
}
