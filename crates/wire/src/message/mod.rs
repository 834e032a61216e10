//! One type per WAMP message, grouped by family as in the spec:
//! [`session`] (HELLO … GOODBYE), [`pubsub`], [`rpc`] and [`error`].
//!
//! Codecs split a frame into header fields ([`Value`]s) and raw payload bytes; [`Message::parse`]
//! turns the fields into a typed message, and [`Message::elements`] lists what to encode.

pub mod error;
pub mod pubsub;
pub mod rpc;
pub mod session;

pub use error::Error;
pub use pubsub::{Event, Publish, Published, Subscribe, Subscribed, Unsubscribe, Unsubscribed};
pub use rpc::{
    Call, Cancel, Interrupt, Invocation, Register, Registered, Result, Unregister, Unregistered,
    Yield,
};
pub use session::{Abort, Authenticate, Challenge, Goodbye, Hello, Welcome};

use smallvec::SmallVec;

use crate::codec::{Container, DecodeError, ElementReader};
use crate::payload::{Data, Payload};
use crate::uri::Uri;
use crate::value::{Dict, Value};

/// Every message code of the Basic and Advanced Profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // The variants are the spec's message names.
pub enum MessageType {
    Hello = 1,
    Welcome = 2,
    Abort = 3,
    Challenge = 4,
    Authenticate = 5,
    Goodbye = 6,
    Error = 8,
    Publish = 16,
    Published = 17,
    Subscribe = 32,
    Subscribed = 33,
    Unsubscribe = 34,
    Unsubscribed = 35,
    Event = 36,
    Call = 48,
    Cancel = 49,
    Result = 50,
    Register = 64,
    Registered = 65,
    Unregister = 66,
    Unregistered = 67,
    Invocation = 68,
    Interrupt = 69,
    Yield = 70,
}

impl MessageType {
    /// The message type for a wire code.
    pub fn from_code(code: u64) -> Option<Self> {
        use MessageType::*;
        Some(match code {
            1 => Hello,
            2 => Welcome,
            3 => Abort,
            4 => Challenge,
            5 => Authenticate,
            6 => Goodbye,
            8 => Error,
            16 => Publish,
            17 => Published,
            32 => Subscribe,
            33 => Subscribed,
            34 => Unsubscribe,
            35 => Unsubscribed,
            36 => Event,
            48 => Call,
            49 => Cancel,
            50 => Result,
            64 => Register,
            65 => Registered,
            66 => Unregister,
            67 => Unregistered,
            68 => Invocation,
            69 => Interrupt,
            70 => Yield,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The spec's name of the message, for error messages.
    pub fn name(self) -> &'static str {
        use MessageType::*;
        match self {
            Hello => "HELLO",
            Welcome => "WELCOME",
            Abort => "ABORT",
            Challenge => "CHALLENGE",
            Authenticate => "AUTHENTICATE",
            Goodbye => "GOODBYE",
            Error => "ERROR",
            Publish => "PUBLISH",
            Published => "PUBLISHED",
            Subscribe => "SUBSCRIBE",
            Subscribed => "SUBSCRIBED",
            Unsubscribe => "UNSUBSCRIBE",
            Unsubscribed => "UNSUBSCRIBED",
            Event => "EVENT",
            Call => "CALL",
            Cancel => "CANCEL",
            Result => "RESULT",
            Register => "REGISTER",
            Registered => "REGISTERED",
            Unregister => "UNREGISTER",
            Unregistered => "UNREGISTERED",
            Invocation => "INVOCATION",
            Interrupt => "INTERRUPT",
            Yield => "YIELD",
        }
    }
}

/// A WAMP message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs)] // Each variant wraps the message type of the same name.
pub enum Message {
    Hello(Hello),
    Welcome(Welcome),
    Abort(Abort),
    Challenge(Challenge),
    Authenticate(Authenticate),
    Goodbye(Goodbye),
    Error(Error),
    Publish(Publish),
    Published(Published),
    Subscribe(Subscribe),
    Subscribed(Subscribed),
    Unsubscribe(Unsubscribe),
    Unsubscribed(Unsubscribed),
    Event(Event),
    Call(Call),
    Cancel(Cancel),
    Result(Result),
    Register(Register),
    Registered(Registered),
    Unregister(Unregister),
    Unregistered(Unregistered),
    Invocation(Invocation),
    Interrupt(Interrupt),
    Yield(Yield),
}

macro_rules! dispatch {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            Message::Hello($m) => $e,
            Message::Welcome($m) => $e,
            Message::Abort($m) => $e,
            Message::Challenge($m) => $e,
            Message::Authenticate($m) => $e,
            Message::Goodbye($m) => $e,
            Message::Error($m) => $e,
            Message::Publish($m) => $e,
            Message::Published($m) => $e,
            Message::Subscribe($m) => $e,
            Message::Subscribed($m) => $e,
            Message::Unsubscribe($m) => $e,
            Message::Unsubscribed($m) => $e,
            Message::Event($m) => $e,
            Message::Call($m) => $e,
            Message::Cancel($m) => $e,
            Message::Result($m) => $e,
            Message::Register($m) => $e,
            Message::Registered($m) => $e,
            Message::Unregister($m) => $e,
            Message::Unregistered($m) => $e,
            Message::Invocation($m) => $e,
            Message::Interrupt($m) => $e,
            Message::Yield($m) => $e,
        }
    };
}

