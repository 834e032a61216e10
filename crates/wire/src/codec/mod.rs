//! The serializers: JSON, MessagePack and CBOR.
//!
//! Each serializer module implements one [`ElementReader`] (walks the top-level message array,
//! decoding header fields and slicing payload elements without decoding them) and one encoder
//! (writes [`Element`]s). The message-level logic that is the same for all of them lives here.

mod cbor;
mod json;
mod msgpack;

use bytes::Bytes;

use crate::message::{Element, Message, MessageType};
use crate::payload::Data;
use crate::value::Value;

/// A WAMP serializer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Serializer {
    /// JSON, binary strings as `"\u0000" + base64`.
    Json,
    /// MessagePack.
    MsgPack,
    /// CBOR.
    Cbor,
}

/// Why bytes could not be turned into a message. Every variant is the peer's fault and ends in
/// ABORT `wamp.error.protocol_violation`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not valid in the serializer's format.
    #[error("invalid {serializer:?} data: {reason}")]
    Malformed {
        /// The serializer in use.
        serializer: Serializer,
        /// What the parser said.
        reason: String,
    },
    /// The top-level value is not a non-empty list starting with a message code.
    #[error("a WAMP message must be a list that starts with an integer message type")]
    NotAMessage,
    /// The message code is not one this router knows.
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// A header field is missing or of the wrong type.
    #[error("{message}.{field} must be {expected}")]
    Field {
        /// The message's name.
        message: &'static str,
        /// The field's name in the spec.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// The message has more elements than its type allows.
    #[error("{message} has too many elements")]
    TooManyElements {
        /// The message's name.
        message: &'static str,
    },
    /// `Arguments` is not a list or `ArgumentsKw` is not a dictionary.
    #[error("{0}")]
    PayloadShape(&'static str),
    /// A dictionary key is not a string.
    #[error("dictionary keys must be strings")]
    NonStringKey,
    /// The value nests deeper than the router accepts.
    #[error("value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Why a message could not be encoded for a peer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload came in another serializer and could not be decoded for transcoding.
    #[error("cannot transcode payload: {0}")]
    Transcode(#[from] DecodeError),
    /// The value has no representation in the target serializer.
    #[error("{0}")]
    Unrepresentable(String),
}

/// How deep lists and dictionaries may nest in a decoded value. Deeper input is refused instead
/// of risking the stack.
pub const MAX_DEPTH: usize = 64;

impl Serializer {
    /// All serializers, in order of preference.
    pub const ALL: [Serializer; 3] = [Serializer::Cbor, Serializer::MsgPack, Serializer::Json];

    /// The serializer behind a WebSocket subprotocol such as `wamp.2.json`.
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.subprotocol() == name)
    }

    /// The WebSocket subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }

    /// The serializer behind a RawSocket handshake serializer number.
    pub fn from_rawsocket_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.rawsocket_id() == id)
    }

    /// The RawSocket handshake serializer number.
    pub fn rawsocket_id(self) -> u8 {
        match self {
            Serializer::Json => 1,
            Serializer::MsgPack => 2,
            Serializer::Cbor => 3,
        }
    }

    /// A short lowercase name (`json`, `msgpack`, `cbor`).
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
        }
    }

    /// Whether frames of this serializer are text (JSON) rather than binary.
    pub fn is_text(self) -> bool {
        self == Serializer::Json
    }

    /// Decodes one message. Payload elements stay encoded (see [`Payload`](crate::payload::Payload)).
    pub fn decode(self, bytes: &Bytes) -> Result<Message, DecodeError> {
        match self {
            Serializer::Json => decode_message(json::Reader::new(bytes)?),
            Serializer::MsgPack => decode_message(msgpack::Reader::new(bytes)?),
            Serializer::Cbor => decode_message(cbor::Reader::new(bytes)?),
        }
    }

    /// Encodes one message, transcoding payload elements that came in another serializer.
    pub fn encode(self, message: &Message) -> Result<Bytes, EncodeError> {
        let mut out = EncodeBuffer::take();
        self.encode_into(message, &mut out)?;
        if out.len() > COPY_LIMIT {
            // Large: not worth a copy; the buffer goes with it.
            return Ok(Bytes::from(std::mem::take(&mut *out)));
        }
        // One allocation of the exact size: `Bytes` from a `Vec` with spare capacity would
        // allocate a second time, for its reference count.
        Ok(Bytes::copy_from_slice(&out))
    }

    /// Encodes one message at the end of `out`. On error, `out` may hold part of it.
    pub fn encode_into(self, message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let elements = message.elements();
        out.reserve(capacity_hint(&elements));
        match self {
            Serializer::Json => json::encode(&elements, out),
            Serializer::MsgPack => msgpack::encode(&elements, out),
            Serializer::Cbor => cbor::encode(&elements, out),
        }
    }

    /// Decodes one complete value (a payload element).
    pub(crate) fn decode_value(self, bytes: &[u8]) -> Result<Value, DecodeError> {
        match self {
            Serializer::Json => json::decode_value(bytes),
            Serializer::MsgPack => msgpack::decode_value(bytes),
            Serializer::Cbor => cbor::decode_value(bytes),
        }
    }
}

