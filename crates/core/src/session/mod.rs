//! The per-connection session state machine (spec, "Sessions").
//!
//! One [`Session`] per connection, owned by the task that drives it. Call order:
//! 1. [`Session::handle`] with each message decoded from the peer (or [`Session::reject`] with
//!    what could not be decoded);
//! 2. when an [`Outbound::Close`](crate::Outbound::Close) comes out of the outbox, write what
//!    [`Session::close`] returns;
//! 3. [`Session::transport_closed`] once the connection is gone, however it ended.
//!
//! Everything for the peer goes through its [`Outbox`], replies and deliveries alike. When a
//! call returns [`Status::Closed`], the driver flushes the outbox and drops the connection.
//!
//! States, each its own type holding only what is valid in it: [`Establishing`] (waiting for
//! HELLO), [`Established`] (attached to a realm), `Closing` (the router sent GOODBYE and waits
//! for the reply) and `Closed`.

mod established;
mod establishing;
mod info;

use std::sync::Arc;

use junction_wire::message::{Abort, Goodbye};
use junction_wire::{DecodeError, Message, Uri};

pub use established::Established;
pub(crate) use established::supports_passthru;
pub use establishing::{Challenging, Establishing};
pub use info::{ChannelBindings, SessionInfo, TransportInfo, TransportKind};

use crate::error::Error;
use crate::outbox::{Outbound, Outbox};
use crate::router::Router;
use crate::time::Now;

/// Whether the connection should stay open after a call into the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Status {
    /// Keep reading.
    Open,
    /// Flush what is queued, then close the connection.
    Closed,
}

/// A session's state machine.
pub struct Session {
    router: Arc<Router>,
    outbox: Arc<dyn Outbox>,
    state: State,
}

enum State {
    Establishing(Establishing),
    // Boxed: it is large and short-lived.
    Challenging(Box<Challenging>),
    Established(Established),
    Closing,
    Closed,
}

impl Session {
    /// A new session on a fresh connection, waiting for HELLO.
    pub fn new(router: Arc<Router>, transport: TransportInfo, outbox: Arc<dyn Outbox>) -> Self {
        Self { router, outbox, state: State::Establishing(Establishing::new(transport)) }
    }

    /// The established session's description, once WELCOME was sent.
    pub fn info(&self) -> Option<&SessionInfo> {
        match &self.state {
            State::Established(e) => Some(e.info()),
            _ => None,
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Handles one message from the peer.
    pub fn handle(&mut self, now: Now, message: Message) -> Status {
        let (state, status) = match std::mem::replace(&mut self.state, State::Closed) {
            State::Establishing(e) => e.handle(&self.router, &self.outbox, now, message),
            State::Challenging(c) => c.handle(&self.router, &self.outbox, now, message),
            State::Established(e) => e.handle(&self.router, &self.outbox, now, message),
            // After the router's GOODBYE only the peer's GOODBYE matters (spec): the rest is dropped.
            State::Closing => match message {
                Message::Goodbye(_) | Message::Abort(_) => (State::Closed, Status::Closed),
                _ => (State::Closing, Status::Open),
            },
            State::Closed => (State::Closed, Status::Closed),
        };
        self.state = state;
        status
    }

    /// Handles bytes that did not decode: a protocol violation that aborts the session.
    pub fn reject(&mut self, now: Now, error: &DecodeError) -> Status {
        let error = Error::ProtocolViolation(format!("malformed message: {error}"));
        self.abort(now, &error)
    }

    /// Aborts the session with `error` (a protocol violation or a transport-level refusal such
    /// as an oversized message).
    pub fn abort(&mut self, now: Now, error: &Error) -> Status {
        if let State::Established(e) = &self.state {
            e.detach(now);
        }
        if !matches!(self.state, State::Closed | State::Closing) {
            self.outbox.push(Outbound::message(abort_message(error)));
        }
        self.state = State::Closed;
        Status::Closed
    }

    /// The router closes the session: detaches it and returns the GOODBYE to write. The
    /// session then waits for the peer's GOODBYE (the driver bounds the wait).
    pub fn close(&mut self, now: Now, goodbye: Goodbye) -> Option<Message> {
        match std::mem::replace(&mut self.state, State::Closing) {
            State::Established(e) => {
                e.detach(now);
                Some(goodbye.into())
            }
            State::Establishing(_) | State::Challenging(_) => {
                self.state = State::Closed;
                let error = Error::ProtocolViolation(goodbye_message(&goodbye));
                Some(
                    Abort {
                        details: error.details(),
                        reason: goodbye.reason,
                        payload: Default::default(),
                    }
                    .into(),
                )
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// A message for this session could not be written: it cannot be encoded in the session's
    /// serializer, or it is larger than the peer accepts. No call may hang on it: an INVOCATION
    /// fails the call for its caller, a RESULT or ERROR for this session becomes a plain ERROR.
    /// Events are simply lost (the driver counts them).
    pub fn undeliverable(&mut self, message: &Message, why: &Error) {
        let State::Established(e) = &self.state else { return };
        e.undeliverable(message, why);
    }

    /// The connection is gone: detaches the session if it was still attached.
    pub fn transport_closed(&mut self, now: Now) {
        if let State::Established(e) = std::mem::replace(&mut self.state, State::Closed) {
            e.detach(now);
        }
    }
}

fn goodbye_message(goodbye: &Goodbye) -> String {
    goodbye.details.get("message").and_then(|m| m.as_str()).unwrap_or("closing").to_owned()
}

/// ABORT for `error`, with its message in the details.
pub(crate) fn abort_message(error: &Error) -> Message {
    Abort { details: error.details(), reason: Uri::from(error.uri()), payload: Default::default() }
        .into()
}
