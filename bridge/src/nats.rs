//! The one place that talks to NATS: connection, live messages, heartbeats, retained.
//!
//! Why here and not in the bridge loop: everything else in this crate is plain data that
//! tests drive without a network; this module turns its decisions into NATS calls and
//! NATS messages back into topics and [`Meta`]. It is tested against a private NATS
//! cluster (tests/cluster.rs).
//!
//! JetStream objects, created at start when missing (`{P}` is the subject prefix with `.`
//! written `_`, as stream and bucket names cannot hold a dot):
//! - KV bucket `{P}_nodes`: key = node id, value = the node's last heartbeat (JSON, see
//!   `members`). One revision per key; entries expire after three `node_timeout`s.
//! - KV buckets `{P}_presence` and `{P}_wills` (`presence`), entries never expire.
//! - stream `{P}_retained` on `{prefix}.r.>`: the last [`RETAINED_HISTORY`] messages per
//!   subject (the last one is the retained message: last value wins);
//!   an empty payload (a tombstone) deletes the subject's retained message.
//!
//! - stream `{P}_claims` on `{prefix}.claim.>`: client-id claims (`claims`), in memory,
//!   kept a minute.
//!
//! All are replicated on up to three servers (as many as the NATS cluster announces).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::{Publish, PublishAckFuture};
use async_nats::jetstream::{self, kv, stream};
use async_nats::{ConnectOptions, Event, ServerAddr, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use roost_config::Cluster;
use tracing::{info, warn};

use crate::headers::{HeaderError, Meta};
use crate::interest::Sub;
use crate::subject::{Space, SubjectError, Subjects};

/// Messages kept per subject in the retained stream. Only the last is the retained
/// message; the ones before it let a node whose mirror reads a little behind still deliver
/// every value of a topic live (a consumer skips what the stream dropped before it got
/// there). A node further behind than this on one topic delivers its last values only.
pub(crate) const RETAINED_HISTORY: i64 = 8;

/// Tries to reach JetStream at start (each try times out after the client's request
/// timeout) before the node gives up.
const JETSTREAM_ATTEMPTS: u32 = 3;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong between the bridge and NATS.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cluster.node_id is not set")]
    NoNodeId,
    #[error("reading cluster.nats_creds `{path}`: {source}")]
    Credentials {
        path: String,
        source: std::io::Error,
    },
    #[error("connecting to NATS ({urls}): {source}")]
    Connect { urls: String, source: BoxError },
    #[error("NATS {what}: {source}")]
    Nats {
        what: &'static str,
        source: BoxError,
    },
    #[error(transparent)]
    Subject(#[from] SubjectError),
    #[error(transparent)]
    Header(#[from] HeaderError),
}

pub(crate) fn nats_error(what: &'static str) -> impl FnOnce(BoxError) -> BridgeError {
    move |source| BridgeError::Nats { what, source }
}

/// A message as it came off NATS.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Incoming {
    pub(crate) topic: String,
    pub(crate) meta: Meta,
    pub(crate) payload: Bytes,
    /// The retained stream's sequence for this message; 0 for live messages.
    pub(crate) seq: u64,
}

/// One entry of the heartbeat bucket.
pub(crate) struct Beat {
    pub(crate) node: String,
    /// The entry's revision (its stream sequence): the same entry seen twice has the same.
    pub(crate) revision: u64,
    /// The heartbeat; `None` when the node took it away (left the cluster).
    pub(crate) value: Option<Bytes>,
}

/// This node's NATS connection and the cluster's JetStream objects.
pub(crate) struct Nats {
    node_id: String,
    subjects: Subjects,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The prefix as it appears in bucket and stream names (`.` written `_`).
    names: String,
    replicas: usize,
    nodes: kv::Store,
    retained: stream::Stream,
    /// Client-id claims (`claims`).
    claims: stream::Stream,
    /// This node's count of live messages put on NATS.
    sent: AtomicU64,
}

impl Nats {
    /// Connects with the `[cluster]` URLs and credentials and makes sure the JetStream
    /// objects exist. Fails if no listed server answers now; once connected, the client
    /// reconnects by itself, forever, logging each loss and return.
    pub(crate) async fn connect(cluster: &Cluster) -> Result<Nats, BridgeError> {
        let node_id = cluster.node_id.clone().ok_or(BridgeError::NoNodeId)?;
        let mut options = match &cluster.nats_creds {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| BridgeError::Credentials {
                    path: path.display().to_string(),
                    source,
                })?,
            None => ConnectOptions::new(),
        };
        if let (Some(user), Some(password)) = (&cluster.nats_user, &cluster.nats_password) {
            options = options.user_and_password(user.clone(), password.expose().to_string());
        }
        if let Some(token) = &cluster.nats_token {
            options = options.token(token.expose().to_string());
        }
        let node = node_id.clone();
        let options = options
            .name(format!("roost-{node_id}"))
            .max_reconnects(None)
            .event_callback(move |event| {
                let node = node.clone();
                async move {
                    match event {
                        Event::Connected => info!(node_id = %node, "NATS connected"),
                        Event::Disconnected => {
                            warn!(node_id = %node, "NATS connection lost; reconnecting")
                        }
                        other => warn!(node_id = %node, "NATS: {other}"),
                    }
                }
            });
        let urls = cluster.nats.join(",");
        let addresses = cluster
            .nats
            .iter()
            .map(|url| url.parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| BridgeError::Connect {
                urls: urls.clone(),
                source: source.into(),
            })?;
        let client = options
            .connect(addresses)
            .await
            .map_err(|source| BridgeError::Connect {
                urls: urls.clone(),
                source: source.into(),
            })?;

        let subjects = Subjects::new(&cluster.subject_prefix);
        let replicas = client.server_info().connect_urls.len().clamp(1, 3);
        let js = jetstream::new(client.clone());
        let names = cluster.subject_prefix.replace('.', "_");
        // A NATS cluster that has just started answers JetStream requests only once it has
        // elected a meta leader; a request sent before that times out. So a node started
        // with its NATS tries a few times before it gives up.
        let mut attempt = 1;
        let (nodes, retained, claims) = loop {
            match jetstream_objects(&js, cluster, &names, &subjects, replicas).await {
                Ok(objects) => break objects,
                Err(error) if attempt < JETSTREAM_ATTEMPTS => {
                    warn!(node_id = %node_id, "JetStream not ready ({error}); trying again");
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        };
        Ok(Nats {
            node_id,
            subjects,
            client,
            js,
            names,
            replicas,
            nodes,
            retained,
            claims,
            sent: AtomicU64::new(0),
        })
    }

    pub(crate) fn node_id(&self) -> &str {
        &self.node_id
    }

    pub(crate) fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub(crate) fn claims_stream(&self) -> &stream::Stream {
        &self.claims
    }

    /// Whether the client is connected right now.
    pub(crate) fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Puts a locally accepted publish on NATS, stamped with this node and its next
    /// sequence. `meta.origin` and `meta.seq` are overwritten.
    pub(crate) async fn publish(
        &self,
        topic: &str,
        mut meta: Meta,
        payload: Bytes,
    ) -> Result<(), BridgeError> {
        meta.origin = self.node_id.clone();
        meta.seq = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let subject = self.subjects.topic(Space::Message, topic);
        self.client
            .publish_with_headers(subject, meta.to_headers(), payload)
            .await
            .map_err(|e| nats_error("publishing")(e.into()))
    }

    /// Subscribes as `interest::Action::Subscribe` says: a subject, in the queue of its
    /// shared subscription if it has one; dropping the subscriber unsubscribes.
    pub(crate) async fn subscribe(&self, sub: &Sub) -> Result<Subscriber, BridgeError> {
        let subject = sub.subject.clone();
        let subscribed = match &sub.share {
            None => self.client.subscribe(subject).await,
            Some(share) => {
                self.client
                    .queue_subscribe(subject, share.queue_name())
                    .await
            }
        };
        subscribed.map_err(|e| nats_error("subscribing")(e.into()))
    }

    /// A live message from a subscription as topic, meta and payload. Messages this node
    /// sent come back to it only if it subscribed to their subject; they are marked by
    /// `meta.origin`, which the bridge uses for split horizon.
    pub(crate) fn incoming(&self, message: &async_nats::Message) -> Result<Incoming, BridgeError> {
        let (_, topic) = self.subjects.parse(message.subject.as_str())?;
        let meta = Meta::from_headers(message.headers.as_ref().unwrap_or(&Default::default()))?;
        Ok(Incoming {
            topic,
            meta,
            payload: message.payload.clone(),
            seq: 0,
        })
    }

    /// Records that this node is alive, now, with `value` (JSON, see `members`).
    pub(crate) async fn heartbeat(&self, value: Bytes) -> Result<(), BridgeError> {
        self.nodes
            .put(&self.node_id, value)
            .await
            .map_err(|e| nats_error("heartbeat")(e.into()))?;
        Ok(())
    }

    /// Takes this node's heartbeat away: it leaves the cluster (drain), and the others
    /// forget it rather than judge it dead.
    pub(crate) async fn remove_heartbeat(&self) -> Result<(), BridgeError> {
        self.nodes
            .delete(&self.node_id)
            .await
            .map_err(|e| nats_error("removing the heartbeat")(e.into()))
    }

    /// Every heartbeat of every node (this one included), starting with the latest one of
    /// each (which a watch made again delivers again, with the same revision). Ends at the
    /// watch's first error (see [`until_error`]): watch again.
    pub(crate) async fn heartbeats(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Beat>, BridgeError> {
        let watch = self
            .nodes
            .watch_with_history(">")
            .await
            .map_err(|e| nats_error("watching heartbeats")(e.into()))?;
        Ok(until_error(watch, "heartbeat watch").map(|entry| Beat {
            value: (entry.operation == kv::Operation::Put).then_some(entry.value),
            node: entry.key,
            revision: entry.revision,
        }))
    }

    /// Opens (creating when missing) the cluster's bucket `{P}_{suffix}`; entries never
    /// expire.
    pub(crate) async fn bucket(
        &self,
        suffix: &str,
        description: &str,
    ) -> Result<kv::Store, BridgeError> {
        crate::kv::bucket(
            &self.js,
            &self.names,
            suffix,
            description,
            Duration::ZERO,
            self.replicas,
        )
        .await
    }

    /// Unsubscribes everything, sends what is buffered and closes the connection: the
    /// node leaves the cluster.
    pub(crate) async fn close(&self) {
        if let Err(error) = self.client.drain().await {
            warn!("closing the NATS connection: {error}");
        }
    }

    /// Stores the retained message of `topic`, or deletes it if `payload` is empty.
    /// With `expected`, the store happens only if the topic's retained message is still
    /// the one with that sequence (0: there is none), which is how a survivor publishes
    /// a dead node's users offline without overwriting a newer online. Returns the new
    /// message's sequence; a failed expectation is an error.
    pub(crate) async fn retain(
        &self,
        topic: &str,
        meta: Meta,
        payload: Bytes,
        expected: Option<u64>,
    ) -> Result<u64, BridgeError> {
        let ack = self
            .store_retained(topic, meta, payload, expected)
            .await?
            .await
            .map_err(|e| nats_error("storing a retained message")(e.into()))?;
        Ok(ack.sequence)
    }

    /// Sends the retained message of `topic` to the stream and returns without waiting
    /// for the stream's acknowledgement (which the future resolves to), so a node can
    /// keep many in flight, in order. An empty payload is stored as such: a tombstone,
    /// which every node mirroring the stream applies as a delete (a purge would leave no
    /// message for them to see). With `expected`: see [`Nats::retain`].
    pub(crate) async fn store_retained(
        &self,
        topic: &str,
        meta: Meta,
        payload: Bytes,
        expected: Option<u64>,
    ) -> Result<PublishAckFuture, BridgeError> {
        let subject = self.subjects.topic(Space::Retained, topic);
        let mut meta = meta;
        meta.origin = self.node_id.clone();
        meta.retain = true;
        let mut publish = Publish::build().payload(payload);
        for (name, values) in meta.to_headers().iter() {
            for value in values {
                publish = publish.header(name.clone(), value.clone());
            }
        }
        if let Some(seq) = expected {
            publish = publish.expected_last_subject_sequence(seq);
        }
        self.js
            .send_publish(subject, publish)
            .await
            .map_err(|e| nats_error("storing a retained message")(e.into()))
    }

    /// The stream of retained messages, for the node's mirror (`retained`).
    pub(crate) fn retained_stream(&self) -> &stream::Stream {
        &self.retained
    }

    /// The retained messages matching `filter`, at most `max`, in subject order per
    /// NATS subject of the filter.
    pub(crate) async fn retained(
        &self,
        filter: &str,
        max: usize,
    ) -> Result<Vec<Incoming>, BridgeError> {
        let mut found = Vec::new();
        for subject in self.subjects.filter(Space::Retained, filter) {
            if found.len() >= max {
                break;
            }
            let mut consumer: PullConsumer = self
                .retained
                .create_consumer(pull::Config {
                    filter_subject: subject,
                    deliver_policy: DeliverPolicy::LastPerSubject,
                    ack_policy: AckPolicy::None,
                    inactive_threshold: Duration::from_secs(30),
                    ..Default::default()
                })
                .await
                .map_err(|e| nats_error("reading retained messages")(e.into()))?;
            let pending = consumer
                .info()
                .await
                .map_err(|e| nats_error("reading retained messages")(e.into()))?
                .num_pending as usize;
            let mut left = pending.min(max - found.len());
            while left > 0 {
                let mut batch = consumer
                    .fetch()
                    .max_messages(left)
                    .messages()
                    .await
                    .map_err(|e| nats_error("reading retained messages")(e.into()))?;
                let mut got = 0;
                while let Some(message) = batch.next().await {
                    let message =
                        message.map_err(|e| nats_error("reading retained messages")(e))?;
                    got += 1;
                    let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                    match self.incoming(&message.message) {
                        // A tombstone: the topic's retained message was deleted.
                        Ok(incoming) if incoming.payload.is_empty() => {}
                        Ok(incoming) => found.push(Incoming { seq, ..incoming }),
                        // Not ours (another publisher on the prefix): skip, keep reading.
                        Err(error) => warn!(subject = %message.subject, "retained: {error}"),
                    }
                }
                if got == 0 {
                    break;
                }
                left = left.saturating_sub(got);
            }
            let name = consumer.cached_info().name.clone();
            // The consumer also expires by itself when inactive; deleting is tidiness.
            let _ = self.retained.delete_consumer(&name).await;
        }
        Ok(found)
    }
}

/// The heartbeat bucket and the retained stream, created if missing.
async fn jetstream_objects(
    js: &jetstream::Context,
    cluster: &Cluster,
    names: &str,
    subjects: &Subjects,
    replicas: usize,
) -> Result<(kv::Store, stream::Stream, stream::Stream), BridgeError> {
    let nodes = crate::kv::bucket(
        js,
        names,
        "nodes",
        "roost node heartbeats",
        cluster.node_timeout * 3,
        replicas,
    )
    .await?;
    let retained = js
        .get_or_create_stream(stream::Config {
            name: format!("{names}_retained"),
            description: Some("roost retained messages".into()),
            subjects: subjects.filter(Space::Retained, "#"),
            max_messages_per_subject: RETAINED_HISTORY,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error("creating the retained stream")(e.into()))?;
    let claims = js
        .get_or_create_stream(crate::claims::stream_config(
            names,
            subjects.claims(),
            replicas,
        ))
        .await
        .map_err(|e| nats_error("creating the claims stream")(e.into()))?;
    Ok((nodes, retained, claims))
}

/// A key-value watch's entries until its first error, which is logged and ends the stream.
/// Why: once the watch's consumer has failed (its task closed, e.g. while the connection
/// shuts down) every read fails at once, so a reader that skipped errors would spin,
/// never yielding its thread and logging without end. The caller watches again.
pub(crate) fn until_error(
    watch: kv::Watch,
    what: &'static str,
) -> impl futures_util::Stream<Item = kv::Entry> {
    watch
        .take_while(move |entry| {
            if let Err(error) = entry {
                warn!("{what}: {error}; watching again");
            }
            std::future::ready(entry.is_ok())
        })
        .filter_map(|entry| std::future::ready(entry.ok()))
}
