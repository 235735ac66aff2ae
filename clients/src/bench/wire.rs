//! A bare MQTT 3.1.1 connection for the load generator: rumqttc's packet codec over a
//! tokio socket, without rumqttc's event loop, so thousands of simulated users cost a
//! socket, two small buffers and one task each.

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, LastWill, Login, Packet, PubAck, Publish, Subscribe};
use rumqttc::mqttbytes::QoS;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Largest packet the load generator accepts from the broker.
const MAX_PACKET: usize = 256 * 1024;

pub struct Wire {
    stream: TcpStream,
    read: BytesMut,
    write: BytesMut,
    next_pkid: u16,
}

impl Wire {
    /// Connects from `source` (to spread past one address's ephemeral ports) and signs in,
    /// with an optional retained QoS 0 last will (`topic`, `payload`).
    pub async fn connect(
        broker: SocketAddr,
        source: Option<IpAddr>,
        client_id: &str,
        login: Option<(&str, &str)>,
        keepalive_secs: u16,
        will: Option<(&str, &[u8])>,
    ) -> Result<Wire> {
        let socket = match broker {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = source {
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding source address {ip}"))?;
        }
        let stream = socket
            .connect(broker)
            .await
            .with_context(|| format!("connecting to {broker}"))?;
        stream.set_nodelay(true)?;
        let mut wire = Wire {
            stream,
            read: BytesMut::with_capacity(512),
            write: BytesMut::with_capacity(256),
            next_pkid: 0,
        };
        let mut connect = Connect::new(client_id);
        connect.keep_alive = keepalive_secs;
        if let Some((user, password)) = login {
            connect.login = Some(Login::new(user, password));
        }
        if let Some((topic, payload)) = will {
            connect.last_will = Some(LastWill::new(topic, payload, QoS::AtMostOnce, true));
        }
        wire.send(Packet::Connect(connect)).await?;
        match wire.recv().await? {
            Packet::ConnAck(ack) if ack.code == rumqttc::ConnectReturnCode::Success => Ok(wire),
            Packet::ConnAck(ack) => bail!("{client_id}: connection refused: {:?}", ack.code),
            other => bail!("{client_id}: expected CONNACK, got {other:?}"),
        }
    }

    /// Subscribes at QoS 1 and waits for the SUBACK; fails if any filter was refused.
    pub async fn subscribe(&mut self, filters: &[String]) -> Result<()> {
        let pkid = self.pkid();
        let mut subscribe = Subscribe::new_many(
            filters
                .iter()
                .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)),
        );
        subscribe.pkid = pkid;
        self.send(Packet::Subscribe(subscribe)).await?;
        loop {
            match self.recv().await? {
                Packet::SubAck(ack) if ack.pkid == pkid => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    {
                        bail!("subscription refused: {filters:?}");
                    }
                    return Ok(());
                }
                // Retained messages may arrive before the SUBACK.
                Packet::Publish(p) => self.ack_delivery(&p),
                _ => {}
            }
        }
    }

    /// Queues a QoS 1 publish; returns its packet id. Call [`Wire::flush`] to send.
    pub fn publish(&mut self, topic: &str, payload: Vec<u8>) -> Result<u16> {
        let pkid = self.pkid();
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload);
        publish.pkid = pkid;
        Packet::Publish(publish)
            .write(&mut self.write, MAX_PACKET)
            .map_err(|e| anyhow!("encoding a publish: {e:?}"))?;
        Ok(pkid)
    }

    /// Queues a retained QoS 0 publish (presence). Call [`Wire::flush`] to send.
    pub fn publish_retained(&mut self, topic: &str, payload: &[u8]) -> Result<()> {
        let mut publish = Publish::new(topic, QoS::AtMostOnce, payload);
        publish.retain = true;
        Packet::Publish(publish)
            .write(&mut self.write, MAX_PACKET)
            .map_err(|e| anyhow!("encoding a publish: {e:?}"))?;
        Ok(())
    }

    pub fn ping(&mut self) {
        let _ = Packet::PingReq.write(&mut self.write, MAX_PACKET);
    }

    /// Queues the PUBACK a QoS 1 delivery needs.
    pub fn ack_delivery(&mut self, publish: &Publish) {
        if publish.qos == QoS::AtLeastOnce {
            let _ = Packet::PubAck(PubAck::new(publish.pkid)).write(&mut self.write, MAX_PACKET);
        }
    }

    pub async fn flush(&mut self) -> Result<()> {
        if !self.write.is_empty() {
            self.stream.write_all(&self.write).await?;
            self.write.clear();
        }
        Ok(())
    }

    /// Waits for the next packet from the broker. Cancel safe.
    pub async fn recv(&mut self) -> Result<Packet> {
        loop {
            if let Some(packet) = self.try_decode()? {
                return Ok(packet);
            }
            if self.stream.read_buf(&mut self.read).await? == 0 {
                bail!("connection closed by the broker");
            }
        }
    }

    /// A packet already buffered, if any.
    pub fn try_decode(&mut self) -> Result<Option<Packet>> {
        match Packet::read(&mut self.read, MAX_PACKET) {
            Ok(packet) => Ok(Some(packet)),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(anyhow!("bad packet from the broker: {e:?}")),
        }
    }

    async fn send(&mut self, packet: Packet) -> Result<()> {
        packet
            .write(&mut self.write, MAX_PACKET)
            .map_err(|e| anyhow!("encoding: {e:?}"))?;
        self.flush().await
    }

    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.wrapping_add(1).max(1);
        self.next_pkid
    }
}
