//! A test client: a [`Session`] whose outbox is an in-memory queue.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use junction_wire::{Message, Serializer};
use serde_json::{Value as Json, json};

use crate::session::ChannelBindings;
use crate::{
    Outbound, Outbox, RealmConfig, Router, RouterConfig, Session, Status, TransportInfo,
    TransportKind,
};

/// Records what the router sends to one client.
#[derive(Default)]
pub(super) struct Recorder(Mutex<VecDeque<Outbound>>);

impl Outbox for Recorder {
    fn push(&self, item: Outbound) {
        self.0.lock().expect("recorder lock").push_back(item);
    }
}

pub(super) struct Client {
    pub(super) session: Session,
    outbox: Arc<Recorder>,
}

/// A router with `realm1` and `realm2` open to anonymous clients, disclosing nobody by
/// default so tests see exactly what each option adds.
pub(super) fn router() -> Arc<Router> {
    let plain = |name| RealmConfig {
        disclose_caller: false,
        disclose_publisher: false,
        ..RealmConfig::open(name)
    };
    router_with(vec![plain("realm1"), plain("realm2")])
}

/// A router with the given realms.
pub(super) fn router_with(realms: Vec<RealmConfig>) -> Arc<Router> {
    Router::new(RouterConfig {
        realms,
        agent: "junction-test".into(),
        limits: Default::default(),
        admin_realm: None,
    })
}

/// Parses a message written in JSON.
pub(super) fn msg(json: &str) -> Message {
    Serializer::Json.decode(&Bytes::copy_from_slice(json.as_bytes())).expect("test message decodes")
}

impl Client {
    pub(super) fn connect(router: &Arc<Router>) -> Self {
        Self::connect_with_bindings(router, None)
    }

    /// Connects as over TLS with these channel bindings.
    pub(super) fn connect_over_tls(router: &Arc<Router>, bindings: ChannelBindings) -> Self {
        Self::connect_with_bindings(router, Some(bindings))
    }

    fn connect_with_bindings(router: &Arc<Router>, tls: Option<ChannelBindings>) -> Self {
        let outbox = Arc::new(Recorder::default());
        let transport = TransportInfo {
            kind: TransportKind::InProcess,
            serializer: Serializer::Json,
            peer: "test".into(),
            tls: tls.is_some(),
            channel_bindings: tls.unwrap_or_default(),
            http_path: None,
            subprotocol: None,
        };
        let session =
            Session::new(Arc::clone(router), transport, Arc::clone(&outbox) as Arc<dyn Outbox>);
        Self { session, outbox }
    }

    /// Connects and joins `realm` with the given client roles; returns the client and its session id.
    pub(super) fn join_with_roles(router: &Arc<Router>, realm: &str, roles: Json) -> (Self, u64) {
        let mut client = Self::connect(router);
        let hello = json!([1, realm, {"roles": roles}]).to_string();
        assert_eq!(client.try_send(&hello), Status::Open);
        let welcome = client.recv().expect("WELCOME");
        assert_eq!(welcome[0], 2, "expected WELCOME, got {welcome}");
        let id = welcome[1].as_u64().expect("session id");
        (client, id)
    }

    pub(super) fn join(router: &Arc<Router>, realm: &str) -> (Self, u64) {
        let roles = json!({"publisher": {}, "subscriber": {}, "caller": {}, "callee": {"features": {"call_canceling": true, "progressive_call_results": true}}});
        Self::join_with_roles(router, realm, roles)
    }

    /// Sends a message, returning whether the session stays open.
    pub(super) fn try_send(&mut self, json: &str) -> Status {
        self.session.handle(crate::Now::read(), msg(json))
    }

    /// Sends a message whose effect the test checks through what comes back.
    pub(super) fn send(&mut self, json: &str) {
        let _ = self.try_send(json);
    }

    /// The connection drops without GOODBYE.
    pub(super) fn disconnect(&mut self) {
        self.session.transport_closed(crate::Now::read());
    }

    /// The next message the router sent, as JSON (through the real JSON encoder).
    pub(super) fn recv(&self) -> Option<Json> {
        let item = self.outbox.0.lock().expect("recorder lock").pop_front()?;
        let bytes = match item {
            Outbound::Message(m) => Serializer::Json.encode(&m).expect("encodes"),
            Outbound::Event(shared) => shared.encoded(Serializer::Json).expect("encodes"),
            Outbound::Close(goodbye) => {
                Serializer::Json.encode(&(*goodbye).into()).expect("encodes")
            }
        };
        Some(serde_json::from_slice(&bytes).expect("valid JSON"))
    }

    /// Asserts nothing more was sent.
    pub(super) fn assert_silent(&self) {
        if let Some(m) = self.recv() {
            panic!("expected no message, got {m}");
        }
    }
}
