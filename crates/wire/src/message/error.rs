//! The ERROR message, the reply to a failed request of any kind.

use super::{DecodeError, Element, Elements, Fields, MessageType, message_kind, push_payload};
use crate::id::RequestId;
use crate::payload::Payload;
use crate::uri::Uri;
use crate::value::Dict;

/// `[ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri(, Arguments(, ArgumentsKw))]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The type of the request that failed (SUBSCRIBE, CALL, INVOCATION, …).
    pub request_type: MessageType,
    /// The id of the request that failed.
    pub request: RequestId,
    /// Error details.
    pub details: Dict,
    /// The error URI.
    pub error: Uri,
    /// Optional application payload (for application errors, passed through untouched).
    pub payload: Payload,
}

message_kind!(Error);

impl Error {
    pub(crate) fn parse(f: &mut Fields<'_>) -> Result<Self, DecodeError> {
        let code = f.uint("REQUEST.Type")?;
        let request_type = MessageType::from_code(code).ok_or(DecodeError::Field {
            message: "ERROR",
            field: "REQUEST.Type",
            expected: "a request message type",
        })?;
        Ok(Self {
            request_type,
            request: f.id("REQUEST.Request", RequestId::new)?,
            details: f.dict("Details")?,
            error: f.uri("Error")?,
            payload: f.payload()?,
        })
    }
    pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
        out.extend([
            Element::UInt(self.request_type.code()),
            Element::UInt(self.request.get()),
            Element::Dict(&self.details),
            Element::Str(self.error.as_str()),
        ]);
        push_payload(out, &self.payload);
    }
}