impl Message {
    /// The application payload, for the messages that carry one.
    pub fn payload(&self) -> Option<&Payload> {
        match self {
            Message::Abort(m) => Some(&m.payload),
            Message::Error(m) => Some(&m.payload),
            Message::Publish(m) => Some(&m.payload),
            Message::Event(m) => Some(&m.payload),
            Message::Call(m) => Some(&m.payload),
            Message::Result(m) => Some(&m.payload),
            Message::Invocation(m) => Some(&m.payload),
            Message::Yield(m) => Some(&m.payload),
            _ => None,
        }
    }

    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        dispatch!(self, m => m.message_type())
    }

    /// Builds a message of type `kind` from the elements a codec reads after the message code:
    /// header fields, then the payload, and nothing after them.
    pub(crate) fn parse(
        kind: MessageType,
        reader: &mut dyn ElementReader,
    ) -> std::result::Result<Self, DecodeError> {
        let mut f = Fields { kind, reader };
        let f = &mut f;
        let msg = match kind {
            MessageType::Hello => Message::Hello(Hello::parse(f)?),
            MessageType::Welcome => Message::Welcome(Welcome::parse(f)?),
            MessageType::Abort => Message::Abort(Abort::parse(f)?),
            MessageType::Challenge => Message::Challenge(Challenge::parse(f)?),
            MessageType::Authenticate => Message::Authenticate(Authenticate::parse(f)?),
            MessageType::Goodbye => Message::Goodbye(Goodbye::parse(f)?),
            MessageType::Error => Message::Error(Error::parse(f)?),
            MessageType::Publish => Message::Publish(Publish::parse(f)?),
            MessageType::Published => Message::Published(Published::parse(f)?),
            MessageType::Subscribe => Message::Subscribe(Subscribe::parse(f)?),
            MessageType::Subscribed => Message::Subscribed(Subscribed::parse(f)?),
            MessageType::Unsubscribe => Message::Unsubscribe(Unsubscribe::parse(f)?),
            MessageType::Unsubscribed => Message::Unsubscribed(Unsubscribed::parse(f)?),
            MessageType::Event => Message::Event(Event::parse(f)?),
            MessageType::Call => Message::Call(Call::parse(f)?),
            MessageType::Cancel => Message::Cancel(Cancel::parse(f)?),
            MessageType::Result => Message::Result(Result::parse(f)?),
            MessageType::Register => Message::Register(Register::parse(f)?),
            MessageType::Registered => Message::Registered(Registered::parse(f)?),
            MessageType::Unregister => Message::Unregister(Unregister::parse(f)?),
            MessageType::Unregistered => Message::Unregistered(Unregistered::parse(f)?),
            MessageType::Invocation => Message::Invocation(Invocation::parse(f)?),
            MessageType::Interrupt => Message::Interrupt(Interrupt::parse(f)?),
            MessageType::Yield => Message::Yield(Yield::parse(f)?),
        };
        if f.reader.has_more()? {
            return Err(DecodeError::TooManyElements { message: kind.name() });
        }
        Ok(msg)
    }

    /// The elements of the message array, in order, for a codec to encode.
    pub(crate) fn elements(&self) -> Elements<'_> {
        let mut out = Elements::new();
        out.push(Element::UInt(self.message_type().code()));
        dispatch!(self, m => m.push_elements(&mut out));
        out
    }
}

