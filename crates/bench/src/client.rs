//! A small WAMP client for the load generator: connect, join, register, subscribe, and build
//! the messages the scenarios send. Everything is encoded and decoded with `junction-wire`.
//!
//! The client accepts the shapes the relay forwards as well as the router's: a callee treats a
//! CALL like an INVOCATION, a caller treats a YIELD like a RESULT and a subscriber treats a
//! PUBLISH like an EVENT (see `relay.rs` for why).

use std::net::{IpAddr, SocketAddr};

use anyhow::bail;
use bytes::Bytes;

use junction_wire::message::{Call, Goodbye, Hello, Publish, Register, Subscribe, Yield};
use junction_wire::value::Value;
use junction_wire::{Data, Dict, Message, MessageType, Payload, RequestId, Serializer, Uri, dict};

use crate::link::{self, Incoming, Reader, Transport, Writer};
use crate::peek;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The TCP address serving both transports.
    pub addr: SocketAddr,
    /// The WebSocket path (`/ws` for Junction and Crossbar).
    pub ws_path: String,
    /// The realm to join.
    pub realm: String,
    /// The transport to speak.
    pub transport: Transport,
}

/// One joined WAMP session.
pub struct Client {
    /// The receiving half.
    pub reader: Reader,
    /// The sending half.
    pub writer: Writer,
    /// The serializer this session speaks.
    pub serializer: Serializer,
    /// The next request id to use.
    next_request: u64,
}

impl Client {
    /// Connects, sends HELLO and waits for WELCOME.
    pub async fn join(
        endpoint: &Endpoint,
        serializer: Serializer,
        source: Option<IpAddr>,
    ) -> anyhow::Result<Self> {
        Self::join_with(endpoint, serializer, source, hello(endpoint, serializer)?).await
    }

    /// Connects, sends `hello` (from [`hello`], encoded once for many joins) and waits for
    /// WELCOME, recognised from its type code alone.
    pub async fn join_with(
        endpoint: &Endpoint,
        serializer: Serializer,
        source: Option<IpAddr>,
        hello: Bytes,
    ) -> anyhow::Result<Self> {
        let (reader, writer) =
            link::connect(endpoint.addr, endpoint.transport, serializer, &endpoint.ws_path, source)
                .await?;
        let mut client = Client { reader, writer, serializer, next_request: 1 };
        client.writer.send(hello).await?;
        loop {
            match client.reader.recv().await? {
                Incoming::Message(bytes) => {
                    const WELCOME: u64 = MessageType::Welcome as u64;
                    if peek::message_type(serializer, &bytes) == Some(WELCOME) {
                        return Ok(client);
                    }
                    bail!("expected WELCOME, got {:?}", serializer.decode(&bytes));
                }
                Incoming::Ping(payload) => client.writer.pong(payload).await?,
                Incoming::Closed => bail!("connection closed while waiting for WELCOME"),
            }
        }
    }

    /// Registers `procedure` and waits for REGISTERED.
    pub async fn register(&mut self, procedure: &str) -> anyhow::Result<()> {
        let register = Register {
            request: self.request_id(),
            options: Dict::new(),
            procedure: Uri::new(procedure),
        };
        match self.request(register.into()).await? {
            Message::Registered(_) => Ok(()),
            other => bail!("REGISTER {procedure}: expected REGISTERED, got {other:?}"),
        }
    }

    /// Subscribes to `topic` and waits for SUBSCRIBED.
    pub async fn subscribe(&mut self, topic: &str) -> anyhow::Result<()> {
        let subscribe =
            Subscribe { request: self.request_id(), options: Dict::new(), topic: Uri::new(topic) };
        match self.request(subscribe.into()).await? {
            Message::Subscribed(_) => Ok(()),
            other => bail!("SUBSCRIBE {topic}: expected SUBSCRIBED, got {other:?}"),
        }
    }

    /// Calls `procedure` and waits for the answer.
    pub async fn call(&mut self, procedure: &Uri, payload: &Payload) -> anyhow::Result<Message> {
        let call = Call {
            request: self.request_id(),
            options: Dict::new(),
            procedure: procedure.clone(),
            payload: payload.clone(),
        };
        self.request(call.into()).await
    }

    /// Sends GOODBYE and closes, without waiting for the answer.
    pub async fn leave(mut self) {
        let goodbye = Goodbye { details: Dict::new(), reason: Uri::new("wamp.close.normal") };
        if let Ok(bytes) = self.serializer.encode(&goodbye.into()) {
            let _ = self.writer.send(bytes).await;
        }
        self.writer.close().await;
    }

    /// A fresh request id.
    pub fn request_id(&mut self) -> RequestId {
        let id = request_id(self.next_request);
        self.next_request += 1;
        id
    }

