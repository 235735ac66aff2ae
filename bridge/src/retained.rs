//! Retained messages across the cluster: every node mirrors the JetStream stream
//! `{P}_retained` into its own router (docs/cluster.md, "Retained messages").
//!
//! Why a mirror and not a lookup on subscribe: the router answers a SUBSCRIBE from its own
//! retained store, on its thread, with no way to wait for NATS. So each node keeps the whole
//! store: an ordered consumer reads the last message of every subject, then follows the
//! stream. Applied in the stream's order on every node, the last value wins everywhere,
//! however two nodes' writes of one topic interleave; a tombstone (empty payload) deletes.
//!
//! A retained publish crosses the cluster only through the stream, never also as a live
//! message, so it reaches each subscriber once: on the node where it entered, the router
//! delivered it when the client published it, and the mirror only re-applies it to the
//! store ([`Mirrored::store_only`]); on every other node, the mirror publishes it into the
//! router like a local publish, which stores it and delivers it to the subscribers there
//! at that moment. A subscriber gets it either live or from the store, never both.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::push::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishAckFuture;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::headers::Meta;
use crate::nats::{BridgeError, Nats};

/// Retained messages sent to the stream whose acknowledgement is awaited; when full, the
/// bridge waits before it sends more.
const ACKS_IN_FLIGHT: usize = 1024;

/// Messages read from the stream and not yet taken by the bridge; when full, the
/// consumer waits (JetStream flow control holds the server back).
const MIRROR_QUEUE: usize = 1024;

/// How long one try to open the consumer may take. Shorter than the client's request
/// timeout (10 s): right after a NATS server is lost, a creation can be placed on it and
/// never answered, and a starting node's catch-up (10 s) must have time for another try.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long to wait before opening the consumer again after it ended.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// A message read from the retained stream, for the local router.
#[derive(Debug)]
pub(crate) struct Mirrored {
    pub(crate) topic: String,
    pub(crate) meta: Meta,
    /// Empty: a delete.
    pub(crate) payload: bytes::Bytes,
    /// It entered on this node (now or before a restart): the router is to store it
    /// without delivering it, as the local subscribers had it when it was published.
    pub(crate) store_only: bool,
    /// Messages of the stream still to read after this one when it was delivered.
    pub(crate) pending: u64,
}

/// Reads the stream on a task of its own (the consumer is not `Sync`, the bridge is
/// shared across awaits); the receiver gets the messages in the stream's order.
pub(crate) fn spawn_mirror(nats: Arc<Nats>) -> (mpsc::Receiver<Mirrored>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(MIRROR_QUEUE);
    let task = tokio::spawn(async move {
        let mut mirror = Mirror::new(&nats);
        loop {
            let message = mirror.next(&nats).await;
            if tx.send(message).await.is_err() {
                return;
            }
        }
    });
    (rx, task)
}

/// The node's ordered reading of the retained stream.
pub(crate) struct Mirror {
    filter: String,
    messages: Option<Ordered>,
    /// The last stream sequence read, so a reopened consumer goes on after it.
    last_seq: u64,
    /// An error was logged and nothing has been read since.
    failing: bool,
}

impl Mirror {
    fn new(nats: &Nats) -> Mirror {
        let filter = nats
            .retained_stream()
            .cached_info()
            .config
            .subjects
            .first()
            .cloned()
            .unwrap_or_default();
        Mirror {
            filter,
            messages: None,
            last_seq: 0,
            failing: false,
        }
    }

    /// Whether the stream holds nothing to read now (checked once, at start).
    pub(crate) async fn is_empty(nats: &Nats) -> Result<bool, BridgeError> {
        let info = nats
            .retained_stream()
            .get_info()
            .await
            .map_err(|e| BridgeError::Nats {
                what: "reading the retained stream",
                source: e.into(),
            })?;
        Ok(info.state.messages == 0)
    }

    async fn open(nats: &Nats, filter: String, last_seq: u64) -> Result<Ordered, BridgeError> {
        let deliver_policy = match last_seq {
            0 => DeliverPolicy::LastPerSubject,
            seq => DeliverPolicy::ByStartSequence {
                start_sequence: seq + 1,
            },
        };
        let error = |e: Box<dyn std::error::Error + Send + Sync>| BridgeError::Nats {
            what: "mirroring the retained stream",
            source: e,
        };
        let create = nats.retained_stream().create_consumer(OrderedConfig {
            deliver_subject: nats.client().new_inbox(),
            filter_subject: filter,
            deliver_policy,
            ..Default::default()
        });
        let consumer = tokio::time::timeout(OPEN_TIMEOUT, create)
            .await
            .map_err(|e| error(e.into()))?
            .map_err(|e| error(e.into()))?;
        consumer.messages().await.map_err(|e| error(e.into()))
    }

    /// The next message of the stream, in order. Cancel safe (a message is taken from the
    /// consumer and returned in one poll). Errors (NATS away) are logged once per outage;
    /// the consumer is opened again after the last message read.
    async fn next(&mut self, nats: &Nats) -> Mirrored {
        loop {
            let messages = match self.messages.as_mut() {
                Some(messages) => messages,
                None => match Self::open(nats, self.filter.clone(), self.last_seq).await {
                    Ok(messages) => self.messages.insert(messages),
                    Err(error) => {
                        self.trouble(&error);
                        tokio::time::sleep(REOPEN_AFTER).await;
                        continue;
                    }
                },
            };
            let message = match messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    // Opened again after the last message read: nothing is skipped, and a
                    // consumer whose own recreation gave up does not spin.
                    self.trouble(&error);
                    self.messages = None;
                    tokio::time::sleep(REOPEN_AFTER).await;
                    continue;
                }
                None => {
                    warn!("retained stream mirror ended; reopening");
                    self.messages = None;
                    tokio::time::sleep(REOPEN_AFTER).await;
                    continue;
                }
            };
            let (seq, pending) = message
                .info()
                .map(|info| (info.stream_sequence, info.pending))
                .unwrap_or((0, 0));
            if self.failing {
                info!("retained stream mirror reading again");
                self.failing = false;
            }
            if seq > self.last_seq {
                self.last_seq = seq;
            }
            match nats.incoming(&message.message) {
                Ok(incoming) => {
                    return Mirrored {
                        store_only: incoming.meta.origin == nats.node_id(),
                        topic: incoming.topic,
                        meta: incoming.meta,
                        payload: incoming.payload,
                        pending,
                    }
                }
                // Not a roost message (another publisher on the prefix): not applied.
                Err(error) => {
                    warn!(subject = %message.subject, "retained message refused: {error}")
                }
            }
        }
    }

    fn trouble(&mut self, error: &dyn std::fmt::Display) {
        if self.failing {
            debug!("retained stream mirror: {error}");
        } else {
            warn!("retained stream mirror: {error}");
            self.failing = true;
        }
    }
}

/// Waits for the stream's acknowledgements of retained messages, in order, off the
/// bridge's loop; a refused store is logged (the node's own router has the message, the
/// others do not).
pub(crate) fn ack_waiter() -> mpsc::Sender<(String, PublishAckFuture)> {
    let (tx, mut rx) = mpsc::channel::<(String, PublishAckFuture)>(ACKS_IN_FLIGHT);
    tokio::spawn(async move {
        while let Some((topic, ack)) = rx.recv().await {
            if let Err(error) = ack.await {
                warn!(%topic, "retained message not stored in the cluster: {error}");
            }
        }
    });
    tx
}