/// The most elements a message array has: ERROR's seven (code, request type, request, details,
/// error URI, `Arguments`, `ArgumentsKw`).
pub(crate) const MAX_ELEMENTS: usize = 7;

/// A message's elements: on the stack, since no message has more than [`MAX_ELEMENTS`].
pub(crate) type Elements<'a> = SmallVec<[Element<'a>; MAX_ELEMENTS]>;

/// One element of a message array as a codec sees it when encoding.
#[derive(Debug)]
pub(crate) enum Element<'a> {
    UInt(u64),
    Str(&'a str),
    Dict(&'a Dict),
    Data(&'a Data),
    /// The `[]` placeholder for absent `Arguments` when `ArgumentsKw` follows.
    EmptyList,
}

/// Appends a payload's elements: none, `args`, or `args` (maybe `[]`) then `kwargs`.
pub(crate) fn push_payload<'a>(out: &mut Elements<'a>, payload: &'a Payload) {
    match (&payload.args, &payload.kwargs) {
        (None, None) => {}
        (Some(a), None) => out.push(Element::Data(a)),
        (a, Some(k)) => {
            out.push(a.as_ref().map_or(Element::EmptyList, Element::Data));
            out.push(Element::Data(k));
        }
    }
}

/// A cursor over a message's elements that names the field when one is missing or of the
/// wrong type ("parse, don't validate"). Each field is decoded as it is taken, straight from
/// the frame: collecting them first cost a copy of every field in and out of a list.
pub(crate) struct Fields<'r> {
    kind: MessageType,
    reader: &'r mut dyn ElementReader,
}

impl Fields<'_> {
    fn error(&self, field: &'static str, expected: &'static str) -> DecodeError {
        DecodeError::Field { message: self.kind.name(), field, expected }
    }

    fn next(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> std::result::Result<Value, DecodeError> {
        self.reader.next_value()?.ok_or_else(|| self.error(field, expected))
    }

    pub(crate) fn id<T>(
        &mut self,
        field: &'static str,
        wrap: fn(u64) -> Option<T>,
    ) -> std::result::Result<T, DecodeError> {
        let value = self.next(field, "an id in [0, 2^53]")?;
        value.as_u64().and_then(wrap).ok_or_else(|| self.error(field, "an id in [0, 2^53]"))
    }

    pub(crate) fn uint(&mut self, field: &'static str) -> std::result::Result<u64, DecodeError> {
        let value = self.next(field, "an integer")?;
        value.as_u64().ok_or_else(|| self.error(field, "an integer"))
    }

    pub(crate) fn dict(&mut self, field: &'static str) -> std::result::Result<Dict, DecodeError> {
        match self.next(field, "a dictionary")? {
            Value::Dict(d) => Ok(d),
            _ => Err(self.error(field, "a dictionary")),
        }
    }

    /// A trailing dictionary that may be absent (UNSUBSCRIBED/UNREGISTERED revocation details).
    pub(crate) fn optional_dict(
        &mut self,
        field: &'static str,
    ) -> std::result::Result<Option<Dict>, DecodeError> {
        match self.reader.next_value()? {
            None => Ok(None),
            Some(Value::Dict(d)) => Ok(Some(d)),
            Some(_) => Err(self.error(field, "a dictionary")),
        }
    }

    pub(crate) fn string(
        &mut self,
        field: &'static str,
    ) -> std::result::Result<String, DecodeError> {
        match self.next(field, "a string")? {
            Value::Str(s) => Ok(String::from(&*s)),
            _ => Err(self.error(field, "a string")),
        }
    }

    pub(crate) fn uri(&mut self, field: &'static str) -> std::result::Result<Uri, DecodeError> {
        match self.next(field, "a URI string")? {
            Value::Str(s) => Ok(Uri::new(s)),
            _ => Err(self.error(field, "a URI string")),
        }
    }

    /// The optional `Arguments` and `ArgumentsKw` that end the message, kept encoded.
    pub(crate) fn payload(&mut self) -> std::result::Result<Payload, DecodeError> {
        let args = self.reader.next_raw(Container::ListOrBinary)?;
        let kwargs = self.reader.next_raw(Container::Dict)?;
        Ok(Payload { args, kwargs })
    }
}

