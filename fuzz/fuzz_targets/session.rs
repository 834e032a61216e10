//! The session state machine driven by arbitrary message sequences: the first octet picks the
//! serializer, then each message is a length octet and that many bytes. A bystander session on
//! the same realm must stay established whatever the fuzzed session does.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use junction_core::{Now, Outbound, Outbox, RealmConfig, Router, RouterConfig, Session, Status, TransportInfo, TransportKind};
use junction_wire::{Message, Serializer};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Discard(Mutex<usize>);

impl Outbox for Discard {
    fn push(&self, item: Outbound) {
        // Encode what a transport would write, to fuzz the encoders on router output too.
        if let Outbound::Event(shared) = &item {
            let _ = shared.encoded(Serializer::Json);
        }
        *self.0.lock().unwrap() += 1;
    }
}

fn session(router: &Arc<Router>, serializer: Serializer) -> Session {
    let transport = TransportInfo {
        kind: TransportKind::InProcess,
        serializer,
        peer: "fuzz".into(),
        tls: false,
        http_path: None,
        subprotocol: None,
    };
    Session::new(Arc::clone(router), transport, Arc::new(Discard::default()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else { return };
    let serializer = Serializer::ALL[usize::from(selector) % 3];
    let realms = vec![RealmConfig::open("realm1")];
    let router = Router::new(RouterConfig { realms, agent: "fuzz".into(), limits: Default::default() });
    let mut bystander = session(&router, Serializer::Json);
    let hello = Bytes::from_static(br#"[1, "realm1", {"roles": {"subscriber": {}, "callee": {}}}]"#);
    let hello = Serializer::Json.decode(&hello).expect("valid HELLO");
    assert_eq!(bystander.handle(Now::read(), hello), Status::Open);
    let mut fuzzed = session(&router, serializer);
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (frame, tail) = tail.split_at(len);
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
    let goodbye = Bytes::from_static(br#"[6, {}, "wamp.close.normal"]"#);
    let goodbye: Message = Serializer::Json.decode(&goodbye).expect("valid GOODBYE");
    assert_eq!(bystander.handle(Now::read(), goodbye), Status::Closed);
});
