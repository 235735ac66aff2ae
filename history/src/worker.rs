//! `roost history-worker`: the history service as a process of its own, talking to a node
//! over MQTT 5 like any other client (with a `service` token).
//!
//! It keeps a persistent session and acknowledges deliveries by hand, after the commit, so a
//! worker that dies mid-batch gets its unacknowledged messages again when it comes back.
//! Several workers on several machines share the load through the shared subscriptions.

use crate::service::{self, Bus, Delivery, StampedCopy};
use crate::Store;
use roost_proto::stamp;
use roost_proto::subscriptions;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Where and as whom the worker connects.
pub struct WorkerSettings {
    pub host: String,
    pub port: u16,
    /// `{sub}` or `{sub}:{device}` of the token; one per worker (it names its session).
    pub client_id: String,
    pub user: String,
    /// A `service` token that outlives the worker.
    pub token: String,
    /// Stamped delivery: read the ingress and publish the stamped copies (the nodes must
    /// route chat to the ingress, `history.delivery = "stamped"`).
    pub stamped: bool,
}

/// Deliveries buffered between the MQTT event loop and the service: more than the broker
/// sends unacknowledged, so the event loop never waits on the service.
const BUFFER: usize = 4096;

pub async fn run(settings: WorkerSettings, store: Store, service: service::Settings) {
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_credentials(&settings.user, &settings.token)
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_start(false)
        .set_session_expiry_interval(Some(24 * 3600))
        .set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (tx, rx) = mpsc::channel(BUFFER);

    let subscriber = client.clone();
    let stamped = settings.stamped;
    info!(
        delivery = if stamped { "stamped" } else { "direct" },
        "history worker starting (the nodes must use the same history.delivery)"
    );
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    info!(
                        session_present = ack.session_present,
                        "history worker connected"
                    );
                    let filters = subscriptions::history(stamped).map(|s| {
                        rumqttc::v5::mqttbytes::v5::Filter::new(s.path(), QoS::AtLeastOnce)
                    });
                    if let Err(e) = subscriber.subscribe_many(filters).await {
                        warn!(error = %e, "history worker could not subscribe");
                    }
                    if ack.session_present {
                        // A session kept from a run under the other delivery would take
                        // both: the other's chat filters go (the request filter is shared).
                        for s in &subscriptions::history(!stamped)[..2] {
                            if let Err(e) = subscriber.unsubscribe(s.path()).await {
                                warn!(error = %e, "history worker could not unsubscribe");
                            }
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if tx.send(publish).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "history worker lost its connection; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });

    service::run(MqttBus { client, rx }, store, service).await;
}

struct MqttBus {
    client: AsyncClient,
    rx: mpsc::Receiver<Publish>,
}

impl Bus for MqttBus {
    type Ack = Publish;

    async fn recv(&mut self) -> Option<Delivery<Publish>> {
        let publish = self.rx.recv().await?;
        let props = publish.properties.clone().unwrap_or_default();
        Some(Delivery {
            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
            qos: publish.qos as u8,
            payload: publish.payload.to_vec(),
            user_properties: props.user_properties,
            response_topic: props.response_topic,
            correlation_data: props.correlation_data.map(|c| c.to_vec()),
            ack: publish,
        })
    }

    async fn publish(&mut self, topic: String, payload: Vec<u8>) {
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            warn!(error = %e, "history worker could not publish a notice");
        }
    }

    /// Marked [`stamp::STAMPED`], so the node routes it to the recipients instead of back
    /// to the ingress.
    async fn forward(&mut self, copy: StampedCopy) {
        let qos = match copy.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        let mut user_properties = copy.user_properties;
        user_properties.push((stamp::STAMPED.to_owned(), "1".to_owned()));
        let properties = PublishProperties {
            user_properties,
            ..Default::default()
        };
        if let Err(e) = self
            .client
            .publish_with_properties(copy.topic, qos, false, copy.payload, properties)
            .await
        {
            warn!(error = %e, "history worker could not publish a stamped message");
        }
    }

    async fn publish_answer(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        correlation_data: Option<Vec<u8>>,
    ) {
        let props = PublishProperties {
            correlation_data: correlation_data.map(Into::into),
            ..Default::default()
        };
        if let Err(e) = self
            .client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props)
            .await
        {
            warn!(error = %e, "history worker could not publish an answer");
        }
    }

    async fn ack(&mut self, publish: Publish) {
        if let Err(e) = self.client.ack(&publish).await {
            warn!(error = %e, "history worker could not acknowledge a delivery");
        }
    }
}
