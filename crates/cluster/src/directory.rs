//! The cluster directory: one JetStream key-value bucket where each node writes what it holds
//! (keys under its own name) and which every node watches to mirror the others.
//!
//! Keys (KV keys allow letters, digits, `-`, `_`, `/`, `=` and `.`):
//! - `n.<node>`: the node's heartbeat, put every second;
//! - `s.<node>.<session>`: a session ([`SessionRecord`]);
//! - `u.<node>.<session>.<subscription>`: a subscription ([`SubscriptionRecord`]);
//! - `r.<node>.<session>.<registration>`: a registration ([`RegistrationRecord`]);
//! - `c.<hash>`: the claim of a `single` registration ([`ClaimRecord`]), made with
//!   compare-and-set so that only one node's callee can hold it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use junction_core::cluster::stable_hash;
use junction_core::options::{MatchPolicy, RegisterOptions, SubscribeOptions};
use junction_core::{SessionInfo, TransportInfo, TransportKind};
use junction_wire::{
    Dict, RegistrationId, Serializer, SessionId, SubscriptionId, Uri, Value, dict, json,
};

/// The directory bucket.
pub(crate) const BUCKET: &str = "junction_directory";

/// A directory key, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Heartbeat { node: String },
    Session { node: String, session: SessionId },
    Subscription { node: String, session: SessionId, id: SubscriptionId },
    Registration { node: String, session: SessionId, id: RegistrationId },
    Claim,
}

impl Key {
    pub(crate) fn parse(key: &str) -> Option<Key> {
        let parts: Vec<&str> = key.split('.').collect();
        let n = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
        let node = || parts.get(1).map(|n| n.to_string());
        let session = || n(2).and_then(SessionId::new);
        Some(match (parts.first()?, parts.len()) {
            (&"n", 2) => Key::Heartbeat { node: node()? },
            (&"s", 3) => Key::Session { node: node()?, session: session()? },
            (&"u", 4) => Key::Subscription {
                node: node()?,
                session: session()?,
                id: n(3).and_then(SubscriptionId::new)?,
            },
            (&"r", 4) => Key::Registration {
                node: node()?,
                session: session()?,
                id: n(3).and_then(RegistrationId::new)?,
            },
            (&"c", 2) => Key::Claim,
            _ => return None,
        })
    }

    /// The session whose key this is, if any.
    pub(crate) fn session(&self) -> Option<SessionId> {
        match self {
            Key::Session { session, .. }
            | Key::Subscription { session, .. }
            | Key::Registration { session, .. } => Some(*session),
            Key::Heartbeat { .. } | Key::Claim => None,
        }
    }

    /// The node whose key this is (claims belong to none).
    pub(crate) fn node(&self) -> Option<&str> {
        match self {
            Key::Heartbeat { node }
            | Key::Session { node, .. }
            | Key::Subscription { node, .. }
            | Key::Registration { node, .. } => Some(node),
            Key::Claim => None,
        }
    }
}

pub(crate) fn heartbeat_key(node: &str) -> String {
    format!("n.{node}")
}

pub(crate) fn session_key(node: &str, session: SessionId) -> String {
    format!("s.{node}.{session}")
}

pub(crate) fn subscription_key(node: &str, session: SessionId, id: SubscriptionId) -> String {
    format!("u.{node}.{session}.{id}")
}

pub(crate) fn registration_key(node: &str, session: SessionId, id: RegistrationId) -> String {
    format!("r.{node}.{session}.{id}")
}

/// The claim key of a `single` registration: a hash, since URIs may hold characters KV keys
/// may not.
pub(crate) fn claim_key(realm: &Uri, procedure: &Uri, policy: MatchPolicy) -> String {
    let hash = stable_hash(&[realm.as_str(), policy.name(), procedure.as_str()]);
    format!("c.{hash:016x}")
}

/// A session, as other nodes mirror it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    realm: String,
    session: u64,
    authid: String,
    authrole: String,
    authroles: Vec<String>,
    authmethod: String,
    authprovider: String,
    authextra: Json,
    roles: Json,
    agent: Option<String>,
    established_ms: u64,
    transport: String,
    serializer: String,
    peer: String,
    tls: bool,
}

