//! Sign-in: what a CONNECT must carry to be let in, and the CONNACK codes for each refusal
//! (docs/protocol.md section 1).

use crate::codec::Version;
use roost_auth::{Identity, Role, TokenError, Verifier};
use roost_proto::chat::ChatMessage;
use roost_proto::id;
use rumqttd::protocol::{
    ConnectReturnCode, LastWill, LastWillProperties, Login, PublishProperties,
};

/// Why a CONNECT was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The token is missing or bad in any way.
    BadToken(TokenError),
    NoToken,
    /// The client id is neither `{sub}` nor `{sub}:{device}`, or empty where that is not allowed.
    ClientIdNotBound,
    /// A username that is not the token's `sub`.
    UsernameNotBound,
    /// A last will on a topic the user may not publish to.
    WillNotAllowed,
    /// A last will on a stored chat topic that is not a chat message.
    WillPayloadInvalid,
    /// A retained last will on a topic where retain is refused.
    WillRetainNotAllowed,
    MaxConnections,
    ServerBusy,
    /// A v5 Authentication Method: roost has no enhanced authentication.
    AuthenticationMethod,
}

impl Refusal {
    pub fn code(&self, version: Version) -> ConnectReturnCode {
        use ConnectReturnCode as C;
        match (self, version) {
            (Refusal::BadToken(_) | Refusal::NoToken, Version::V311) => C::BadUserNamePassword,
            (Refusal::BadToken(_) | Refusal::NoToken, Version::V5) => C::BadUserNamePassword,
            (Refusal::ClientIdNotBound, _) => C::ClientIdentifierNotValid,
            (Refusal::UsernameNotBound | Refusal::WillNotAllowed, _) => C::NotAuthorized,
            (Refusal::WillPayloadInvalid | Refusal::WillRetainNotAllowed, Version::V311) => {
                C::NotAuthorized
            }
            (Refusal::WillPayloadInvalid, Version::V5) => C::PayloadFormatInvalid,
            (Refusal::WillRetainNotAllowed, Version::V5) => C::ImplementationSpecificError,
            (Refusal::MaxConnections, Version::V311) => C::ServiceUnavailable,
            (Refusal::MaxConnections, Version::V5) => C::QuotaExceeded,
            (Refusal::ServerBusy, Version::V311) => C::ServiceUnavailable,
            (Refusal::ServerBusy, Version::V5) => C::ServerBusy,
            // Only v5 has the property.
            (Refusal::AuthenticationMethod, _) => C::BadAuthenticationMethod,
        }
    }

    /// Stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::BadToken(e) => e.reason(),
            Refusal::NoToken => "no_token",
            Refusal::ClientIdNotBound => "client_id_not_bound",
            Refusal::UsernameNotBound => "username_not_bound",
            Refusal::WillNotAllowed => "will_not_allowed",
            Refusal::WillPayloadInvalid => "will_payload_invalid",
            Refusal::WillRetainNotAllowed => "will_retain_not_allowed",
            Refusal::MaxConnections => "max_connections",
            Refusal::ServerBusy => "server_busy",
            Refusal::AuthenticationMethod => "authentication_method",
        }
    }

    /// What a v5 client reads in the CONNACK's reason string.
    pub fn describe(&self) -> &'static str {
        match self {
            Refusal::BadToken(_) => "the password is not a valid token",
            Refusal::NoToken => "a token is needed as the password",
            Refusal::ClientIdNotBound => "the client id must be the token's sub or sub:device",
            Refusal::UsernameNotBound => "the user name is not the token's sub",
            Refusal::WillNotAllowed => "not allowed to publish the will there",
            Refusal::WillPayloadInvalid => "the will on a chat topic is not a chat message",
            Refusal::WillRetainNotAllowed => "retain is not allowed on the will's topic",
            Refusal::MaxConnections => "the node is at its connection limit",
            Refusal::ServerBusy => "the node cannot take the connection now",
            Refusal::AuthenticationMethod => {
                "no enhanced authentication: sign in with a token as the password"
            }
        }
    }
}

/// Who connected, as established from a CONNECT.
#[derive(Debug)]
pub struct SignIn {
    pub identity: Identity,
    /// The client id the node knows the connection by, and its router session key: the
    /// client's own, or `@anon:{client id}` for anonymous clients (see `keys`).
    pub client_id: String,
    /// The client id was empty and the server made this one up (v5 returns it in the
    /// CONNACK as Assigned Client Identifier: the client's, not the router key).
    pub assigned: Option<String>,
}