/// Implements the `message_type` accessor shared by every message struct.
macro_rules! message_kind {
    ($($ty:ident),+) => {$(
        impl $ty {
            /// This message's type code.
            pub fn message_type(&self) -> $crate::message::MessageType {
                $crate::message::MessageType::$ty
            }
        }
        impl From<$ty> for $crate::message::Message {
            fn from(m: $ty) -> Self {
                $crate::message::Message::$ty(m)
            }
        }
    )+};
}
pub(crate) use message_kind;

/// Implements parsing and encoding for messages shaped `[TYPE, A|id, B|id]`.
macro_rules! id_pair_message {
    ($ty:ident, $a:ident: $ta:ident = $na:literal, $b:ident: $tb:ident = $nb:literal) => {
        impl $ty {
            pub(crate) fn parse(f: &mut Fields<'_>) -> std::result::Result<Self, DecodeError> {
                Ok(Self { $a: f.id($na, $ta::new)?, $b: f.id($nb, $tb::new)? })
            }
            pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
                out.extend([Element::UInt(self.$a.get()), Element::UInt(self.$b.get())]);
            }
        }
    };
}
pub(crate) use id_pair_message;

/// Implements parsing and encoding for UNSUBSCRIBED and UNREGISTERED: `[TYPE, Request|id]`, or
/// `[TYPE, 0, Details|dict]` for a revocation.
macro_rules! acknowledgement_message {
    ($ty:ident, $field:literal) => {
        impl $ty {
            pub(crate) fn parse(f: &mut Fields<'_>) -> std::result::Result<Self, DecodeError> {
                Ok(Self {
                    request: f.id($field, RequestId::new)?,
                    details: f.optional_dict("Details")?,
                })
            }
            pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
                out.push(Element::UInt(self.request.get()));
                out.extend(self.details.as_ref().map(Element::Dict));
            }
        }
    };
}
pub(crate) use acknowledgement_message;

/// Messages shaped `[TYPE, Request|id, Options|dict, Uri|uri]` with an optional payload.
macro_rules! request_options_uri_message {
    ($ty:ident, $uri:ident = $label:literal, payload) => {
        impl $ty {
            pub(crate) fn parse(f: &mut Fields<'_>) -> std::result::Result<Self, DecodeError> {
                Ok(Self {
                    request: f.id("Request", RequestId::new)?,
                    options: f.dict("Options")?,
                    $uri: f.uri($label)?,
                    payload: f.payload()?,
                })
            }
            pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
                out.extend([
                    Element::UInt(self.request.get()),
                    Element::Dict(&self.options),
                    Element::Str(self.$uri.as_str()),
                ]);
                push_payload(out, &self.payload);
            }
        }
    };
    ($ty:ident, $uri:ident = $label:literal) => {
        impl $ty {
            pub(crate) fn parse(f: &mut Fields<'_>) -> std::result::Result<Self, DecodeError> {
                Ok(Self {
                    request: f.id("Request", RequestId::new)?,
                    options: f.dict("Options")?,
                    $uri: f.uri($label)?,
                })
            }
            pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
                out.extend([
                    Element::UInt(self.request.get()),
                    Element::Dict(&self.options),
                    Element::Str(self.$uri.as_str()),
                ]);
            }
        }
    };
}

pub(crate) use request_options_uri_message;

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages are moved from decoding through routing to encoding; up to 128 octets the
    /// compiler moves them inline, past that each move is a call to `memcpy`.
    #[test]
    fn a_message_is_small_enough_to_move_inline() {
        assert!(std::mem::size_of::<Message>() <= 128, "{}", std::mem::size_of::<Message>());
        assert_eq!(std::mem::size_of::<Dict>(), std::mem::size_of::<usize>());
    }
}
