//! The WAMP wire format: everything a router needs to turn bytes into typed messages and back.
//!
//! Layout:
//! - [`id`]: identifiers (session, request, publication, subscription, registration), all in
//!   `[0, 2^53]`.
//! - [`uri`]: URIs and the spec's loose and strict validation rules.
//! - [`value`]: [`Value`], the serializer-neutral data model of options, details and payloads;
//!   [`dict`]: [`Dict`], its dictionaries.
//! - [`payload`]: application payload (`Arguments`, `ArgumentsKw`) kept as the sender's encoded
//!   bytes, so a router can route without decoding it.
//! - [`message`]: one type per WAMP message, grouped by family (session, pubsub, rpc, error).
//! - [`codec`]: the JSON, MessagePack and CBOR serializers.
//! - [`json`]: dictionaries as JSON documents, for records kept outside messages.
//! - [`rawsocket`]: the RawSocket handshake and frame headers.
//!
//! Nothing here does I/O or reads a clock: the crate is driven by bytes and can be fuzzed.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod codec;
pub mod dict;
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod json;
pub mod message;
pub mod payload;
pub mod rawsocket;
pub mod uri;
pub mod value;

pub use codec::{DecodeError, EncodeBuffer, EncodeError, Serializer};
pub use id::{PublicationId, RegistrationId, RequestId, SessionId, SubscriptionId};
pub use message::{Message, MessageType};
pub use payload::{Data, Payload};
pub use uri::{Uri, UriRules};
pub use value::{Dict, Value};
