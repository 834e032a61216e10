//! The baseline: a frame relay that does a router's transport work with as little WAMP as the
//! load generator needs, so that Junction's figure divided by the relay's is our distance from
//! what the transport allows.
//!
//! What it does, exactly:
//! - Accepts WebSocket (any path, subprotocol `wamp.2.json|msgpack|cbor`) and RawSocket on one
//!   TCP port, like Junction; `TCP_NODELAY` on. Like Junction's connection driver, one task per
//!   connection either reads a frame and routes it, or drains the connection's (unbounded)
//!   outbound queue, writing up to [`BATCH`] frames with one flush (yielding once to the
//!   runtime when the queue runs dry, so that what arrives meanwhile joins that flush).
//! - Reads the message type of every frame with [`crate::peek`] (a few octets) and then:
//!   - HELLO: answers WELCOME (fresh session id, empty roles); no authentication, any realm.
//!   - REGISTER / SUBSCRIBE: decodes it, remembers "procedure → this connection" or "topic →
//!     this connection", answers REGISTERED / SUBSCRIBED.
//!   - CALL: decodes the header (the payload stays raw bytes) to find the procedure, appends the
//!     caller to the callee's queue of waiting callers, and forwards the caller's *own bytes*
//!     to the callee: no INVOCATION is built, the request id is the caller's.
//!   - YIELD: without decoding, forwards the bytes to the oldest waiting caller of that callee.
//!     This relies on callees answering in order, which the load generator's echo callee does.
//!   - PUBLISH: decodes the header to find the topic and forwards the publisher's bytes to
//!     every subscriber: the same `Bytes`, shared, not copied per subscriber. No EVENT is built,
//!     no PUBLISHED is sent.
//!   - GOODBYE: answers GOODBYE and closes. Anything else is ignored.
//! - When sender and receiver speak different serializers, the forwarded message is decoded and
//!   re-encoded, once per serializer per message (the transcoding floor).
//!
//! What it does not do: options, match policies, ids, disclosure, authorization, meta events,
//! bounded queues, timeouts. It is a measuring stick, not a router.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use junction_wire::message::{Goodbye, Registered, Subscribed, Welcome};
use junction_wire::{
    Dict, Message, MessageType, RegistrationId, Serializer, SessionId, SubscriptionId, Uri, dict,
};

use crate::link::{self, Incoming, Reader, Writer};
use crate::peek;

/// Runs the relay on `listen` until the process is stopped (SIGINT or SIGTERM end it cleanly,
/// so that a profiler wrapping the process can write its results).
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("junction-bench relay: listening on {}", listener.local_addr()?);
    let state = Arc::new(State::default());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                tokio::spawn(connection(stream, Arc::clone(&state)));
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
    }
}

/// The relay's routing tables. Written while sessions set up, read on the hot path; a std
/// lock is fine because no critical section awaits.
#[derive(Default)]
struct State {
    /// Procedure → the callee that registered it (the last one wins).
    procedures: RwLock<HashMap<Uri, Arc<Callee>>>,
    /// Topic → its subscribers.
    topics: RwLock<HashMap<Uri, Vec<Peer>>>,
    /// Source of session, registration, subscription and connection ids.
    next_id: AtomicU64,
}

