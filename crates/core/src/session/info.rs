//! What the router knows about a session: the one representation used everywhere a session is
//! described (WELCOME, the session meta API, logs).

use std::sync::Arc;
use std::time::SystemTime;

use junction_wire::{Dict, Serializer, SessionId, Uri, Value, dict};

/// Which kind of transport carries a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// WebSocket (RFC 6455).
    WebSocket,
    /// RawSocket over TCP.
    RawSocket,
    /// RawSocket over a Unix domain socket.
    UnixRawSocket,
    /// In-process (tests, embedded clients).
    InProcess,
}

impl TransportKind {
    /// The name used in session descriptions.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::RawSocket => "rawsocket",
            TransportKind::UnixRawSocket => "rawsocket-unix",
            TransportKind::InProcess => "inprocess",
        }
    }

    /// The kind [`TransportKind::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::WebSocket, Self::RawSocket, Self::UnixRawSocket, Self::InProcess]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// The TLS channel bindings of a connection: each identifies this one TLS connection, so a
/// signature over one cannot be relayed over another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    /// `tls-exporter` (RFC 9266): 32 octets of keying material, on TLS 1.3 connections.
    pub tls_exporter: Option<[u8; 32]>,
    /// `tls-unique` (RFC 5929): the handshake's first Finished message, on TLS 1.2 connections.
    pub tls_unique: Option<[u8; 12]>,
}

/// The connection a session runs over.
#[derive(Debug, Clone)]
pub struct TransportInfo {
    /// The transport type.
    pub kind: TransportKind,
    /// The serializer negotiated on it.
    pub serializer: Serializer,
    /// The peer's address (`ip:port`, or a socket path).
    pub peer: String,
    /// Whether the connection is encrypted with TLS.
    pub tls: bool,
    /// What cryptosign can bind a signature to.
    pub channel_bindings: ChannelBindings,
    /// The HTTP path of a WebSocket connection.
    pub http_path: Option<String>,
    /// The WebSocket subprotocol agreed.
    pub subprotocol: Option<String>,
}

impl TransportInfo {
    /// The transport as a dictionary.
    pub fn to_dict(&self) -> Dict {
        let mut d = dict! {
            "type" => self.kind.name(),
            "serializer" => self.serializer.name(),
            "peer" => self.peer.as_str(),
            "tls" => self.tls,
        };
        if let Some(path) = &self.http_path {
            d.insert("http_path".into(), Value::from(path.as_str()));
        }
        if let Some(protocol) = &self.subprotocol {
            d.insert("protocol".into(), Value::from(protocol.as_str()));
        }
        d
    }
}

/// An established session, as the router describes it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session's id.
    pub id: SessionId,
    /// The realm it is attached to.
    pub realm: Uri,
    /// The authenticated identity.
    pub authid: Arc<str>,
    /// The role the session acts under.
    pub authrole: Arc<str>,
    /// Every role: `authrole` first, then the user's other groups.
    pub authroles: Vec<String>,
    /// How the session authenticated.
    pub authmethod: String,
    /// Who vouched for the authentication.
    pub authprovider: String,
    /// Extra authentication data handed back to the client.
    pub authextra: Dict,
    /// The connection.
    pub transport: TransportInfo,
    /// The roles and features the client announced in HELLO.
    pub roles: Dict,
    /// The client's agent string, if it sent one.
    pub agent: Option<String>,
    /// When the session was established.
    pub established_at: SystemTime,
    /// The id of the router-issued ticket it authenticated with (authmethod `ticket` also
    /// accepts the user's password, which leaves this `None`).
    pub ticket_id: Option<String>,
}

impl SessionInfo {
    /// Whether the client announced `feature` for `role` in HELLO.
    pub fn has_feature(&self, role: &str, feature: &str) -> bool {
        self.roles
            .get(role)
            .and_then(Value::as_dict)
            .and_then(|r| r.get("features"))
            .and_then(Value::as_dict)
            .and_then(|f| f.get(feature))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The session as a dictionary (the session meta API's `session` type).
    pub fn to_dict(&self) -> Dict {
        let mut d = dict! {
            "session" => self.id.get(),
            "realm" => self.realm.as_str(),
            "authid" => Arc::clone(&self.authid),
            "authrole" => Arc::clone(&self.authrole),
            "authroles" => Value::List(self.authroles.iter().map(|r| Value::from(r.as_str())).collect()),
            "authmethod" => self.authmethod.as_str(),
            "authprovider" => self.authprovider.as_str(),
            "authextra" => self.authextra.clone(),
            "transport" => self.transport.to_dict(),
            "roles" => self.roles.clone(),
            "established" => crate::meta::timestamp(self.established_at),
        };
        // Only what the client said: no `null` agent for clients that sent none.
        if let Some(agent) = &self.agent {
            d.insert("agent".into(), Value::from(agent.as_str()));
        }
        d
    }
}
