//! The client's link to rumqttd's router.

use crate::router::Link;
use futures_util::FutureExt;
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet};

/// The client's link to the router. Dropping it tells the router the client is gone, so a
/// connection that ends any way at all (even by a panic) frees its router slot.
pub(super) struct RouterLink {
    pub(super) link: Link,
    /// The router dropped the link (session taken over); nothing more may be sent.
    pub(super) gone: bool,
}

impl RouterLink {
    pub(super) fn new(link: Link) -> RouterLink {
        RouterLink { link, gone: false }
    }

    /// Hands packets to the router with one wake-up for the whole batch.
    pub(super) fn send(&mut self, mut packets: Vec<Packet>) -> bool {
        let Some(last) = packets.pop() else {
            return true;
        };
        if self.gone {
            return false;
        }
        self.link.tx.buffer().extend(packets);
        // `send` is async in name only: it pushes and notifies without awaiting.
        match self.link.tx.send(last).now_or_never() {
            Some(Ok(_)) => true,
            _ => {
                self.gone = true;
                false
            }
        }
    }

    /// Tells the router the client is gone; nothing more may be sent.
    pub(super) fn close(&mut self) {
        if !std::mem::replace(&mut self.gone, true) {
            let disconnect = Disconnect {
                reason_code: DisconnectReasonCode::NormalDisconnection,
            };
            let _ = self
                .link
                .tx
                .send(Packet::Disconnect(disconnect, None))
                .now_or_never();
        }
    }
}

impl Drop for RouterLink {
    fn drop(&mut self) {
        self.close();
    }
}
