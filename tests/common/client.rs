//! The one rumqttc client of the tests, for MQTT 3.1.1 and MQTT 5 alike: connect, then read
//! what the broker sends in order through one event pump. rumqttc's two APIs differ in
//! their types (options, packets, reason codes), so `Client<V>` is generic over the
//! options type of the version, `Mqtt3` or `Mqtt5`, and [`Version`] holds the few places
//! where the two differ. Tests still see each version's own packets and reason codes.

use super::Node;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long a test waits for something the broker owes it before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// MQTT 3.1.1: rumqttc's options type names the version.
pub type Mqtt3 = rumqttc::MqttOptions;
/// MQTT 5.
pub type Mqtt5 = rumqttc::v5::MqttOptions;

/// What differs between rumqttc's MQTT 3.1.1 and MQTT 5 APIs, implemented for each
/// version's options type.
pub trait Version: Clone + Send + Sized + 'static {
    type Handle: Clone + Send + Sync + 'static;
    type EventLoop: Send + 'static;
    type Packet: Debug + Send + 'static;
    type ConnAck: Debug + Send + 'static;
    /// Why the broker refused a CONNECT.
    type Refusal: Debug + PartialEq + Send + 'static;
    /// How a connection ended.
    type Error: Debug + Send + 'static;
    /// A SUBACK's answer for one filter.
    type Granted: Debug + Copy + PartialEq;
    /// What a test reads of a PUBLISH.
    type Publish;

    /// Options for `client_id` at `node`, signing in as `user` with `token`.
    fn for_node(node: &Node, client_id: &str, user: &str, token: &str) -> Self;
    fn start(self) -> (Self::Handle, Self::EventLoop);
    fn poll(events: &mut Self::EventLoop) -> impl Future<Output = Polled<Self>> + Send;
    /// SUBSCRIBE at QoS 1 to each filter.
    fn subscribe(client: &Self::Handle, filters: &[&str]) -> impl Future<Output = ()> + Send;
    /// PUBLISH at QoS 1, not retained.
    fn publish(
        client: &Self::Handle,
        topic: &str,
        payload: Vec<u8>,
    ) -> impl Future<Output = ()> + Send;
    fn suback(packet: &Self::Packet) -> Option<Vec<Self::Granted>>;
    fn is_puback(packet: &Self::Packet) -> bool;
    fn is_publish(packet: &Self::Packet) -> bool;
    fn publish_of(packet: Self::Packet) -> Option<Self::Publish>;
}

/// One turn of a version's event loop.
pub enum Polled<V: Version> {
    Accepted(V::ConnAck),
    Refused(V::Refusal),
    Incoming(V::Packet),
    Outgoing,
    Ended(V::Error),
}

/// MQTT 3.1.1 options for `client_id`, signing in as `user` with `token` (keep-alive 30 s).
pub fn options(node: &Node, client_id: &str, user: &str, token: &str) -> Mqtt3 {
    Mqtt3::for_node(node, client_id, user, token)
}

/// MQTT 5 options for `client_id`, signing in as `user` with `token` (keep-alive 30 s).
pub fn options5(node: &Node, client_id: &str, user: &str, token: &str) -> Mqtt5 {
    Mqtt5::for_node(node, client_id, user, token)
}

/// A connected client and what the broker sent it, in order.
pub struct Client<V: Version> {
    /// rumqttc's own handle, for what the helpers below do not cover.
    pub client: V::Handle,
    /// The CONNACK the broker accepted this connection with.
    pub connack: V::ConnAck,
    /// Packets from the broker in order; the last item, if any, is how the connection ended.
    events: mpsc::UnboundedReceiver<Result<V::Packet, V::Error>>,
}

