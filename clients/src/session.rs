//! One MQTT connection (v3.1.1 or v5, plain TCP) driven by a background task, with the
//! events this client cares about, and refusals turned into readable errors.

use anyhow::{anyhow, bail, Result};
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{ConnectReturnCode, ConnectionError, QoS, SubscribeReasonCode};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    /// The token (JWT); `None` in `--plain` mode.
    pub password: Option<String>,
    pub v5: bool,
    /// Limit for the first connection (TCP + CONNACK).
    pub timeout: Duration,
    /// Topic filters subscribed (QoS 1) after every CONNACK, reconnects included.
    pub subscriptions: Vec<String>,
}

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// CONNACK accepted (again, after a reconnect); subscriptions were re-sent.
    Connected,
    /// SUBACK for the subscriptions; `refused` lists the filters the broker denied.
    Subscribed { refused: Vec<String> },
    /// An application message.
    Message {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    /// A QoS 1 publish of ours was written with this packet id.
    Published { pkid: u16 },
    /// PUBACK for `pkid`; `refused` holds the v5 reason when it is a failure.
    PubAck { pkid: u16, refused: Option<String> },
    /// The connection dropped; the session reconnects by itself.
    Disconnected(String),
}

/// The sending half; cheap to clone.
#[derive(Clone)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

impl Client {
    /// Publishes at QoS 1, not retained. Completion shows up as [`Event::PubAck`].
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<()> {
        match self {
            Client::V4(c) => c.publish(topic, QoS::AtLeastOnce, false, payload).await?,
            Client::V5(c) => c.publish(topic, QoS5::AtLeastOnce, false, payload).await?,
        }
        Ok(())
    }

    /// Queues one SUBSCRIBE for all `filters` without waiting (called from the task that
    /// drains the request queue, so it must not block on it). v5 filters are No Local:
    /// this connection's own publishes are not delivered back to it.
    fn subscribe_many(&self, filters: &[String]) -> Result<()> {
        match self {
            Client::V4(c) => c.try_subscribe_many(
                filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)),
            )?,
            Client::V5(c) => c.try_subscribe_many(filters.iter().map(|f| {
                let mut filter = p5::Filter::new(f.clone(), QoS5::AtLeastOnce);
                filter.nolocal = true;
                filter
            }))?,
        }
        Ok(())
    }

    async fn disconnect(&self) -> Result<()> {
        match self {
            Client::V4(c) => c.disconnect().await?,
            Client::V5(c) => c.disconnect().await?,
        }
        Ok(())
    }
}

/// A live connection: publish through `client`, read with [`Session::next`].
pub struct Session {
    pub client: Client,
    pub client_id: String,
    events: mpsc::Receiver<Result<Event, String>>,
    /// Events seen while connecting that the caller still has to see.
    early: VecDeque<Event>,
    driver: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Connects and waits for the CONNACK (and the SUBACK, when there are subscriptions).
    /// Fails with the CONNACK code spelled out when the broker refuses. The SUBACK (with
    /// any refused filters) is still returned by the first [`Session::next`].
    pub async fn connect(opts: &ConnectOptions) -> Result<Session> {
        let (tx, events) = mpsc::channel(1024);
        let (client, driver) = if opts.v5 {
            let mut o = rumqttc::v5::MqttOptions::new(&opts.client_id, &opts.host, opts.port);
            o.set_keep_alive(Duration::from_secs(30));
            o.set_max_packet_size(Some(1 << 20));
            if let Some(pw) = &opts.password {
                o.set_credentials(opts.username.clone().unwrap_or_default(), pw.clone());
            }
            let (c, el) = rumqttc::v5::AsyncClient::new(o, 256);
            let client = Client::V5(c);
            (
                client.clone(),
                tokio::spawn(drive(
                    Loop::V5(Box::new(el)),
                    client,
                    opts.subscriptions.clone(),
                    tx,
                )),
            )
        } else {
            let mut o = rumqttc::MqttOptions::new(&opts.client_id, &opts.host, opts.port);
            o.set_keep_alive(Duration::from_secs(30));
            o.set_max_packet_size(1 << 20, 1 << 20);
            if let Some(pw) = &opts.password {
                o.set_credentials(opts.username.clone().unwrap_or_default(), pw.clone());
            }
            let (c, el) = rumqttc::AsyncClient::new(o, 256);
            let client = Client::V4(c);
            (
                client.clone(),
                tokio::spawn(drive(
                    Loop::V4(Box::new(el)),
                    client,
                    opts.subscriptions.clone(),
                    tx,
                )),
            )
        };
        let mut session = Session {
            client,
            client_id: opts.client_id.clone(),
            events,
            early: VecDeque::new(),
            driver,
        };
        let addr = format!("{}:{}", opts.host, opts.port);
        let ready = async {
            loop {
                match session.recv().await? {
                    Event::Connected if opts.subscriptions.is_empty() => return anyhow::Ok(()),
                    Event::Connected => {}
                    ev @ Event::Subscribed { .. } => {
                        session.early.push_back(ev);
                        return Ok(());
                    }
                    ev => session.early.push_back(ev),
                }
            }
        };
        match tokio::time::timeout(opts.timeout, ready).await {
            Ok(Ok(())) => Ok(session),
            Ok(Err(e)) => Err(e.context(format!("cannot connect to {addr}"))),
            Err(_) => bail!("timed out after {:?} connecting to {addr}", opts.timeout),
        }
    }

