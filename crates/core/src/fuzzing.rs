//! The session state machine driven by arbitrary input, shared by the `session` fuzz target and
//! the test that replays its corpus. Not part of the stable API.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use junction_wire::Serializer;

use crate::{
    Now, Outbound, Outbox, RealmConfig, Router, RouterConfig, Session, Status, TransportInfo,
    TransportKind,
};

/// The first octet picks the serializer, then each message is a length octet and that many
/// bytes. Whatever the fuzzed session sends, it must not panic the router, and a bystander
/// session on the same realm must stay established.
pub fn drive_session(data: &[u8]) {
    let Some((&selector, mut rest)) = data.split_first() else { return };
    let serializer = Serializer::ALL[usize::from(selector) % Serializer::ALL.len()];
    let router = Router::new(RouterConfig {
        realms: vec![RealmConfig::open("realm1")],
        agent: "fuzz".into(),
        limits: Default::default(),
        admin_realm: None,
    });
    let mut bystander = session(&router, Serializer::Json);
    let hello = br#"[1, "realm1", {"roles": {"subscriber": {}, "callee": {}}}]"#;
    assert_eq!(bystander.handle(Now::read(), json(hello)), Status::Open);
    let mut fuzzed = session(&router, serializer);
    while let Some((&len, tail)) = rest.split_first() {
        let (frame, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        let status = match serializer.decode(&Bytes::copy_from_slice(frame)) {
            Ok(message) => fuzzed.handle(Now::read(), message),
            Err(error) => fuzzed.reject(Now::read(), &error),
        };
        router.expire(Instant::now() + Duration::from_secs(3600));
        if status == Status::Closed {
            break;
        }
    }
    fuzzed.transport_closed(Now::read());
    assert!(bystander.info().is_some(), "the bystander is still established");
    assert_eq!(
        bystander.handle(Now::read(), json(br#"[6, {}, "wamp.close.normal"]"#)),
        Status::Closed
    );
}

fn json(text: &'static [u8]) -> junction_wire::Message {
    match Serializer::Json.decode(&Bytes::from_static(text)) {
        Ok(message) => message,
        Err(error) => panic!("fixed test message does not decode: {error}"),
    }
}

fn session(router: &Arc<Router>, serializer: Serializer) -> Session {
    let transport = TransportInfo {
        kind: TransportKind::InProcess,
        serializer,
        peer: "fuzz".into(),
        tls: false,
        channel_bindings: Default::default(),
        http_path: None,
        subprotocol: None,
    };
    Session::new(Arc::clone(router), transport, Arc::new(Encoding::default()))
}

/// An outbox that encodes what a transport would write, so router output is fuzzed too.
#[derive(Default)]
struct Encoding(Mutex<usize>);

impl Outbox for Encoding {
    fn push(&self, item: Outbound) {
        let encoded = match item {
            Outbound::Message(message) => Serializer::Json.encode(&message).is_ok(),
            Outbound::Event(shared) => shared.encoded(Serializer::Cbor).is_ok(),
            Outbound::Close(goodbye) => Serializer::MsgPack.encode(&(*goodbye).into()).is_ok(),
        };
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += usize::from(encoded);
    }
}