/// Encoded messages up to this size are copied out of the thread's buffer by
/// [`Serializer::encode`].
const COPY_LIMIT: usize = 16 * 1024;

/// A buffer to encode messages into, lent by the thread: taken empty, given back when dropped
/// (to whichever thread drops it), so that encoding allocates only when a message outgrows it
/// and an idle connection keeps none. [`Serializer::encode`] copies out of it; the router's
/// connections encode into it and copy straight into their write buffers, which spares each
/// message a `Bytes` of its own (an allocation, a copy and a release).
pub struct EncodeBuffer(Vec<u8>);

thread_local! {
    static LENT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl EncodeBuffer {
    /// Above this capacity a buffer is freed rather than kept for the thread's next message.
    const KEEP: usize = 4 * COPY_LIMIT;

    /// The thread's buffer, empty (a new one while it is lent out).
    pub fn take() -> Self {
        let mut buffer = LENT.try_with(std::cell::Cell::take).unwrap_or_default();
        buffer.clear();
        Self(buffer)
    }
}

impl Drop for EncodeBuffer {
    fn drop(&mut self) {
        // No slot during thread exit: the buffer is freed then.
        if self.0.capacity() <= Self::KEEP {
            let buffer = std::mem::take(&mut self.0);
            let _ = LENT.try_with(|slot| slot.set(buffer));
        }
    }
}

impl std::ops::Deref for EncodeBuffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for EncodeBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// Which container a payload element must be. `Arguments` may also be one binary string: the
/// transparent (end-to-end encrypted) payload that Autobahn sends in payload-transparency mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    ListOrBinary,
    Dict,
}

impl Container {
    fn shape_error(self) -> DecodeError {
        DecodeError::PayloadShape(match self {
            Container::ListOrBinary => "Arguments must be a list",
            Container::Dict => "ArgumentsKw must be a dictionary",
        })
    }
}

/// Walks the elements of a message array, front to back.
pub(crate) trait ElementReader {
    /// Decodes the next element, or `None` at the end of the array.
    fn next_value(&mut self) -> Result<Option<Value>, DecodeError>;
    /// Slices the next element without decoding it, checking that it is a `container`.
    fn next_raw(&mut self, container: Container) -> Result<Option<Data>, DecodeError>;
    /// Whether elements remain.
    fn has_more(&mut self) -> Result<bool, DecodeError>;
}

fn decode_message(mut reader: impl ElementReader) -> Result<Message, DecodeError> {
    let code = reader.next_value()?.and_then(|v| v.as_u64()).ok_or(DecodeError::NotAMessage)?;
    let kind = MessageType::from_code(code).ok_or(DecodeError::UnknownType(code))?;
    Message::parse(kind, &mut reader)
}

/// A payload element as `target` bytes: borrowed when already in `target`, else transcoded.
pub(crate) enum DataOut<'a> {
    Raw(&'a [u8]),
    Value(std::borrow::Cow<'a, Value>),
}

/// Room for an encoded message, so that encoding it rarely grows the buffer: the payload's
/// encoded octets (the largest part, passed through or transcoded to about the same size), the
/// strings, and 32 octets per dictionary entry. A generous guess costs little: the buffer
/// becomes the message and is freed once it is written.
pub(crate) fn capacity_hint(elements: &[Element<'_>]) -> usize {
    16 + elements
        .iter()
        .map(|element| match element {
            Element::UInt(_) => 9,
            Element::Str(s) => s.len() + 5,
            Element::Dict(d) => 4 + 32 * d.len(),
            Element::EmptyList => 2,
            Element::Data(Data::Encoded { bytes, .. }) => bytes.len() + 8,
            Element::Data(Data::Decoded(_)) => 64,
        })
        .sum::<usize>()
}

pub(crate) fn data_for(data: &Data, target: Serializer) -> Result<DataOut<'_>, EncodeError> {
    Ok(match data {
        Data::Encoded { serializer, bytes } if *serializer == target => DataOut::Raw(bytes),
        Data::Encoded { serializer, bytes } => {
            DataOut::Value(std::borrow::Cow::Owned(serializer.decode_value(bytes)?))
        }
        Data::Decoded(v) => DataOut::Value(std::borrow::Cow::Borrowed(v)),
    })
}

#[cfg(test)]
mod tests;
