//! Where the answer to one request goes, and how big it may be (docs/protocol.md section 5).
//!
//! Answers reach only the device that asked: the v5 Response Topic it named (with its
//! Correlation Data) when it named one under its own `im/sys/{me}`, otherwise its
//! per-device `im/sys/{me}/{device}`. The node checked the Response Topic already; it is
//! checked again here, because a `roost history-worker` also takes requests from services,
//! and the server must never publish an answer where the asker may not read.
//!
//! The asker's v5 Maximum Packet Size (stamped by the node) bounds the answer: a packet
//! bigger than that would be dropped on its way to the client and the request would never
//! be answered, so pages are cut by bytes to fit ([`Reply::budget`], [`Reply::fits`]).

use roost_proto::limits::MAX_ANSWER_BYTES;
use roost_proto::{stamp, topic};

/// What a PUBLISH adds around its payload, besides its topic and Correlation Data: fixed
/// header, topic length, packet id, properties length and the Correlation Data property.
const PACKET_OVERHEAD: usize = 32;
/// Below this many bytes of payloads, a page is cut to a single item.
const SMALLEST_BUDGET: usize = 1024;

/// The destination and size bound of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) topic: String,
    pub(crate) correlation_data: Option<Vec<u8>>,
    /// The largest packet the asker takes, if it said.
    max_packet: Option<usize>,
}

impl Reply {
    /// The reply to a request of `me` carrying these properties. A Response Topic that is
    /// not `me`'s own is ignored (the node refuses such requests before they get here).
    pub(crate) fn to(
        me: &str,
        user_properties: &[(String, String)],
        response_topic: Option<&str>,
        correlation_data: Option<&[u8]>,
    ) -> Reply {
        let stamped = stamp::is_stamped_for(user_properties, me);
        let response = response_topic.filter(|t| topic::is_own_response_topic(me, t));
        let topic = match (response, stamp::client(user_properties)) {
            (Some(t), _) => t.to_owned(),
            (None, Some(client)) if stamped => topic::answer_topic(me, client),
            (None, _) => topic::sys(me),
        };
        Reply {
            topic,
            correlation_data: response.and(correlation_data).map(<[u8]>::to_vec),
            max_packet: stamp::max_packet(user_properties)
                .filter(|_| stamped)
                .map(|m| m as usize),
        }
    }

    /// The most payload bytes the answer's packet may carry.
    fn room(&self) -> Option<usize> {
        let around =
            PACKET_OVERHEAD + self.topic.len() + self.correlation_data.as_ref().map_or(0, Vec::len);
        self.max_packet.map(|m| m.saturating_sub(around))
    }

    /// Whether an answer of `len` bytes reaches the asker.
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.room().is_none_or(|room| len <= room)
    }

    /// The first page budget (bytes of message payloads) to try.
    pub(crate) fn budget(&self) -> usize {
        self.room()
            .map_or(MAX_ANSWER_BYTES, |room| room.min(MAX_ANSWER_BYTES))
    }

    /// The next, smaller budget after an answer of `len` bytes built with `budget` did not
    /// fit; `None` when `budget` was already the smallest (a single item).
    pub(crate) fn shrink(&self, budget: usize, len: usize) -> Option<usize> {
        if budget == 0 {
            return None;
        }
        let room = self.room().unwrap_or(MAX_ANSWER_BYTES);
        // Scale by how much too big it was, with a margin for the per-item overhead.
        let next = (budget as u128 * room as u128 * 8 / (len.max(1) as u128 * 10)) as usize;
        Some(if next < SMALLEST_BUDGET || next >= budget {
            0
        } else {
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(client: &str, max: Option<u32>) -> Vec<(String, String)> {
        let mut p = Vec::new();
        stamp::stamp(&mut p, "bob", &[], "user");
        stamp::stamp_connection(&mut p, client, max);
        p
    }

    #[test]
    fn answers_go_to_the_asking_device() {
        let r = Reply::to("bob", &props("bob:phone", None), None, Some(b"c"));
        assert_eq!(r.topic, "im/sys/bob/phone");
        // Correlation Data belongs with a Response Topic only.
        assert_eq!(r.correlation_data, None);
        assert_eq!(
            Reply::to("bob", &props("bob", None), None, None).topic,
            "im/sys/bob"
        );
        let r = Reply::to(
            "bob",
            &props("bob:phone", None),
            Some("im/sys/bob/app/1"),
            Some(b"c"),
        );
        assert_eq!(
            (r.topic.as_str(), r.correlation_data.as_deref()),
            ("im/sys/bob/app/1", Some(&b"c"[..]))
        );
        // Never somewhere bob may not read.
        for foreign in ["im/sys/alice", "im/sys/bob/+", "x/y"] {
            let r = Reply::to("bob", &props("bob:phone", None), Some(foreign), None);
            assert_eq!(r.topic, "im/sys/bob/phone", "{foreign}");
        }
        // Without the node's stamp (not through a front-end): the user's topic.
        let r = Reply::to(
            "bob",
            &[("roost-client".into(), "bob:x".into())],
            None,
            None,
        );
        assert_eq!(r.topic, "im/sys/bob");
    }

    #[test]
    fn answers_fit_the_askers_packets() {
        let r = Reply::to("bob", &props("bob:phone", Some(4096)), None, None);
        let room = 4096 - PACKET_OVERHEAD - "im/sys/bob/phone".len();
        assert!(r.fits(room) && !r.fits(room + 1));
        assert_eq!(r.budget(), room);
        let next = r.shrink(room, room * 2).unwrap();
        assert!(next > 0 && next < room / 2, "{next}");
        assert_eq!(r.shrink(2000, 100_000), Some(0));
        assert_eq!(r.shrink(0, 100_000), None);

        let unbounded = Reply::to("bob", &props("bob:phone", None), None, None);
        assert!(unbounded.fits(10 << 20));
        assert_eq!(unbounded.budget(), MAX_ANSWER_BYTES);
    }
}
