//! Session lifecycle: HELLO, WELCOME, ABORT, CHALLENGE, AUTHENTICATE, GOODBYE.

use super::{DecodeError, Element, Elements, Fields, message_kind, push_payload};
use crate::id::SessionId;
use crate::payload::Payload;
use crate::uri::Uri;
use crate::value::Dict;

/// `[HELLO, Realm|uri, Details|dict]`: a client asks to join a realm.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// The realm to join.
    pub realm: Uri,
    /// Roles, features, authentication methods and the agent string.
    pub details: Dict,
}

/// `[WELCOME, Session|id, Details|dict]`: the router accepts the session.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    /// The new session's id.
    pub session: SessionId,
    /// Router roles and the session's authentication result.
    pub details: Dict,
}

/// `[ABORT, Details|dict, Reason|uri(, Arguments(, ArgumentsKw))]`: the session ends before it is
/// established, or because of a protocol violation.
#[derive(Debug, Clone, PartialEq)]
pub struct Abort {
    /// Usually a human-readable `message`.
    pub details: Dict,
    /// Why, as a `wamp.error.*` URI.
    pub reason: Uri,
    /// Optional application payload.
    pub payload: Payload,
}

/// `[CHALLENGE, AuthMethod|string, Extra|dict]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// The authentication method the router chose.
    pub authmethod: String,
    /// Method-specific challenge data.
    pub extra: Dict,
}

/// `[AUTHENTICATE, Signature|string, Extra|dict]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticate {
    /// The client's answer to the challenge.
    pub signature: String,
    /// Method-specific extra data.
    pub extra: Dict,
}

/// `[GOODBYE, Details|dict, Reason|uri]`: an established session closes.
#[derive(Debug, Clone, PartialEq)]
pub struct Goodbye {
    /// Usually a human-readable `message`.
    pub details: Dict,
    /// Why, as a `wamp.close.*` or `wamp.error.*` URI.
    pub reason: Uri,
}

message_kind!(Hello, Welcome, Abort, Challenge, Authenticate, Goodbye);

impl Hello {
    pub(crate) fn parse(f: &mut Fields<'_>) -> Result<Self, DecodeError> {
        Ok(Self { realm: f.uri("Realm")?, details: f.dict("Details")? })
    }
    pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
        out.extend([Element::Str(self.realm.as_str()), Element::Dict(&self.details)]);
    }
}

impl Welcome {
    pub(crate) fn parse(f: &mut Fields<'_>) -> Result<Self, DecodeError> {
        Ok(Self { session: f.id("Session", SessionId::new)?, details: f.dict("Details")? })
    }
    pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
        out.extend([Element::UInt(self.session.get()), Element::Dict(&self.details)]);
    }
}

impl Abort {
    pub(crate) fn parse(f: &mut Fields<'_>) -> Result<Self, DecodeError> {
        Ok(Self { details: f.dict("Details")?, reason: f.uri("Reason")?, payload: f.payload()? })
    }
    pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
        out.extend([Element::Dict(&self.details), Element::Str(self.reason.as_str())]);
        push_payload(out, &self.payload);
    }
}

impl Challenge {
    pub(crate) fn parse(f: &mut Fields<'_>) -> Result<Self, DecodeError> {
        Ok(Self { authmethod: f.string("AuthMethod")?, extra: f.dict("Extra")? })
    }
    pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
        out.extend([Element::Str(&self.authmethod), Element::Dict(&self.extra)]);
    }
}

impl Authenticate {
    pub(crate) fn parse(f: &mut Fields<'_>) -> Result<Self, DecodeError> {
        Ok(Self { signature: f.string("Signature")?, extra: f.dict("Extra")? })
    }
    pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
        out.extend([Element::Str(&self.signature), Element::Dict(&self.extra)]);
    }
}

impl Goodbye {
    pub(crate) fn parse(f: &mut Fields<'_>) -> Result<Self, DecodeError> {
        Ok(Self { details: f.dict("Details")?, reason: f.uri("Reason")? })
    }
    pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
        out.extend([Element::Dict(&self.details), Element::Str(self.reason.as_str())]);
    }
}
