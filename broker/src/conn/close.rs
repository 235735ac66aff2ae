//! Why a connection ends, and what that means for the client: the v5 DISCONNECT reason
//! it is told, and whether its will goes out.

use crate::accounts::connected::Ended;
use rumqttd::protocol::DisconnectReasonCode;

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum Close {
    /// DISCONNECT from the client; `will` asks for the will anyway (v5 reason 0x04).
    Disconnect {
        will: bool,
    },
    PeerGone,
    Io(std::io::Error),
    KeepAlive,
    TokenExpired,
    /// The router dropped the link: another connection took this client id.
    TakenOver,
    /// The client took nothing written to it within `limits.write_timeout`.
    SlowConsumer,
    /// The client broke the protocol; v5 clients are told why.
    Protocol(DisconnectReasonCode, &'static str),
    /// The node drains (SIGTERM, `roost drain`): the client should reconnect elsewhere.
    Drain,
    /// Serving the connection panicked (a bug): it is closed and cleaned up all the same.
    Internal,
    /// The user's account was disabled or deleted.
    Account(Ended),
    /// A password sign-in reached `accounts.token_ttl`.
    SignInExpired,
}

impl Close {
    /// The DISCONNECT a v5 client gets before the socket closes, if any.
    pub(crate) fn v5_reason(&self) -> Option<DisconnectReasonCode> {
        match self {
            Close::KeepAlive => Some(DisconnectReasonCode::KeepAliveTimeout),
            Close::TokenExpired | Close::SignInExpired => {
                Some(DisconnectReasonCode::MaximumConnectTime)
            }
            Close::Account(_) => Some(DisconnectReasonCode::AdministrativeAction),
            Close::TakenOver => Some(DisconnectReasonCode::SessionTakenOver),
            Close::Protocol(code, _) => Some(*code),
            Close::Internal => Some(DisconnectReasonCode::ImplementationSpecificError),
            Close::Drain => Some(DisconnectReasonCode::ServerShuttingDown),
            // A client that does not read would not read a DISCONNECT either.
            Close::Disconnect { .. } | Close::PeerGone | Close::Io(_) | Close::SlowConsumer => None,
        }
    }

    /// Why, in words, for the v5 DISCONNECT's reason string.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Close::KeepAlive => "keepalive timeout",
            Close::TokenExpired => "token expired",
            Close::SignInExpired => "sign-in expired; sign in again",
            Close::Account(why) => why.describe(),
            Close::TakenOver => "session taken over by another connection",
            Close::Protocol(_, why) => why,
            Close::Internal => "internal error",
            Close::Disconnect { .. } => "disconnected by the client",
            Close::PeerGone | Close::Io(_) => "connection lost",
            Close::SlowConsumer => "slow consumer",
            Close::Drain => "server shutting down; reconnect",
        }
    }

    pub(crate) fn publishes_will(&self) -> bool {
        // A drained client did nothing wrong and comes back elsewhere: no will.
        !matches!(self, Close::Disconnect { will: false } | Close::Drain)
    }
}
