//! The node's presence payload on `im/presence/{user}` (docs/protocol.md section 3):
//! `{"status": "online" | "offline", "ts": <unix ms>}`, published retained.

use serde::{Deserialize, Serialize};

/// Whether any of a user's devices is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Offline,
}

/// What the node publishes when a user's first device arrives or their last one leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub status: Status,
    /// When it changed, unix milliseconds.
    pub ts: u64,
}

impl Presence {
    /// The JSON bytes to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // An enum and a number always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape() {
        let online = Presence {
            status: Status::Online,
            ts: 17,
        };
        assert_eq!(online.to_bytes(), br#"{"status":"online","ts":17}"#);
        let offline: Presence = serde_json::from_str(r#"{"status":"offline","ts":1}"#).unwrap();
        assert_eq!(
            offline,
            Presence {
                status: Status::Offline,
                ts: 1
            }
        );
    }
}