impl SessionRecord {
    pub(crate) fn new(info: &SessionInfo) -> Self {
        let established = info.established_at.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            realm: info.realm.to_string(),
            session: info.id.get(),
            authid: info.authid.to_string(),
            authrole: info.authrole.to_string(),
            authroles: info.authroles.clone(),
            authmethod: info.authmethod.clone(),
            authprovider: info.authprovider.clone(),
            authextra: json::from_dict(&info.authextra),
            roles: json::from_dict(&info.roles),
            agent: info.agent.clone(),
            established_ms: u64::try_from(established.as_millis()).unwrap_or(u64::MAX),
            transport: info.transport.kind.name().to_owned(),
            serializer: info.transport.serializer.name().to_owned(),
            peer: info.transport.peer.clone(),
            tls: info.transport.tls,
        }
    }

    pub(crate) fn realm(&self) -> Uri {
        Uri::from(self.realm.as_str())
    }

    /// The session's description, as its own node gives it.
    pub(crate) fn info(&self) -> Option<SessionInfo> {
        let serializer = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor]
            .into_iter()
            .find(|s| s.name() == self.serializer)?;
        Some(SessionInfo {
            id: SessionId::new(self.session)?,
            realm: self.realm(),
            authid: self.authid.as_str().into(),
            authrole: self.authrole.as_str().into(),
            authroles: self.authroles.clone(),
            authmethod: self.authmethod.clone(),
            authprovider: self.authprovider.clone(),
            authextra: json::to_dict(&self.authextra),
            transport: TransportInfo {
                kind: TransportKind::from_name(&self.transport)?,
                serializer,
                peer: self.peer.clone(),
                tls: self.tls,
                channel_bindings: Default::default(),
                http_path: None,
                subprotocol: None,
            },
            roles: json::to_dict(&self.roles),
            agent: self.agent.clone(),
            established_at: UNIX_EPOCH + Duration::from_millis(self.established_ms),
            ticket_id: None,
        })
    }
}

/// A subscription of a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SubscriptionRecord {
    realm: String,
    topic: String,
    #[serde(rename = "match")]
    policy: String,
}

impl SubscriptionRecord {
    pub(crate) fn new(realm: &Uri, topic: &Uri, policy: MatchPolicy) -> Self {
        Self { realm: realm.to_string(), topic: topic.to_string(), policy: policy.name().into() }
    }

    /// The topic and match policy a stored record names.
    pub(crate) fn read(value: &[u8]) -> Option<(Uri, MatchPolicy)> {
        let record: Self = serde_json::from_slice(value).ok()?;
        let options = dict! { "match" => record.policy.as_str() };
        let policy = SubscribeOptions::parse(&options).ok()?.match_policy;
        Some((Uri::from(record.topic.as_str()), policy))
    }
}

/// A registration of a session, with the options its first callee gave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RegistrationRecord {
    realm: String,
    procedure: String,
    options: Json,
}

impl RegistrationRecord {
    pub(crate) fn new(realm: &Uri, procedure: &Uri, options: &RegisterOptions) -> Self {
        let mut d: Dict = dict! {
            "match" => options.match_policy.name(),
            "invoke" => options.invoke.name(),
            "disclose_caller" => options.disclose_caller,
        };
        if let Some(limit) = options.concurrency {
            d.insert("concurrency".into(), Value::from(limit));
        }
        Self {
            realm: realm.to_string(),
            procedure: procedure.to_string(),
            options: json::from_dict(&d),
        }
    }

    /// The procedure and options a stored record names.
    pub(crate) fn read(value: &[u8]) -> Option<(Uri, RegisterOptions)> {
        let record: Self = serde_json::from_slice(value).ok()?;
        let options = RegisterOptions::parse(&json::to_dict(&record.options)).ok()?;
        Some((Uri::from(record.procedure.as_str()), options))
    }
}

/// Who holds a `single` registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClaimRecord {
    pub(crate) node: String,
    pub(crate) session: u64,
}

/// Milliseconds since the epoch (heartbeat values).
pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        let session = SessionId::new(42).unwrap();
        let (sub, reg) = (SubscriptionId::new(7).unwrap(), RegistrationId::new(8).unwrap());
        assert_eq!(
            Key::parse(&session_key("n-1", session)),
            Some(Key::Session { node: "n-1".into(), session })
        );
        assert_eq!(
            Key::parse(&subscription_key("a", session, sub)),
            Some(Key::Subscription { node: "a".into(), session, id: sub })
        );
        assert_eq!(
            Key::parse(&registration_key("a", session, reg)),
            Some(Key::Registration { node: "a".into(), session, id: reg })
        );
        assert_eq!(Key::parse(&heartbeat_key("b")), Some(Key::Heartbeat { node: "b".into() }));
        assert_eq!(Key::parse("s.a.notanumber"), None);
        assert_eq!(Key::parse("x.y"), None);
    }

    #[test]
    fn claim_keys_are_valid_kv_keys_whatever_the_uri() {
        let key = claim_key(&Uri::from("realm1"), &Uri::from("a b.*>"), MatchPolicy::Exact);
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
        assert_ne!(key, claim_key(&Uri::from("realm1"), &Uri::from("a b.*>"), MatchPolicy::Prefix));
    }

    #[test]
    fn registration_options_survive_the_record() {
        let options = RegisterOptions {
            match_policy: MatchPolicy::Prefix,
            invoke: junction_core::options::InvokePolicy::RoundRobin,
            concurrency: Some(3),
            disclose_caller: true,
            force_reregister: false,
        };
        let record = RegistrationRecord::new(&Uri::from("r"), &Uri::from("p"), &options);
        let stored = serde_json::to_vec(&record).unwrap();
        assert_eq!(RegistrationRecord::read(&stored), Some((Uri::from("p"), options)));
    }
}
