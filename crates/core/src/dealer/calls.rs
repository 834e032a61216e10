//! Calls in flight: CALL → INVOCATION, YIELD/ERROR → RESULT/ERROR, CANCEL → INTERRUPT, and the
//! clean-up when either side leaves.

use std::collections::BTreeMap;
use std::sync::Arc;

use junction_wire::message::{self, Call, Interrupt, Invocation, Yield};
use junction_wire::{Dict, MessageType, RequestId, SessionId, Uri, Value, dict};

use super::Dealer;
use crate::error::Error;
use crate::options::{CallOptions, MatchPolicy};
use crate::realm::Peer;

/// How a CANCEL treats the callee (spec, call canceling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelMode {
    /// Answer the caller at once; the callee is not told.
    Skip,
    /// Interrupt the callee and wait for its answer.
    Kill,
    /// Interrupt the callee and answer the caller at once.
    KillNoWait,
}

impl CancelMode {
    /// Parses CANCEL.Options.mode (default `killnowait`, as the spec says).
    pub fn parse(options: &Dict) -> Result<Self, Error> {
        match options.get("mode").and_then(Value::as_str) {
            None | Some("killnowait") => Ok(CancelMode::KillNoWait),
            Some("kill") => Ok(CancelMode::Kill),
            Some("skip") => Ok(CancelMode::Skip),
            Some(other) => Err(Error::InvalidArgument(format!(
                "unknown cancel mode \"{other}\""
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            CancelMode::Skip => "skip",
            CancelMode::Kill => "kill",
            CancelMode::KillNoWait => "killnowait",
        }
    }
}

/// Calls in flight, indexed from both ends.
#[derive(Default)]
pub(super) struct Calls {
    /// By (callee, invocation request id).
    invocations: BTreeMap<(SessionId, RequestId), Pending>,
    /// (caller, call request id) → (callee, invocation request id).
    by_caller: BTreeMap<(SessionId, RequestId), (SessionId, RequestId)>,
}

struct Pending {
    caller: Arc<Peer>,
    call_request: RequestId,
    callee: Arc<Peer>,
    receive_progress: bool,
}

impl Dealer {
    /// Routes a CALL to a callee as an INVOCATION.
    pub(crate) fn call(
        &self,
        caller: &Arc<Peer>,
        call: Call,
        options: &CallOptions,
    ) -> Result<(), Error> {
        let (registration, policy, callee) = self
            .route(&call.procedure)
            .ok_or_else(|| Error::NoSuchProcedure(call.procedure.clone()))?;
        let receive_progress = options.receive_progress
            && callee
                .info()
                .has_feature("callee", "progressive_call_results");
        let mut details = Dict::new();
        if policy != MatchPolicy::Exact {
            details.insert("procedure".into(), Value::from(call.procedure.as_str()));
        }
        if receive_progress {
            details.insert("receive_progress".into(), Value::Bool(true));
        }
        if options.disclose_me {
            let info = caller.info();
            details.insert("caller".into(), Value::from(info.id.get()));
            details.insert("caller_authid".into(), Value::from(info.authid.as_str()));
            details.insert(
                "caller_authrole".into(),
                Value::from(info.authrole.as_str()),
            );
        }
        if options.timeout_ms > 0 {
            details.insert("timeout".into(), Value::from(options.timeout_ms));
        }
        let invocation_request = callee.next_request_id();
        {
            let mut calls = self.lock_calls();
            let caller_key = (caller.id(), call.request);
            if calls.by_caller.contains_key(&caller_key) {
                return Err(Error::ProtocolViolation(format!(
                    "CALL request id {} is already in flight",
                    call.request
                )));
            }
            calls
                .by_caller
                .insert(caller_key, (callee.id(), invocation_request));
            let pending = Pending {
                caller: Arc::clone(caller),
                call_request: call.request,
                callee: Arc::clone(&callee),
                receive_progress,
            };
            calls
                .invocations
                .insert((callee.id(), invocation_request), pending);
        }
        callee.send(Invocation {
            request: invocation_request,
            registration,
            details,
            payload: call.payload,
        });
        Ok(())
    }

    /// Forwards a callee's YIELD to the caller as RESULT (progressive or final).
    pub(crate) fn yield_result(&self, callee: &Peer, result: Yield) -> Result<(), Error> {
        let progress = result
            .options
            .get("progress")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mut calls = self.lock_calls();
        let key = (callee.id(), result.request);
        let Some(pending) = calls.invocations.get(&key) else {
            return late_answer(callee, result.request, "YIELD");
        };
        let progressive = progress && pending.receive_progress;
        let (caller, call_request) = (Arc::clone(&pending.caller), pending.call_request);
        if !progressive {
            calls.finish(key);
        }
        drop(calls);
        let details = if progressive {
            dict! { "progress" => true }
        } else {
            Dict::new()
        };
        caller.send(message::Result {
            request: call_request,
            details,
            payload: result.payload,
        });
        Ok(())
    }

    /// Forwards a callee's ERROR for an invocation to the caller.
    pub(crate) fn invocation_error(
        &self,
        callee: &Peer,
        error: message::Error,
    ) -> Result<(), Error> {
        let key = (callee.id(), error.request);
        let Some(pending) = self.lock_calls().finish(key) else {
            return late_answer(callee, error.request, "ERROR");
        };
        pending.caller.send(message::Error {
            request_type: MessageType::Call,
            request: pending.call_request,
            ..error
        });
        Ok(())
    }

    /// Cancels a caller's call in flight. A callee that did not announce call canceling is
    /// treated as `skip`, as the spec says. Unknown calls (already answered) are ignored.
    pub(crate) fn cancel(&self, caller: &Peer, request: RequestId, mode: CancelMode) {
        let mut calls = self.lock_calls();
        let Some(&callee_key) = calls.by_caller.get(&(caller.id(), request)) else {
            return;
        };
        let Some(pending) = calls.invocations.get(&callee_key) else {
            return;
        };
        let callee = Arc::clone(&pending.callee);
        let mode = if callee_can_cancel(&callee) {
            mode
        } else {
            CancelMode::Skip
        };
        if mode != CancelMode::Kill {
            calls.finish(callee_key);
            caller.send(canceled(request, "the call was canceled by the caller"));
        }
        drop(calls);
        if mode != CancelMode::Skip {
            callee.send(Interrupt {
                request: callee_key.1,
                options: dict! { "mode" => mode.name() },
            });
        }
    }
}

impl Calls {
    /// Removes a call from both indexes.
    fn finish(&mut self, callee_key: (SessionId, RequestId)) -> Option<Pending> {
        let pending = self.invocations.remove(&callee_key)?;
        self.by_caller
            .remove(&(pending.caller.id(), pending.call_request));
        Some(pending)
    }

    /// Fails the calls a departed callee was serving and abandons those a departed caller made
    /// (interrupting their callees where they support it).
    pub(super) fn remove_session(&mut self, session: SessionId) {
        let as_callee: Vec<_> = self
            .invocations
            .range(session_range(session))
            .map(|(k, _)| *k)
            .collect();
        for key in as_callee {
            if let Some(pending) = self.finish(key)
                && pending.caller.id() != session
            {
                pending.caller.send(canceled(
                    pending.call_request,
                    "the callee left before answering",
                ));
            }
        }
        let as_caller: Vec<_> = self
            .by_caller
            .range(session_range(session))
            .map(|(_, v)| *v)
            .collect();
        for key in as_caller {
            if let Some(pending) = self.finish(key)
                && callee_can_cancel(&pending.callee)
            {
                pending.callee.send(Interrupt {
                    request: key.1,
                    options: dict! { "mode" => "killnowait" },
                });
            }
        }
    }
}

fn session_range(session: SessionId) -> std::ops::RangeInclusive<(SessionId, RequestId)> {
    (session, RequestId::MIN)..=(session, RequestId::MAX)
}

fn callee_can_cancel(callee: &Peer) -> bool {
    let info = callee.info();
    info.has_feature("callee", "call_canceling") || info.has_feature("callee", "call_cancelling")
}

/// An answer to an invocation the dealer no longer tracks: fine if the router issued that
/// request id (the call was canceled or its caller left), a protocol violation otherwise.
fn late_answer(callee: &Peer, request: RequestId, what: &str) -> Result<(), Error> {
    if callee.has_issued(request) {
        Ok(())
    } else {
        Err(Error::ProtocolViolation(format!(
            "{what} for unknown INVOCATION request {request}"
        )))
    }
}

fn canceled(request: RequestId, why: &str) -> message::Error {
    let error = Error::Canceled(why.to_owned());
    message::Error {
        request_type: MessageType::Call,
        request,
        details: Dict::new(),
        error: Uri::from(error.uri()),
        payload: error.payload(),
    }
}