    /// The next event; an error when the connection is lost for good (refused on
    /// reconnect, or closed).
    pub async fn next(&mut self) -> Result<Event> {
        match self.early.pop_front() {
            Some(ev) => Ok(ev),
            None => self.recv().await,
        }
    }

    async fn recv(&mut self) -> Result<Event> {
        match self.events.recv().await {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(msg)) => Err(anyhow!(msg)),
            None => Err(anyhow!("connection closed")),
        }
    }

    /// Sends DISCONNECT and waits (briefly) for it to be written.
    pub async fn close(self) {
        if self.client.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.driver).await;
        } else {
            self.driver.abort();
        }
    }
}

const NOT_MQTT: &str = "the server did not answer CONNECT with a CONNACK (not an MQTT port?)";

/// The event loop of either protocol version.
enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// One poll of the event loop, version-independent.
enum Polled {
    ConnAck,
    Event(Event),
    /// Our DISCONNECT went out: the session is over.
    Closed,
    /// Nothing this client reports (pings, our own acks, ...).
    Skip,
    /// `refused`: a CONNACK refusal (final); else a connection error.
    Failed {
        refused: Option<String>,
        error: String,
    },
}

impl Loop {
    async fn poll(&mut self, subs: &[String]) -> Polled {
        match self {
            Loop::V4(el) => poll_v4(el, subs).await,
            Loop::V5(el) => poll_v5(el, subs).await,
        }
    }
}