impl State {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Somewhere to send frames: a connection's outbound queue and its serializer.
#[derive(Clone)]
struct Peer {
    /// Which connection, to clean up after it.
    connection: u64,
    serializer: Serializer,
    outbox: mpsc::UnboundedSender<Bytes>,
}

/// A connection that registered a procedure.
struct Callee {
    peer: Peer,
    /// Callers waiting for an answer, oldest first; a YIELD goes to the front one.
    waiting: Mutex<VecDeque<Peer>>,
}

/// Frames written before one flush, as in Junction.
const BATCH: usize = 128;

/// One connection: reads and routes frames, and writes what other connections queued for it.
async fn connection(stream: tokio::net::TcpStream, state: Arc<State>) {
    let Ok((reader, writer, serializer)) = link::accept(stream).await else {
        return;
    };
    let (outbox, queue) = mpsc::unbounded_channel();
    let me = Peer { connection: state.id(), serializer, outbox };
    let mut owned = Owned::default();
    let _ = drive(reader, writer, queue, &me, &state, &mut owned).await;
    owned.release(&state, me.connection);
}

/// What a connection added to the tables, removed when it goes.
#[derive(Default)]
struct Owned {
    procedures: Vec<Uri>,
    topics: Vec<Uri>,
}

impl Owned {
    fn release(&self, state: &State, connection: u64) {
        let mut procedures = state.procedures.write().unwrap_or_else(PoisonError::into_inner);
        for procedure in &self.procedures {
            if procedures.get(procedure).is_some_and(|c| c.peer.connection == connection) {
                procedures.remove(procedure);
            }
        }
        drop(procedures);
        let mut topics = state.topics.write().unwrap_or_else(PoisonError::into_inner);
        for topic in &self.topics {
            if let Some(peers) = topics.get_mut(topic) {
                peers.retain(|p| p.connection != connection);
            }
        }
    }
}

async fn drive(
    mut reader: Reader,
    mut writer: Writer,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    me: &Peer,
    state: &State,
    owned: &mut Owned,
) -> anyhow::Result<()> {
    // The callee this connection registered, to route its YIELDs without a table lookup.
    let mut as_callee: Option<Arc<Callee>> = None;
    loop {
        let bytes = tokio::select! {
            Some(first) = queue.recv() => {
                writer.feed(first).await?;
                // As Junction's driver does: once the queue is empty, yield once, so that what
                // the other connections route here meanwhile goes out with the same flush.
                let (mut written, mut yielded) = (1, false);
                while written < BATCH {
                    match queue.try_recv() {
                        Ok(next) => {
                            writer.feed(next).await?;
                            written += 1;
                        }
                        Err(_) if yielded => break,
                        Err(_) => {
                            tokio::task::yield_now().await;
                            yielded = true;
                        }
                    }
                }
                writer.flush().await?;
                continue;
            }
            incoming = reader.recv() => match incoming? {
                Incoming::Message(bytes) => bytes,
                // RawSocket pings: the load generator never sends any.
                Incoming::Ping(_) => continue,
                Incoming::Closed => return Ok(()),
            },
        };
        match route(bytes, me, state, owned, &mut as_callee) {
            Flow::Continue => {}
            Flow::Close => {
                // Write the GOODBYE just queued, then close.
                while let Ok(next) = queue.try_recv() {
                    writer.feed(next).await?;
                }
                writer.flush().await?;
                writer.close().await;
                return Ok(());
            }
        }
    }
}

/// Whether a connection goes on after a message.
enum Flow {
    Continue,
    Close,
}

/// Routes one message from `me` (see the module documentation for what each type does).
fn route(
    bytes: Bytes,
    me: &Peer,
    state: &State,
    owned: &mut Owned,
    as_callee: &mut Option<Arc<Callee>>,
) -> Flow {
    let Some(code) = peek::message_type(me.serializer, &bytes) else {
        return Flow::Continue;
    };
    if code == MessageType::Yield.code() {
        if let Some(callee) = as_callee {
            let caller = callee.waiting.lock().unwrap_or_else(PoisonError::into_inner).pop_front();
            if let Some(caller) = caller {
                forward(&bytes, me.serializer, &caller);
            }
        }
        return Flow::Continue;
    }
    // Everything else is rare (set-up) or needs a field from the header.
    let Ok(message) = me.serializer.decode(&bytes) else {
        return Flow::Continue;
    };
    match message {
        Message::Call(call) => {
            let callee = state
                .procedures
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&call.procedure)
                .cloned();
            let Some(callee) = callee else { return Flow::Continue };
            let Some(out) = in_serializer(&bytes, me.serializer, callee.peer.serializer) else {
                return Flow::Continue;
            };
            // Queue the caller and the call under one lock: the callee must receive calls in
            // the order of its queue of waiting callers.
            let mut waiting = callee.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            if callee.peer.outbox.send(out).is_ok() {
                waiting.push_back(me.clone());
            }
        }
        Message::Publish(publish) => {
            let topics = state.topics.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(peers) = topics.get(&publish.topic) {
                fan_out(&bytes, me.serializer, peers);
            }
        }
        Message::Hello(_) => {
            let roles = dict! { "broker" => Dict::new(), "dealer" => Dict::new() };
            let welcome =
                Welcome { session: session_id(state.id()), details: dict! { "roles" => roles } };
            reply(me, welcome.into());
        }
        Message::Register(register) => {
            let callee = Arc::new(Callee { peer: me.clone(), waiting: Mutex::default() });
            state
                .procedures
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(register.procedure.clone(), Arc::clone(&callee));
            owned.procedures.push(register.procedure);
            *as_callee = Some(callee);
            let registration = RegistrationId::new(state.id()).unwrap_or(RegistrationId::MIN);
            reply(me, Registered { request: register.request, registration }.into());
        }
        Message::Subscribe(subscribe) => {
            state
                .topics
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(subscribe.topic.clone())
                .or_default()
                .push(me.clone());
            owned.topics.push(subscribe.topic);
            let subscription = SubscriptionId::new(state.id()).unwrap_or(SubscriptionId::MIN);
            reply(me, Subscribed { request: subscribe.request, subscription }.into());
        }
        Message::Goodbye(_) => {
            let goodbye =
                Goodbye { details: Dict::new(), reason: Uri::new("wamp.close.goodbye_and_out") };
            reply(me, goodbye.into());
            return Flow::Close;
        }
        _ => {}
    }
    Flow::Continue
}

