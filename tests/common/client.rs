//! A small rumqttc (MQTT 3.1.1) client for tests: connect, then read events in order.

use super::Node;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a test waits for something the broker owes it before failing.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Client {
    pub client: AsyncClient,
    events: mpsc::UnboundedReceiver<Packet>,
}

/// Options for `client_id`, signing in as `user` with `token`.
pub fn options(node: &Node, client_id: &str, user: &str, token: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, node.mqtt.ip().to_string(), node.mqtt.port());
    options.set_credentials(user, token);
    options.set_keep_alive(Duration::from_secs(30));
    options
}

impl Client {
    /// Connects and waits for the CONNACK; `Err(code)` if the broker refused.
    pub async fn connect(options: MqttOptions) -> Result<Client, ConnectReturnCode> {
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (tx, mut events) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(pump(eventloop, tx, ack_tx));
        let code = tokio::time::timeout(WAIT, ack_rx)
            .await
            .expect("no CONNACK in time")
            .expect("event loop ended before CONNACK");
        if code != ConnectReturnCode::Success {
            return Err(code);
        }
        // Drop the CONNACK itself from the stream of events.
        let _ = events.try_recv();
        Ok(Client { client, events })
    }

    /// Connects to `node` as `user` (client id = user) with a fresh token.
    pub async fn user(node: &Node, user: &str) -> Client {
        let token = super::token(user);
        Client::connect(options(node, user, user, &token))
            .await
            .expect("sign-in refused")
    }

    pub async fn subscribe(&mut self, filter: &str) -> u8 {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        match self.next_where(|p| matches!(p, Packet::SubAck(_))).await {
            Packet::SubAck(ack) => match ack.return_codes[0] {
                rumqttc::SubscribeReasonCode::Success(q) => q as u8,
                rumqttc::SubscribeReasonCode::Failure => 0x80,
            },
            _ => unreachable!(),
        }
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK (the router has taken it).
    pub async fn publish_acked(&mut self, topic: &str, payload: &str) {
        self.publish(topic, payload).await;
        self.next_where(|p| matches!(p, Packet::PubAck(_))).await;
    }

    /// The next PUBLISH received, as (topic, payload).
    pub async fn next_publish(&mut self) -> (String, String) {
        match self.next_where(|p| matches!(p, Packet::Publish(_))).await {
            Packet::Publish(p) => (p.topic, String::from_utf8_lossy(&p.payload).into_owned()),
            _ => unreachable!(),
        }
    }

    /// The next packet from the broker that `want` accepts; others are skipped.
    pub async fn next_where(&mut self, want: impl Fn(&Packet) -> bool) -> Packet {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let packet = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .expect("timed out waiting for the broker")
                .expect("connection closed");
            if want(&packet) {
                return packet;
            }
        }
    }

    /// Waits for the connection to end (the event loop reports an error).
    pub async fn closed(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(None) => return,
                Ok(Some(_)) => continue,
                Err(_) => panic!("connection still open"),
            }
        }
    }
}

async fn pump(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<Packet>,
    ack_tx: tokio::sync::oneshot::Sender<ConnectReturnCode>,
) {
    let mut ack_tx = Some(ack_tx);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(packet)) => {
                if let Packet::ConnAck(ack) = &packet {
                    if let Some(t) = ack_tx.take() {
                        let _ = t.send(ack.code);
                    }
                }
                if tx.send(packet).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                if let Some(t) = ack_tx.take() {
                    let _ = t.send(code);
                }
                return;
            }
            Err(_) => return,
        }
    }
}

impl Client {
    /// Like [`Client::connect`], also returning the CONNACK's session-present flag.
    pub async fn connect_session(
        options: MqttOptions,
    ) -> Result<(Client, bool), ConnectReturnCode> {
        let (client, eventloop) = AsyncClient::new(options, 100);
        let (tx, mut events) = mpsc::unbounded_channel();
        let (ack_tx, ack_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(pump(eventloop, tx, ack_tx));
        let code = tokio::time::timeout(WAIT, ack_rx)
            .await
            .expect("no CONNACK in time")
            .expect("event loop ended before CONNACK");
        if code != ConnectReturnCode::Success {
            return Err(code);
        }
        let session_present = match events.recv().await {
            Some(Packet::ConnAck(ack)) => ack.session_present,
            other => panic!("expected the CONNACK first, got {other:?}"),
        };
        Ok((Client { client, events }, session_present))
    }
}
