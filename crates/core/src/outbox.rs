//! How the core hands messages to whatever drives a session (a transport, or a test harness).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use junction_wire::message::Goodbye;
use junction_wire::{EncodeError, Message, Payload, Serializer};

/// One item for a session's outbound queue.
///
/// Every variant is one pointer, so the item is two words: each session's queue allocates its
/// slots up front (32 of them in tokio's channel, even for an idle session), and a `Message`
/// inline would make every slot 136 octets. The price is one allocation per message that is not
/// an event (events are already shared behind their `Arc`).
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A message for this session alone.
    Message(Box<Message>),
    /// An event shared by every subscriber it goes to, encoded at most once per serializer.
    /// Events may be dropped for a slow consumer (by the transport's policy); nothing else may.
    Event(Arc<SharedMessage>),
    /// The router closes the session (kill, shutdown, realm removed): send this GOODBYE, then
    /// wait for the peer's reply and close.
    Close(Box<Goodbye>),
}

// Keep it two words (see above).
const _: () = assert!(size_of::<Outbound>() <= 2 * size_of::<usize>());

impl Outbound {
    /// A message for this session alone.
    pub fn message(message: impl Into<Message>) -> Self {
        Outbound::Message(Box::new(message.into()))
    }

    /// The router closes the session with this GOODBYE.
    pub fn close(goodbye: Goodbye) -> Self {
        Outbound::Close(Box::new(goodbye))
    }

    /// Roughly how many bytes the item will take on the wire (the payload as received, plus a
    /// fixed allowance for the header), for byte-bounded queues.
    pub fn approx_size(&self) -> usize {
        match self {
            Outbound::Message(message) => approx_size(message),
            Outbound::Event(shared) => shared.approx_size,
            Outbound::Close(_) => HEADER_ALLOWANCE,
        }
    }
}

/// What [`Outbound::approx_size`] counts for a message's header.
const HEADER_ALLOWANCE: usize = 64;

/// See [`Outbound::approx_size`].
fn approx_size(message: &Message) -> usize {
    HEADER_ALLOWANCE + message.payload().map_or(0, Payload::encoded_len)
}

/// A session's outbound queue, implemented by the driver. Must not block: the core calls it
/// while routing, sometimes with a routing-table lock held.
pub trait Outbox: Send + Sync {
    /// Queues `item` for the session. The driver applies its slow-consumer policy when its
    /// queue is full (drop events, or disconnect the session).
    fn push(&self, item: Outbound);

    /// Events dropped so far because the session did not keep up (slow-consumer policy).
    fn dropped_events(&self) -> u64 {
        0
    }
}

/// A message shared between many recipients (one EVENT fanned out to N subscribers). The first
/// recipient that needs a serializer encodes it; the others reuse the bytes.
#[derive(Debug)]
pub struct SharedMessage {
    message: Message,
    /// Its [`Outbound::approx_size`], worked out once rather than at every queue it enters.
    approx_size: usize,
    encoded: [OnceLock<Result<Bytes, EncodeError>>; 3],
}

impl SharedMessage {
    /// Wraps a message for sharing.
    pub fn new(message: Message) -> Self {
        Self { approx_size: approx_size(&message), message, encoded: Default::default() }
    }

    /// The message itself.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message encoded with `serializer`, computed once.
    pub fn encoded(&self, serializer: Serializer) -> Result<Bytes, EncodeError> {
        let slot = match serializer {
            Serializer::Json => &self.encoded[0],
            Serializer::MsgPack => &self.encoded[1],
            _ => &self.encoded[2],
        };
        slot.get_or_init(|| serializer.encode(&self.message)).clone()
    }
}