impl<V: Version> Client<V> {
    /// Connects and waits for the CONNACK; `Err(refusal)` if the broker refused.
    pub async fn connect(options: V) -> Result<Client<V>, V::Refusal> {
        let (client, eventloop) = options.start();
        let (tx, events) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = oneshot::channel();
        tokio::spawn(pump::<V>(eventloop, tx, ack_tx));
        let connack = tokio::time::timeout(WAIT, ack_rx)
            .await
            .expect("no CONNACK in time")
            .expect("event loop ended before CONNACK")?;
        Ok(Client {
            client,
            connack,
            events,
        })
    }

    /// Like `connect`, but a connection that fails or ends before the CONNACK (a load
    /// balancer with no node to take it) is an `Err` saying so rather than a panic.
    pub async fn try_connect(options: V) -> Result<Client<V>, String> {
        let (client, eventloop) = options.start();
        let (tx, mut events) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = oneshot::channel();
        tokio::spawn(pump::<V>(eventloop, tx, ack_tx));
        match tokio::time::timeout(WAIT, ack_rx).await {
            Err(_) => Err("no CONNACK in time".to_owned()),
            Ok(Err(_)) => Err(match events.try_recv() {
                Ok(Err(e)) => format!("ended before the CONNACK: {e:?}"),
                _ => "ended before the CONNACK".to_owned(),
            }),
            Ok(Ok(Err(refusal))) => Err(format!("refused: {refusal:?}")),
            Ok(Ok(Ok(connack))) => Ok(Client {
                client,
                connack,
                events,
            }),
        }
    }

    /// Connects to `node` as `user` (client id = user) with a fresh token.
    pub async fn user(node: &Node, user: &str) -> Client<V> {
        let token = super::token(user);
        Client::connect(V::for_node(node, user, user, &token))
            .await
            .expect("sign-in refused")
    }

    /// Subscribes to one filter at QoS 1 and returns the SUBACK's answer.
    pub async fn subscribe(&mut self, filter: &str) -> V::Granted {
        self.subscribe_many(&[filter]).await[0]
    }

    /// Subscribes to several filters in one SUBSCRIBE (QoS 1) and returns the answers.
    pub async fn subscribe_many(&mut self, filters: &[&str]) -> Vec<V::Granted> {
        V::subscribe(&self.client, filters).await;
        let suback = self.next_where(|p| V::suback(p).is_some()).await;
        V::suback(&suback).unwrap()
    }

    /// Publishes at QoS 1 (not retained).
    pub async fn publish(&self, topic: &str, payload: &str) {
        V::publish(&self.client, topic, payload.as_bytes().to_vec()).await;
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK (the router has taken it).
    pub async fn publish_acked(&mut self, topic: &str, payload: &str) {
        self.publish(topic, payload).await;
        self.next_where(V::is_puback).await;
    }

    /// The next PUBLISH received.
    pub async fn next_publish(&mut self) -> V::Publish {
        let packet = self.next_where(V::is_publish).await;
        V::publish_of(packet).unwrap()
    }

    /// The next packet from the broker that `want` accepts; others are skipped.
    pub async fn next_where(&mut self, want: impl Fn(&V::Packet) -> bool) -> V::Packet {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.recv_until(deadline).await {
                None => panic!("timed out waiting for the broker"),
                Some(Ok(packet)) if want(&packet) => return packet,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("connection ended while waiting for a packet: {e:?}"),
            }
        }
    }

    /// The next item from the broker before `deadline`: `None` when none came in time,
    /// `Some(Err(how))` when the connection ended.
    pub async fn recv_until(&mut self, deadline: Instant) -> Option<Result<V::Packet, String>> {
        match tokio::time::timeout_at(deadline, self.events.recv()).await {
            Err(_) => None,
            Ok(None) => Some(Err("event stream ended".to_owned())),
            Ok(Some(Err(e))) => Some(Err(format!("{e:?}"))),
            Ok(Some(Ok(packet))) => Some(Ok(packet)),
        }
    }

