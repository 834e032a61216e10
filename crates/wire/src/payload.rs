//! Application payload: a message's `Arguments|list` and `ArgumentsKw|dict`.
//!
//! A router never needs to look inside the payload, so the codecs keep it as the sender's encoded
//! bytes ([`Data::Encoded`]). When the receiver speaks the same serializer those bytes are copied
//! through untouched; otherwise they are transcoded once, at encode time.

use bytes::Bytes;

use crate::codec::{DecodeError, Serializer};
use crate::value::{Dict, Value};

/// One payload element: a list (args) or a dictionary (kwargs).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// Bytes exactly as a peer encoded them with `serializer`.
    Encoded {
        /// The serializer the bytes are in.
        serializer: Serializer,
        /// One complete encoded list or dictionary.
        bytes: Bytes,
    },
    /// A value built by the router itself (meta API results, error messages).
    Decoded(Value),
}

impl Data {
    /// The payload element as a value, decoding it if needed.
    pub fn to_value(&self) -> Result<Value, DecodeError> {
        match self {
            Data::Encoded { serializer, bytes } => serializer.decode_value(bytes),
            Data::Decoded(value) => Ok(value.clone()),
        }
    }
}

/// The optional `Arguments` and `ArgumentsKw` of a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    /// Positional arguments (a list).
    pub args: Option<Data>,
    /// Keyword arguments (a dictionary).
    pub kwargs: Option<Data>,
}

impl Payload {
    /// A payload built by the router; empty parts are left out, as the spec asks.
    pub fn from_values(args: Vec<Value>, kwargs: Dict) -> Self {
        Self {
            args: (!args.is_empty()).then(|| Data::Decoded(Value::List(args))),
            kwargs: (!kwargs.is_empty()).then(|| Data::Decoded(Value::Dict(kwargs))),
        }
    }

    /// A payload with positional arguments only.
    pub fn args(args: Vec<Value>) -> Self {
        Self::from_values(args, Dict::new())
    }

    /// The positional arguments, decoded (empty when absent). Errors if they are not a list.
    pub fn args_list(&self) -> Result<Vec<Value>, DecodeError> {
        match self.args.as_ref().map(Data::to_value).transpose()? {
            None => Ok(Vec::new()),
            Some(Value::List(l)) => Ok(l),
            Some(_) => Err(DecodeError::PayloadShape("Arguments must be a list")),
        }
    }

    /// The keyword arguments, decoded (empty when absent). Errors if they are not a dictionary.
    pub fn kwargs_dict(&self) -> Result<Dict, DecodeError> {
        match self.kwargs.as_ref().map(Data::to_value).transpose()? {
            None => Ok(Dict::new()),
            Some(Value::Dict(d)) => Ok(d),
            Some(_) => Err(DecodeError::PayloadShape("ArgumentsKw must be a dictionary")),
        }
    }

    /// Whether there are neither arguments nor keyword arguments.
    pub fn is_empty(&self) -> bool {
        self.args.is_none() && self.kwargs.is_none()
    }

    /// The total encoded size of the payload, for size limits; router-built values count as 0.
    pub fn encoded_len(&self) -> usize {
        [&self.args, &self.kwargs]
            .into_iter()
            .flatten()
            .map(|d| match d {
                Data::Encoded { bytes, .. } => bytes.len(),
                Data::Decoded(_) => 0,
            })
            .sum()
    }
}