/// Sends `bytes`, which are in `from`, to `to`: as they are, or transcoded.
fn forward(bytes: &Bytes, from: Serializer, to: &Peer) {
    if let Some(out) = in_serializer(bytes, from, to.serializer) {
        let _ = to.outbox.send(out);
    }
}

/// Sends `bytes` to every peer, encoding at most once per serializer.
fn fan_out(bytes: &Bytes, from: Serializer, peers: &[Peer]) {
    let mut encoded: [Option<Bytes>; 3] = Default::default();
    for peer in peers {
        let slot = &mut encoded[serializer_index(peer.serializer)];
        if slot.is_none() {
            *slot = in_serializer(bytes, from, peer.serializer);
        }
        if let Some(out) = slot {
            let _ = peer.outbox.send(out.clone());
        }
    }
}

fn in_serializer(bytes: &Bytes, from: Serializer, to: Serializer) -> Option<Bytes> {
    if from == to {
        return Some(bytes.clone());
    }
    let message = from.decode(bytes).ok()?;
    to.encode(&message).ok()
}

fn serializer_index(serializer: Serializer) -> usize {
    match serializer {
        Serializer::Json => 0,
        Serializer::MsgPack => 1,
        _ => 2,
    }
}

fn reply(me: &Peer, message: Message) {
    if let Ok(bytes) = me.serializer.encode(&message) {
        let _ = me.outbox.send(bytes);
    }
}

fn session_id(n: u64) -> SessionId {
    SessionId::new(n).unwrap_or(SessionId::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;

    #[test]
    fn transcoded_call_and_yield_keep_request_and_payload() {
        for from in Serializer::ALL {
            for to in Serializer::ALL {
                let payload = client::payload(from, 16).unwrap();
                let call =
                    client::call(from, client::request_id(5), &Uri::new("p"), &payload).unwrap();
                let there = in_serializer(&call, from, to).unwrap();
                let answer = client::echo(to, to.decode(&there).unwrap()).unwrap().unwrap();
                let back = in_serializer(&answer, to, from).unwrap();
                assert!(
                    matches!(client::call_outcome(from, &back), client::CallOutcome::Returned(5)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }
}