    /// Whatever arrived so far, without waiting (a `Some(Err)` when the connection ended).
    pub fn try_recv(&mut self) -> Option<Result<V::Packet, String>> {
        match self.events.try_recv() {
            Ok(Ok(packet)) => Some(Ok(packet)),
            Ok(Err(e)) => Some(Err(format!("{e:?}"))),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                Some(Err("event stream ended".to_owned()))
            }
        }
    }

    /// Waits for the connection to end, skipping whatever else arrives.
    pub async fn closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(None) | Ok(Some(Err(_))) => return,
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("connection still open"),
            }
        }
    }

    /// Waits for the connection to end and says how it ended (for a v5 server DISCONNECT:
    /// `ConnectionError::MqttState(StateError::ServerDisconnect { .. })`).
    pub async fn ended(&mut self) -> V::Error {
        let deadline = Instant::now() + WAIT;
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

/// Drives rumqttc's event loop: the CONNACK (or refusal) to `ack`, every later packet from
/// the broker to `events`, then how the connection ended.
async fn pump<V: Version>(
    mut eventloop: V::EventLoop,
    events: mpsc::UnboundedSender<Result<V::Packet, V::Error>>,
    ack: oneshot::Sender<Result<V::ConnAck, V::Refusal>>,
) {
    let mut ack = Some(ack);
    loop {
        match V::poll(&mut eventloop).await {
            Polled::Accepted(connack) => {
                if let Some(ack) = ack.take() {
                    let _ = ack.send(Ok(connack));
                }
            }
            Polled::Refused(refusal) => {
                if let Some(ack) = ack.take() {
                    let _ = ack.send(Err(refusal));
                }
                return;
            }
            Polled::Incoming(packet) => {
                if events.send(Ok(packet)).is_err() {
                    return;
                }
            }
            Polled::Outgoing => {}
            Polled::Ended(e) => {
                let _ = events.send(Err(e));
                return;
            }
        }
    }
}

/// Publish properties of a v5 PUBLISH as (key, value) pairs, empty when there are none.
pub fn user_properties(publish: &rumqttc::v5::mqttbytes::v5::Publish) -> Vec<(String, String)> {
    publish
        .properties
        .as_ref()
        .map(|p| p.user_properties.clone())
        .unwrap_or_default()
}

impl Version for Mqtt3 {
    type Handle = rumqttc::AsyncClient;
    type EventLoop = rumqttc::EventLoop;
    type Packet = rumqttc::Packet;
    type ConnAck = rumqttc::ConnAck;
    type Refusal = rumqttc::ConnectReturnCode;
    type Error = rumqttc::ConnectionError;
    /// The granted QoS, or 0x80 for a refusal.
    type Granted = u8;
    /// (topic, payload as text)
    type Publish = (String, String);

    fn for_node(node: &Node, client_id: &str, user: &str, token: &str) -> Self {
        let mut options =
            rumqttc::MqttOptions::new(client_id, node.mqtt.ip().to_string(), node.mqtt.port());
        options.set_credentials(user, token);
        options.set_keep_alive(Duration::from_secs(30));
        options
    }

    fn start(self) -> (Self::Handle, Self::EventLoop) {
        rumqttc::AsyncClient::new(self, 100)
    }

    async fn poll(events: &mut Self::EventLoop) -> Polled<Self> {
        use rumqttc::{ConnectReturnCode, ConnectionError, Event, Packet};
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => {
                Polled::Accepted(ack)
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => Polled::Refused(ack.code),
            Ok(Event::Incoming(packet)) => Polled::Incoming(packet),
            Ok(Event::Outgoing(_)) => Polled::Outgoing,
            Err(ConnectionError::ConnectionRefused(code)) => Polled::Refused(code),
            Err(e) => Polled::Ended(e),
        }
    }

    async fn subscribe(client: &Self::Handle, filters: &[&str]) {
        let filters: Vec<rumqttc::SubscribeFilter> = filters
            .iter()
            .map(|f| rumqttc::SubscribeFilter::new(f.to_string(), rumqttc::QoS::AtLeastOnce))
            .collect();
        client.subscribe_many(filters).await.unwrap();
    }

    async fn publish(client: &Self::Handle, topic: &str, payload: Vec<u8>) {
        client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    fn suback(packet: &Self::Packet) -> Option<Vec<u8>> {
        match packet {
            rumqttc::Packet::SubAck(ack) => Some(
                ack.return_codes
                    .iter()
                    .map(|code| match code {
                        rumqttc::SubscribeReasonCode::Success(q) => *q as u8,
                        rumqttc::SubscribeReasonCode::Failure => 0x80,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    fn is_puback(packet: &Self::Packet) -> bool {
        matches!(packet, rumqttc::Packet::PubAck(_))
    }

    fn is_publish(packet: &Self::Packet) -> bool {
        matches!(packet, rumqttc::Packet::Publish(_))
    }

    fn publish_of(packet: Self::Packet) -> Option<(String, String)> {
        match packet {
            rumqttc::Packet::Publish(p) => {
                Some((p.topic, String::from_utf8_lossy(&p.payload).into_owned()))
            }
            _ => None,
        }
    }
}

impl Version for Mqtt5 {
    type Handle = rumqttc::v5::AsyncClient;
    type EventLoop = rumqttc::v5::EventLoop;
    type Packet = rumqttc::v5::mqttbytes::v5::Packet;
    type ConnAck = rumqttc::v5::mqttbytes::v5::ConnAck;
    type Refusal = rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
    type Error = rumqttc::v5::ConnectionError;
    type Granted = rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;
    type Publish = rumqttc::v5::mqttbytes::v5::Publish;

    fn for_node(node: &Node, client_id: &str, user: &str, token: &str) -> Self {
        let mut options =
            rumqttc::v5::MqttOptions::new(client_id, node.mqtt.ip().to_string(), node.mqtt.port());
        options.set_credentials(user, token);
        options.set_keep_alive(Duration::from_secs(30));
        options
    }

    fn start(self) -> (Self::Handle, Self::EventLoop) {
        rumqttc::v5::AsyncClient::new(self, 100)
    }

    async fn poll(events: &mut Self::EventLoop) -> Polled<Self> {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::{ConnectionError, Event};
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => Polled::Accepted(ack),
            Ok(Event::Incoming(packet)) => Polled::Incoming(packet),
            Ok(Event::Outgoing(_)) => Polled::Outgoing,
            Err(ConnectionError::ConnectionRefused(code)) => Polled::Refused(code),
            Err(e) => Polled::Ended(e),
        }
    }

    async fn subscribe(client: &Self::Handle, filters: &[&str]) {
        use rumqttc::v5::mqttbytes::{v5::Filter, QoS};
        let filters: Vec<Filter> = filters
            .iter()
            .map(|f| Filter::new(*f, QoS::AtLeastOnce))
            .collect();
        client.subscribe_many(filters).await.unwrap();
    }

    async fn publish(client: &Self::Handle, topic: &str, payload: Vec<u8>) {
        client
            .publish(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .unwrap();
    }

    fn suback(packet: &Self::Packet) -> Option<Vec<Self::Granted>> {
        match packet {
            rumqttc::v5::mqttbytes::v5::Packet::SubAck(ack) => Some(ack.return_codes.clone()),
            _ => None,
        }
    }

    fn is_puback(packet: &Self::Packet) -> bool {
        matches!(packet, rumqttc::v5::mqttbytes::v5::Packet::PubAck(_))
    }

    fn is_publish(packet: &Self::Packet) -> bool {
        matches!(packet, rumqttc::v5::mqttbytes::v5::Packet::Publish(_))
    }

    fn publish_of(packet: Self::Packet) -> Option<Self::Publish> {
        match packet {
            rumqttc::v5::mqttbytes::v5::Packet::Publish(p) => Some(p),
            _ => None,
        }
    }
}