    /// Sends `message` and waits for the next message (answering pings meanwhile).
    async fn request(&mut self, message: Message) -> anyhow::Result<Message> {
        self.writer.send(self.serializer.encode(&message)?).await?;
        loop {
            match self.reader.recv().await? {
                Incoming::Message(bytes) => return Ok(self.serializer.decode(&bytes)?),
                Incoming::Ping(payload) => self.writer.pong(payload).await?,
                Incoming::Closed => bail!("connection closed while waiting for an answer"),
            }
        }
    }
}

/// The HELLO every session of the load generator sends: the four client roles, no features.
pub fn hello(endpoint: &Endpoint, serializer: Serializer) -> anyhow::Result<Bytes> {
    let roles = dict! {
        "caller" => Dict::new(),
        "callee" => Dict::new(),
        "publisher" => Dict::new(),
        "subscriber" => Dict::new(),
    };
    let hello = Hello {
        realm: Uri::new(endpoint.realm.as_str()),
        details: dict! { "roles" => roles, "agent" => "junction-bench" },
    };
    Ok(serializer.encode(&hello.into())?)
}

/// A request id from a counter that starts at 1 (no run comes near 2^53, where it would stop
/// growing).
pub fn request_id(n: u64) -> RequestId {
    RequestId::new(n.min(junction_wire::id::MAX_ID)).unwrap_or(RequestId::MAX)
}

/// The application payload the scenarios send: `[<string of size octets>]`, encoded once per
/// serializer so that building a message only copies bytes.
pub fn payload(serializer: Serializer, size: usize) -> anyhow::Result<Payload> {
    let decoded = Payload::args(vec![Value::from("x".repeat(size))]);
    // Encode a message carrying the payload and decode it back: the codec slices the payload
    // element out as `Data::Encoded`, which later encodes as a plain copy.
    let carrier = Yield { request: request_id(1), options: Dict::new(), payload: decoded };
    match serializer.decode(&serializer.encode(&carrier.into())?)? {
        Message::Yield(y) if matches!(y.payload.args, Some(Data::Encoded { .. })) => Ok(y.payload),
        other => bail!("payload did not round-trip: {other:?}"),
    }
}

/// A CALL of `procedure`.
pub fn call(
    serializer: Serializer,
    request: RequestId,
    procedure: &Uri,
    payload: &Payload,
) -> anyhow::Result<Bytes> {
    let call = Call {
        request,
        options: Dict::new(),
        procedure: procedure.clone(),
        payload: payload.clone(),
    };
    Ok(serializer.encode(&call.into())?)
}

/// A PUBLISH to `topic`, not acknowledged.
pub fn publish(
    serializer: Serializer,
    request: RequestId,
    topic: &Uri,
    payload: &Payload,
) -> anyhow::Result<Bytes> {
    let publish =
        Publish { request, options: Dict::new(), topic: topic.clone(), payload: payload.clone() };
    Ok(serializer.encode(&publish.into())?)
}

/// The answer of an echo callee to an INVOCATION (or to a CALL forwarded by the relay): a YIELD
/// with the same payload. `None` for any other message.
pub fn echo(serializer: Serializer, message: Message) -> anyhow::Result<Option<Bytes>> {
    let (request, payload) = match message {
        Message::Invocation(invocation) => (invocation.request, invocation.payload),
        Message::Call(call) => (call.request, call.payload),
        _ => return Ok(None),
    };
    let answer = Yield { request, options: Dict::new(), payload };
    Ok(Some(serializer.encode(&answer.into())?))
}

/// What a caller learns from one message.
pub enum CallOutcome {
    /// The call with this request id returned (RESULT, or YIELD through the relay).
    Returned(u64),
    /// The call with this request id failed.
    Failed(u64),
    /// Something else.
    Other,
}

/// Classifies a message a caller received from its leading integers only.
pub fn call_outcome(serializer: Serializer, bytes: &[u8]) -> CallOutcome {
    const RESULT: u64 = MessageType::Result as u64;
    const YIELD: u64 = MessageType::Yield as u64;
    const ERROR: u64 = MessageType::Error as u64;
    match peek::leading::<2>(serializer, bytes) {
        Some([RESULT | YIELD, request]) => CallOutcome::Returned(request),
        Some([ERROR, _]) => match peek::leading::<3>(serializer, bytes) {
            Some([_, _, request]) => CallOutcome::Failed(request),
            None => CallOutcome::Other,
        },
        _ => CallOutcome::Other,
    }
}

/// Whether a message a subscriber received is an event (EVENT, or PUBLISH through the relay),
/// from its type code only.
pub fn is_event(serializer: Serializer, bytes: &[u8]) -> bool {
    const EVENT: u64 = MessageType::Event as u64;
    const PUBLISH: u64 = MessageType::Publish as u64;
    matches!(peek::message_type(serializer, bytes), Some(EVENT | PUBLISH))
}
