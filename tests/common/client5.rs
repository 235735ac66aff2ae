//! A rumqttc MQTT 5 client for tests. Like [`super::client::Client`], but it keeps what
//! MQTT 5 adds: the CONNACK with its properties, reason codes, properties on messages, and
//! the DISCONNECT a server may send before it closes.

use super::client::WAIT;
use super::Node;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Filter, Packet, Publish, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub struct Client5 {
    pub client: AsyncClient,
    /// The CONNACK the server accepted this connection with.
    pub connack: ConnAck,
    /// Packets from the server in order; the last item, if any, is how the connection ended.
    events: mpsc::UnboundedReceiver<Result<Packet, ConnectionError>>,
}

/// MQTT 5 options for `client_id`, signing in as `user` with `token`.
pub fn options5(node: &Node, client_id: &str, user: &str, token: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, node.mqtt.ip().to_string(), node.mqtt.port());
    options.set_credentials(user, token);
    options.set_keep_alive(Duration::from_secs(30));
    options
}

impl Client5 {
    /// Connects and waits for the CONNACK; `Err(reason)` if the server refused.
    pub async fn connect(options: MqttOptions) -> Result<Client5, ConnectReturnCode> {
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (tx, events) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = oneshot::channel();
        tokio::spawn(pump(eventloop, tx, ack_tx));
        let connack = tokio::time::timeout(WAIT, ack_rx)
            .await
            .expect("no CONNACK in time")
            .expect("event loop ended before CONNACK")?;
        Ok(Client5 {
            client,
            connack,
            events,
        })
    }

    /// Connects to `node` as `user` (client id = user) with a fresh token.
    pub async fn user(node: &Node, user: &str) -> Client5 {
        let token = super::token(user);
        Client5::connect(options5(node, user, user, &token))
            .await
            .expect("sign-in refused")
    }

    /// Subscribes to one filter at QoS 1 and returns its SUBACK reason.
    pub async fn subscribe(&mut self, filter: &str) -> SubscribeReasonCode {
        self.subscribe_many(&[filter]).await[0]
    }

    /// Subscribes to several filters in one SUBSCRIBE (QoS 1) and returns the SUBACK reasons.
    pub async fn subscribe_many(&mut self, filters: &[&str]) -> Vec<SubscribeReasonCode> {
        let filters: Vec<Filter> = filters
            .iter()
            .map(|f| Filter::new(*f, QoS::AtLeastOnce))
            .collect();
        self.client.subscribe_many(filters).await.unwrap();
        match self.next_where(|p| matches!(p, Packet::SubAck(_))).await {
            Packet::SubAck(ack) => ack.return_codes,
            _ => unreachable!(),
        }
    }

    /// Publishes at QoS 1 (not retained).
    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }

    /// The next PUBLISH received.
    pub async fn next_publish(&mut self) -> Publish {
        match self.next_where(|p| matches!(p, Packet::Publish(_))).await {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    /// The next packet from the server that `want` accepts; others are skipped.
    pub async fn next_where(&mut self, want: impl Fn(&Packet) -> bool) -> Packet {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let item = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("timed out waiting for the server")
                .expect("event stream ended");
            match item {
                Ok(packet) if want(&packet) => return packet,
                Ok(_) => {}
                Err(e) => panic!("connection ended while waiting for a packet: {e:?}"),
            }
        }
    }

    /// Waits for the connection to end and says how it ended (for a server DISCONNECT:
    /// `ConnectionError::MqttState(StateError::ServerDisconnect { .. })`).
    pub async fn ended(&mut self) -> ConnectionError {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => return e,
                Ok(None) => panic!("event loop ended without an error"),
                Err(_) => panic!("connection still open"),
            }
        }
    }
}

/// Publish properties as (key, value) pairs, empty when there are none.
pub fn user_properties(publish: &Publish) -> Vec<(String, String)> {
    publish
        .properties
        .as_ref()
        .map(|p| p.user_properties.clone())
        .unwrap_or_default()
}

async fn pump(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<Result<Packet, ConnectionError>>,
    ack_tx: oneshot::Sender<Result<ConnAck, ConnectReturnCode>>,
) {
    let mut ack_tx = Some(ack_tx);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if let Some(t) = ack_tx.take() {
                    let _ = t.send(Ok(ack));
                }
            }
            Ok(Event::Incoming(packet)) => {
                if tx.send(Ok(packet)).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(ConnectionError::ConnectionRefused(code)) if ack_tx.is_some() => {
                if let Some(t) = ack_tx.take() {
                    let _ = t.send(Err(code));
                }
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}
