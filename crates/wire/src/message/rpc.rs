//! Remote procedure calls: CALL, CANCEL, RESULT, REGISTER, REGISTERED, UNREGISTER, UNREGISTERED,
//! INVOCATION, INTERRUPT, YIELD.

use super::{
    DecodeError, Element, Elements, Fields, acknowledgement_message, id_pair_message, message_kind,
    push_payload, request_options_uri_message,
};
use crate::id::{RegistrationId, RequestId};
use crate::payload::Payload;
use crate::uri::Uri;
use crate::value::Dict;

/// `[CALL, Request|id, Options|dict, Procedure|uri(, Arguments(, ArgumentsKw))]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The caller's request id.
    pub request: RequestId,
    /// `timeout`, `receive_progress`, `disclose_me`, …
    pub options: Dict,
    /// The procedure called.
    pub procedure: Uri,
    /// The call's arguments.
    pub payload: Payload,
}

/// `[CANCEL, CALL.Request|id, Options|dict]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancel {
    /// The call to cancel.
    pub request: RequestId,
    /// `mode`: `skip`, `kill` or `killnowait`.
    pub options: Dict,
}

/// `[RESULT, CALL.Request|id, Details|dict(, Arguments(, ArgumentsKw))]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Result {
    /// The call answered.
    pub request: RequestId,
    /// `progress`, …
    pub details: Dict,
    /// The callee's result.
    pub payload: Payload,
}

/// `[REGISTER, Request|id, Options|dict, Procedure|uri]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    /// The callee's request id.
    pub request: RequestId,
    /// `match`, `invoke`, …
    pub options: Dict,
    /// The procedure (or pattern) to register.
    pub procedure: Uri,
}

/// `[REGISTERED, REGISTER.Request|id, Registration|id]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// The REGISTER request answered.
    pub request: RequestId,
    /// The registration.
    pub registration: RegistrationId,
}

/// `[UNREGISTER, Request|id, REGISTERED.Registration|id]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unregister {
    /// The callee's request id.
    pub request: RequestId,
    /// The registration to withdraw.
    pub registration: RegistrationId,
}

/// `[UNREGISTERED, UNREGISTER.Request|id]`, or with request `0` and details when the router
/// revokes a registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Unregistered {
    /// The UNREGISTER request answered, or 0 for a revocation.
    pub request: RequestId,
    /// Revocation details (`registration`, `reason`).
    pub details: Option<Dict>,
}

/// `[INVOCATION, Request|id, REGISTERED.Registration|id, Details|dict(, Arguments(, ArgumentsKw))]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The router's request id towards the callee.
    pub request: RequestId,
    /// The registration invoked.
    pub registration: RegistrationId,
    /// `caller`, `procedure`, `receive_progress`, …
    pub details: Dict,
    /// The caller's arguments.
    pub payload: Payload,
}

/// `[INTERRUPT, INVOCATION.Request|id, Options|dict]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupt {
    /// The invocation to interrupt.
    pub request: RequestId,
    /// `mode`, `reason`.
    pub options: Dict,
}

/// `[YIELD, INVOCATION.Request|id, Options|dict(, Arguments(, ArgumentsKw))]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Yield {
    /// The invocation answered.
    pub request: RequestId,
    /// `progress`, …
    pub options: Dict,
    /// The callee's result.
    pub payload: Payload,
}

message_kind!(
    Call,
    Cancel,
    Result,
    Register,
    Registered,
    Unregister,
    Unregistered,
    Invocation,
    Interrupt,
    Yield
);

/// Messages shaped `[TYPE, Request|id, Options-or-Details|dict]` with an optional payload.
macro_rules! request_dict_message {
    ($ty:ident, $id_field:literal, $dict:ident, $dict_field:literal, payload) => {
        impl $ty {
            pub(crate) fn parse(f: &mut Fields<'_>) -> std::result::Result<Self, DecodeError> {
                Ok(Self {
                    request: f.id($id_field, RequestId::new)?,
                    $dict: f.dict($dict_field)?,
                    payload: f.payload()?,
                })
            }
            pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
                out.extend([Element::UInt(self.request.get()), Element::Dict(&self.$dict)]);
                push_payload(out, &self.payload);
            }
        }
    };
    ($ty:ident, $id_field:literal, $dict:ident, $dict_field:literal) => {
        impl $ty {
            pub(crate) fn parse(f: &mut Fields<'_>) -> std::result::Result<Self, DecodeError> {
                Ok(Self { request: f.id($id_field, RequestId::new)?, $dict: f.dict($dict_field)? })
            }
            pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
                out.extend([Element::UInt(self.request.get()), Element::Dict(&self.$dict)]);
            }
        }
    };
}

request_dict_message!(Cancel, "CALL.Request", options, "Options");
request_dict_message!(Interrupt, "INVOCATION.Request", options, "Options");
request_dict_message!(Result, "CALL.Request", details, "Details", payload);
request_dict_message!(Yield, "INVOCATION.Request", options, "Options", payload);

request_options_uri_message!(Call, procedure = "Procedure", payload);
request_options_uri_message!(Register, procedure = "Procedure");
id_pair_message!(Registered, request: RequestId = "REGISTER.Request", registration: RegistrationId = "Registration");
id_pair_message!(Unregister, request: RequestId = "Request", registration: RegistrationId = "REGISTERED.Registration");
acknowledgement_message!(Unregistered, "UNREGISTER.Request");

impl Invocation {
    pub(crate) fn parse(f: &mut Fields<'_>) -> std::result::Result<Self, DecodeError> {
        Ok(Self {
            request: f.id("Request", RequestId::new)?,
            registration: f.id("REGISTERED.Registration", RegistrationId::new)?,
            details: f.dict("Details")?,
            payload: f.payload()?,
        })
    }
    pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
        out.extend([
            Element::UInt(self.request.get()),
            Element::UInt(self.registration.get()),
            Element::Dict(&self.details),
        ]);
        push_payload(out, &self.payload);
    }
}