/// Checks the token and binds the client id and username to it.
pub fn sign_in(
    verifier: &Verifier,
    allow_anonymous: bool,
    version: Version,
    client_id: &str,
    clean: bool,
    login: Option<&Login>,
) -> Result<SignIn, Refusal> {
    let password = login.map(|l| l.password.as_str()).unwrap_or_default();
    let username = login.map(|l| l.username.as_str()).unwrap_or_default();

    if password.is_empty() && allow_anonymous {
        // Development mode: the client id names the anonymous user; its session lives
        // apart from token users' (see `keys`). An empty one gets `auto-{random}`, as
        // MQTT 5 (and 3.1.1 with a clean session) allows.
        let assigned = if client_id.is_empty() {
            if version == Version::V311 && !clean {
                return Err(Refusal::ClientIdNotBound);
            }
            Some(format!("auto-{}", random_device()))
        } else {
            None
        };
        let client_id = assigned.as_deref().unwrap_or(client_id);
        if !id::is_valid_id(client_id) || client_id.len() > 59 {
            return Err(Refusal::ClientIdNotBound);
        }
        return Ok(SignIn {
            identity: Identity {
                user: format!("anon-{client_id}"),
                groups: Vec::new(),
                role: Role::User,
                expires_at: u64::MAX,
            },
            client_id: crate::keys::anonymous(client_id),
            assigned,
        });
    }
    if password.is_empty() {
        return Err(Refusal::NoToken);
    }
    let identity = verifier.verify(password).map_err(Refusal::BadToken)?;
    if !username.is_empty() && username != identity.user {
        return Err(Refusal::UsernameNotBound);
    }

    let (client_id, assigned) = if client_id.is_empty() {
        // MQTT 3.1.1 allows a server-assigned id only for a clean session.
        if version == Version::V311 && !clean {
            return Err(Refusal::ClientIdNotBound);
        }
        let assigned = format!("{}:{}", identity.user, random_device());
        (assigned.clone(), Some(assigned))
    } else if id::client_id_belongs_to(&identity.user, client_id) {
        (client_id.to_owned(), None)
    } else {
        return Err(Refusal::ClientIdNotBound);
    };
    Ok(SignIn {
        identity,
        client_id,
        assigned,
    })
}

fn random_device() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

/// A last will, kept by the front-end (not the router) so that it is published exactly
/// when the connection ends without a normal DISCONNECT.
#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub delay_secs: u32,
    /// The user it is published for: a retained will counts against their retained topics.
    pub user: String,
    /// The v5 will properties it is published with (user properties in order, content
    /// type, response topic, ...); boxed, as most wills have none.
    pub properties: Option<Box<PublishProperties>>,
}

impl Will {
    /// The will, published for `user`.
    pub fn owned_by(self, user: &str) -> Will {
        Will {
            user: user.to_owned(),
            ..self
        }
    }

    /// What a publish to the will's topic would have to pass besides the ACL: retain only
    /// where it is allowed, and a chat message on a stored chat topic.
    pub fn check(&self) -> Result<(), Refusal> {
        if self.retain && !crate::retained::may_retain(&self.topic) {
            return Err(Refusal::WillRetainNotAllowed);
        }
        if roost_proto::topic::is_stored(&self.topic) && ChatMessage::parse(&self.payload).is_err()
        {
            return Err(Refusal::WillPayloadInvalid);
        }
        Ok(())
    }

    /// The will of a CONNECT, or `Err` when its topic is not a valid publish topic.
    pub fn from_connect(
        will: Option<LastWill>,
        props: Option<&LastWillProperties>,
        session_expiry: u32,
    ) -> Result<Option<Will>, ()> {
        let Some(will) = will else { return Ok(None) };
        let topic = String::from_utf8(will.topic.to_vec()).map_err(|_| ())?;
        if !super::valid_publish_topic(&topic) {
            return Err(());
        }
        // A will waits for the shorter of its delay and the session's expiry.
        let delay = props.and_then(|p| p.delay_interval).unwrap_or(0);
        Ok(Some(Will {
            topic,
            payload: will.message.to_vec(),
            retain: will.retain,
            delay_secs: delay.min(session_expiry),
            user: String::new(),
            properties: props.and_then(publish_properties).map(Box::new),
        }))
    }
}

/// The properties a will is published with: all of its own but the delay, `roost-` user
/// properties removed (only the node stamps those); `None` when nothing is left.
fn publish_properties(will: &LastWillProperties) -> Option<PublishProperties> {
    let mut user_properties = will.user_properties.clone();
    roost_proto::stamp::strip(&mut user_properties);
    let props = PublishProperties {
        payload_format_indicator: will.payload_format_indicator,
        message_expiry_interval: will.message_expiry_interval,
        topic_alias: None,
        response_topic: will.response_topic.clone(),
        correlation_data: will.correlation_data.clone(),
        user_properties,
        subscription_identifiers: Vec::new(),
        content_type: will.content_type.clone(),
    };
    (props != PublishProperties::default()).then_some(props)
}