async fn poll_v4(el: &mut rumqttc::EventLoop, subs: &[String]) -> Polled {
    use rumqttc::{Event as E, Outgoing, Packet};
    Polled::Event(match el.poll().await {
        Ok(E::Incoming(Packet::ConnAck(_))) => return Polled::ConnAck,
        Ok(E::Incoming(Packet::SubAck(s))) => Event::Subscribed {
            refused: refused_filters(
                subs,
                s.return_codes
                    .iter()
                    .map(|c| !matches!(c, SubscribeReasonCode::Success(_))),
            ),
        },
        Ok(E::Incoming(Packet::Publish(p))) => Event::Message {
            topic: p.topic,
            payload: p.payload.to_vec(),
            retain: p.retain,
        },
        Ok(E::Incoming(Packet::PubAck(a))) => Event::PubAck {
            pkid: a.pkid,
            refused: None,
        },
        Ok(E::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => Event::Published { pkid },
        Ok(E::Outgoing(Outgoing::Disconnect)) => return Polled::Closed,
        Ok(_) => return Polled::Skip,
        Err(e) => {
            return Polled::Failed {
                refused: match &e {
                    ConnectionError::ConnectionRefused(code) => Some(connack_v4(*code)),
                    _ => None,
                },
                error: match &e {
                    ConnectionError::NotConnAck(_) => NOT_MQTT.to_string(),
                    e => e.to_string(),
                },
            }
        }
    })
}

async fn poll_v5(el: &mut rumqttc::v5::EventLoop, subs: &[String]) -> Polled {
    use p5::Packet;
    use rumqttc::v5::{ConnectionError as CE, Event as E, StateError};
    use rumqttc::Outgoing;
    Polled::Event(match el.poll().await {
        Ok(E::Incoming(Packet::ConnAck(_))) => return Polled::ConnAck,
        Ok(E::Incoming(Packet::SubAck(s))) => Event::Subscribed {
            refused: refused_filters(
                subs,
                s.return_codes
                    .iter()
                    .map(|c| !matches!(c, p5::SubscribeReasonCode::Success(_))),
            ),
        },
        Ok(E::Incoming(Packet::Publish(p))) => Event::Message {
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.to_vec(),
            retain: p.retain,
        },
        Ok(E::Incoming(Packet::PubAck(a))) => Event::PubAck {
            pkid: a.pkid,
            refused: puback_v5(&a),
        },
        Ok(E::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => Event::Published { pkid },
        Ok(E::Outgoing(Outgoing::Disconnect)) => return Polled::Closed,
        Ok(_) => return Polled::Skip,
        Err(e) => {
            return Polled::Failed {
                refused: match &e {
                    CE::ConnectionRefused(code) => Some(connack_v5(*code)),
                    // The token expired: reconnecting with it would only be refused.
                    CE::MqttState(StateError::ServerDisconnect {
                        reason_code: p5::DisconnectReasonCode::MaximumConnectTime,
                        reason_string,
                    }) => Some(format!(
                        "disconnected by the broker: {} (DISCONNECT 0xA0); get a new token and connect again",
                        reason_string.as_deref().unwrap_or("token expired").escape_debug()
                    )),
                    _ => None,
                },
                error: match &e {
                    CE::NotConnAck(_) => NOT_MQTT.to_string(),
                    e => e.to_string(),
                },
            };
        }
    })
}

/// Runs the event loop, (re)subscribing after every CONNACK, and forwards events to the
/// session. Errors before the first CONNACK and CONNACK refusals are final; later
/// connection losses are reported and retried every second.
async fn drive(
    mut el: Loop,
    client: Client,
    subs: Vec<String>,
    tx: mpsc::Sender<Result<Event, String>>,
) {
    let mut connected_once = false;
    loop {
        let sent = match el.poll(&subs).await {
            Polled::ConnAck => {
                connected_once = true;
                if !subs.is_empty() {
                    if let Err(e) = client.subscribe_many(&subs) {
                        let _ = tx.send(Err(format!("cannot subscribe: {e}"))).await;
                        return;
                    }
                }
                tx.send(Ok(Event::Connected)).await
            }
            Polled::Event(ev) => tx.send(Ok(ev)).await,
            Polled::Closed => return,
            Polled::Skip => continue,
            Polled::Failed {
                refused: Some(why), ..
            } => {
                let _ = tx.send(Err(why)).await;
                return;
            }
            Polled::Failed { error, .. } if !connected_once => {
                let _ = tx.send(Err(error)).await;
                return;
            }
            Polled::Failed { error, .. } => {
                let sent = tx.send(Ok(Event::Disconnected(error))).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                sent
            }
        };
        if sent.is_err() {
            return; // the session is gone
        }
    }
}

fn refused_filters(subs: &[String], failed: impl Iterator<Item = bool>) -> Vec<String> {
    subs.iter()
        .zip(failed)
        .filter(|(_, failed)| *failed)
        .map(|(f, _)| f.clone())
        .collect()
}

/// A v3.1.1 CONNACK refusal, with what it means for roost (docs/protocol.md section 1).
pub fn connack_v4(code: ConnectReturnCode) -> String {
    let (n, meaning) = match code {
        ConnectReturnCode::Success => (0, "accepted"),
        ConnectReturnCode::RefusedProtocolVersion => (1, "unacceptable protocol version"),
        ConnectReturnCode::BadClientId => (
            2,
            "identifier rejected (roost: the client id must be {user} or {user}:{device} of the token's sub)",
        ),
        ConnectReturnCode::ServiceUnavailable => (3, "server unavailable (busy or at max connections)"),
        ConnectReturnCode::BadUserNamePassword => (
            4,
            "bad user name or password (roost: the token was rejected: bad signature, expired, not yet valid, wrong iss/aud or algorithm)",
        ),
        ConnectReturnCode::NotAuthorized => (5, "not authorized (roost: the user name must equal the token's sub)"),
    };
    format!("connection refused by the broker: CONNACK return code {n}, {meaning}")
}

/// A v5 CONNACK refusal, with what it means for roost.
pub fn connack_v5(code: p5::ConnectReturnCode) -> String {
    use p5::ConnectReturnCode as C;
    let (n, meaning): (u8, &str) = match code {
        C::Success => (0x00, "success"),
        C::UnspecifiedError => (0x80, "unspecified error"),
        C::MalformedPacket => (0x81, "malformed packet"),
        C::ProtocolError => (0x82, "protocol error"),
        C::ImplementationSpecificError => (0x83, "implementation specific error"),
        C::RefusedProtocolVersion | C::UnsupportedProtocolVersion => (0x84, "unsupported protocol version"),
        C::BadClientId | C::ClientIdentifierNotValid => (
            0x85,
            "client identifier not valid (roost: must be {user} or {user}:{device} of the token's sub)",
        ),
        C::BadUserNamePassword => (
            0x86,
            "bad user name or password (roost: the token was rejected: bad signature, expired, not yet valid, wrong iss/aud or algorithm)",
        ),
        C::NotAuthorized => (0x87, "not authorized (roost: the user name must equal the token's sub)"),
        C::ServiceUnavailable | C::ServerUnavailable => (0x88, "server unavailable"),
        C::ServerBusy => (0x89, "server busy"),
        C::Banned => (0x8A, "banned"),
        C::BadAuthenticationMethod => (0x8C, "bad authentication method"),
        C::TopicNameInvalid => (0x90, "topic name invalid"),
        C::PacketTooLarge => (0x95, "packet too large"),
        C::QuotaExceeded => (0x97, "quota exceeded (max connections)"),
        C::PayloadFormatInvalid => (0x99, "payload format invalid"),
        C::RetainNotSupported => (0x9A, "retain not supported"),
        C::QoSNotSupported => (0x9B, "QoS not supported"),
        C::UseAnotherServer => (0x9C, "use another server"),
        C::ServerMoved => (0x9D, "server moved"),
        C::ConnectionRateExceeded => (0x9F, "connection rate exceeded"),
    };
    format!("connection refused by the broker: CONNACK reason 0x{n:02X}, {meaning}")
}

/// `None` for a successful v5 PUBACK, else the reason (and the server's reason string).
fn puback_v5(ack: &p5::PubAck) -> Option<String> {
    use p5::PubAckReason as R;
    let (n, meaning): (u8, &str) = match ack.reason {
        R::Success | R::NoMatchingSubscribers => return None,
        R::UnspecifiedError => (0x80, "unspecified error"),
        R::ImplementationSpecificError => (0x83, "implementation specific error"),
        R::NotAuthorized => (0x87, "not authorized"),
        R::TopicNameInvalid => (0x90, "topic name invalid"),
        R::PacketIdentifierInUse => (0x91, "packet identifier in use"),
        R::QuotaExceeded => (0x97, "quota exceeded"),
        R::PayloadFormatInvalid => (0x99, "payload format invalid"),
    };
    let detail = ack
        .properties
        .as_ref()
        .and_then(|p| p.reason_string.as_deref())
        .map(|s| format!(" ({})", crate::display::sanitize(s.as_bytes())))
        .unwrap_or_default();
    Some(format!("PUBACK reason 0x{n:02X}, {meaning}{detail}"))
}
