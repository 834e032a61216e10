//! Waiting for HELLO: realm lookup, authentication, WELCOME or ABORT.

use std::sync::Arc;

use junction_wire::message::{Hello, Welcome};
use junction_wire::{Message, SessionId, Value, dict};

use super::{Established, SessionInfo, State, Status, TransportInfo, abort_message};
use crate::error::Error;
use crate::features::router_roles;
use crate::ids;
use crate::limits;
use crate::outbox::{Outbound, Outbox};
use crate::realm::{Peer, Realm};
use crate::router::Router;
use crate::time::Now;

/// A connection that has not joined a realm yet.
pub struct Establishing {
    transport: TransportInfo,
}

impl Establishing {
    pub(super) fn new(transport: TransportInfo) -> Self {
        Self { transport }
    }

    pub(super) fn handle(
        self,
        router: &Router,
        outbox: &Arc<dyn Outbox>,
        now: Now,
        message: Message,
    ) -> (State, Status) {
        let result = match message {
            Message::Hello(hello) => self.hello(router, outbox, now, hello),
            // A client may give up before joining; nothing to answer.
            Message::Abort(_) => return (State::Closed, Status::Closed),
            other => Err(Error::ProtocolViolation(format!(
                "expected HELLO, got {} before the session was established",
                other.message_type().name()
            ))),
        };
        match result {
            Ok(established) => (State::Established(established), Status::Open),
            Err(error) => {
                metrics::counter!("junction_handshake_refusals_total", "reason" => error.uri())
                    .increment(1);
                outbox.push(Outbound::Message(abort_message(&error)));
                (State::Closed, Status::Closed)
            }
        }
    }

    fn hello(
        self,
        router: &Router,
        outbox: &Arc<dyn Outbox>,
        now: Now,
        hello: Hello,
    ) -> Result<Established, Error> {
        let realm =
            router.realm(&hello.realm).ok_or_else(|| Error::NoSuchRealm(hello.realm.clone()))?;
        let roles = match hello.details.get("roles") {
            Some(Value::Dict(roles)) if !roles.is_empty() => roles.clone(),
            _ => {
                return Err(Error::ProtocolViolation(
                    "HELLO.Details.roles must announce at least one role".into(),
                ));
            }
        };
        authenticate_anonymous(&realm, &hello)?;
        let limits = realm.limits();
        limits::check(limits.max_sessions, router.session_count(), "sessions on this router")?;
        limits::check(
            limits.max_sessions_per_realm,
            realm.session_count(),
            "sessions on this realm",
        )?;
        let id = ids::random(SessionId::new);
        let info = SessionInfo {
            id,
            realm: hello.realm.clone(),
            authid: format!("anonymous-{id}"),
            authrole: "anonymous".into(),
            authmethod: "anonymous".into(),
            authprovider: "junction".into(),
            authextra: Default::default(),
            transport: self.transport,
            roles,
            agent: hello.details.get("agent").and_then(Value::as_str).map(str::to_owned),
            established_at: now.wall,
        };
        let details = dict! {
            "realm" => info.realm.as_str(),
            "authid" => info.authid.as_str(),
            "authrole" => info.authrole.as_str(),
            "authmethod" => info.authmethod.as_str(),
            "authprovider" => info.authprovider.as_str(),
            "roles" => router_roles(realm.config()),
            "agent" => router.config().agent.as_str(),
        };
        outbox.push(Outbound::Message(Welcome { session: id, details }.into()));
        let peer = Arc::new(Peer::new(info, Arc::clone(outbox)));
        realm.attach(Arc::clone(&peer), now.wall);
        tracing::debug!(session = %id, realm = %realm.name(), "session established");
        Ok(Established::new(realm, peer))
    }
}

/// Accepts the client as anonymous if the realm allows it and the client offered it (or
/// offered nothing). Other methods arrive with the security layer.
fn authenticate_anonymous(realm: &Realm, hello: &Hello) -> Result<(), Error> {
    let offered: Vec<&str> = match hello.details.get("authmethods") {
        None | Some(Value::Null) => vec!["anonymous"],
        Some(Value::List(methods)) => methods.iter().filter_map(Value::as_str).collect(),
        Some(_) => {
            return Err(Error::ProtocolViolation(
                "HELLO.Details.authmethods must be a list of strings".into(),
            ));
        }
    };
    if realm.config().allow_anonymous && offered.contains(&"anonymous") {
        return Ok(());
    }
    let allowed = if realm.config().allow_anonymous { "anonymous" } else { "none" };
    Err(Error::NoMatchingAuthMethod(format!(
        "realm \"{}\" accepts the authentication methods [{allowed}]; the client offered [{}]",
        realm.name(),
        offered.join(", ")
    )))
}
