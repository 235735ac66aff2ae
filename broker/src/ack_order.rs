//! Acks towards the router in the order of its deliveries.
//!
//! The router takes a connection's PUBACKs (and PUBRECs) in the order it sent the QoS 1/2
//! deliveries, and PUBCOMPs in the order of its PUBRELs; one out of order ends the
//! connection. When the front-end drops a delivery and acknowledges it itself (see
//! `revoked`), that ack must wait until the client has acknowledged every delivery sent
//! before it. This keeps that order: the client's own acks and the node's held ones leave
//! together, oldest first. It holds at most one entry per delivery in flight, which the
//! router bounds by the Receive Maximum.
//!
//! Every chat client watching presence under `visibility = "groups"` keeps one, so an entry
//! is small: a held ack is boxed (held acks are the rare case), and an ack for the oldest
//! delivery, the usual one, goes straight out without being held.

use rumqttd::protocol::Packet;
use std::collections::VecDeque;

#[derive(Default)]
pub(crate) struct AckOrder {
    /// Acks the client still owes for deliveries made before this started; they go first.
    older: usize,
    /// Deliveries since then, oldest first: `None` awaits the client's ack, `Some` holds
    /// the ack to pass on when its turn comes.
    queue: VecDeque<(u16, Option<Box<Packet>>)>,
}

impl AckOrder {
    /// Starts with `older` deliveries already awaiting the client's ack.
    pub(crate) fn new(older: usize) -> AckOrder {
        AckOrder {
            older,
            queue: VecDeque::new(),
        }
    }

    /// `pkid` went to the client.
    pub(crate) fn delivered(&mut self, pkid: u16) {
        self.queue.push_back((pkid, None));
    }

    /// `pkid` was dropped; `ack` answers it in the client's place. What may go to the router
    /// now is appended to `out`.
    pub(crate) fn dropped(&mut self, pkid: u16, ack: Packet, out: &mut Vec<Packet>) {
        self.queue.push_back((pkid, Some(Box::new(ack))));
        self.flush(out);
    }

    /// The client acknowledged `pkid` with `ack`.
    pub(crate) fn client_ack(&mut self, pkid: u16, ack: Packet, out: &mut Vec<Packet>) {
        match self
            .queue
            .iter()
            .position(|(p, held)| *p == pkid && held.is_none())
        {
            // The oldest delivery, nothing owed before it: its ack's turn is now.
            Some(0) if self.older == 0 => {
                self.queue.pop_front();
                out.push(ack);
            }
            Some(i) => self.queue[i].1 = Some(Box::new(ack)),
            None => {
                // One of the older deliveries (or one the router will call unsolicited).
                self.older = self.older.saturating_sub(1);
                out.push(ack);
            }
        }
        self.flush(out);
    }

    fn flush(&mut self, out: &mut Vec<Packet>) {
        if self.older > 0 {
            return;
        }
        while self.queue.front().is_some_and(|(_, held)| held.is_some()) {
            if let Some((_, Some(ack))) = self.queue.pop_front() {
                out.push(*ack);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::{PubAck, PubAckReason};

    fn ack(pkid: u16) -> Packet {
        Packet::PubAck(
            PubAck {
                pkid,
                reason: PubAckReason::Success,
            },
            None,
        )
    }

    fn pkids(out: &[Packet]) -> Vec<u16> {
        out.iter()
            .map(|p| match p {
                Packet::PubAck(a, _) => a.pkid,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_dropped_delivery_is_acked_after_the_earlier_ones() {
        let mut o = AckOrder::new(1); // pkid 9 went out before
        let mut out = Vec::new();
        o.delivered(1);
        o.dropped(2, ack(2), &mut out);
        assert!(out.is_empty());
        o.client_ack(9, ack(9), &mut out);
        assert_eq!(pkids(&out), [9]);
        o.client_ack(1, ack(1), &mut out);
        assert_eq!(pkids(&out), [9, 1, 2]);
        o.dropped(3, ack(3), &mut out);
        assert_eq!(pkids(&out), [9, 1, 2, 3]);
        assert!(o.queue.is_empty());
    }

    #[test]
    fn in_order_acks_pass_straight_through() {
        let mut o = AckOrder::new(0);
        let mut out = Vec::new();
        for pkid in 1..=3 {
            o.delivered(pkid);
        }
        o.client_ack(1, ack(1), &mut out);
        assert_eq!(pkids(&out), [1]);
        o.dropped(4, ack(4), &mut out);
        o.client_ack(2, ack(2), &mut out);
        assert_eq!(pkids(&out), [1, 2]);
        o.client_ack(3, ack(3), &mut out);
        assert_eq!(pkids(&out), [1, 2, 3, 4]);
        assert!(o.queue.is_empty());
        // Kept for the connection's life: an entry is a packet id and a pointer.
        assert!(std::mem::size_of::<(u16, Option<Box<Packet>>)>() <= 16);
    }

    #[test]
    fn an_out_of_order_client_ack_waits_for_its_turn() {
        let mut o = AckOrder::new(0);
        let mut out = Vec::new();
        o.delivered(1);
        o.delivered(2);
        o.client_ack(2, ack(2), &mut out);
        assert!(out.is_empty());
        o.client_ack(1, ack(1), &mut out);
        assert_eq!(pkids(&out), [1, 2]);
    }
}
