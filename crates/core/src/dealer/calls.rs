//! Calls in flight: CALL → INVOCATION, YIELD/ERROR → RESULT/ERROR, CANCEL → INTERRUPT;
//! progressive results and invocations, timeouts, rerouting, concurrency limits, and the
//! clean-up when either side leaves.

use std::collections::BTreeSet;
use std::sync::Arc;

use foldhash::HashMap;
use std::time::Instant;

use junction_wire::message::{self, Call, Interrupt, Invocation, Yield};
use junction_wire::{
    Dict, MessageType, Payload, RegistrationId, RequestId, SessionId, Uri, Value, dict,
};

use super::{Dealer, Route};
use crate::error::Error;
use crate::limits;
use crate::options::{CallOptions, MatchPolicy};
use crate::realm::{Peer, RealmConfig};
use crate::session::supports_passthru;

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
    /// Parses CANCEL.Options.mode. The spec names no default; Junction takes `killnowait` (the
    /// caller is answered at once and the callee is told), where Bondy takes `skip`.
    pub fn parse(options: &Dict) -> Result<Self, Error> {
        match options.get("mode").and_then(Value::as_str) {
            None | Some("killnowait") => Ok(CancelMode::KillNoWait),
            Some("kill") => Ok(CancelMode::Kill),
            Some("skip") => Ok(CancelMode::Skip),
            Some(other) => Err(Error::InvalidArgument(format!("unknown cancel mode \"{other}\""))),
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

/// (callee, invocation request id): how the dealer names an invocation.
type CalleeKey = (SessionId, RequestId);

/// Calls in flight, indexed from both ends, with their deadlines and per-callee load.
///
/// Both indexes are keyed by session first, then by request id: what a departing session had
/// in flight is one entry, and a caller's pending-call count is the length of its map. They are
/// hash maps with foldhash (seeded at random, so request ids chosen by a client cannot be made
/// to collide on purpose): B-trees keyed by (session, request) cost about 2,000 instructions per
/// routed call in node searches and in moving the large `Pending` values inside their nodes.
/// A session's inner maps stay (empty) between its calls, so a call does not allocate them
/// again; they go when the session leaves (see [`Calls::release`] for a session that leaves
/// while its calls are being made).
#[derive(Default)]
pub(super) struct Calls {
    /// callee → invocation request id → the call.
    invocations: HashMap<SessionId, HashMap<RequestId, Pending>>,
    /// caller → call request id → the invocation serving it.
    by_caller: HashMap<SessionId, HashMap<RequestId, CalleeKey>>,
    /// Calls with a timeout, soonest first.
    deadlines: BTreeSet<(Instant, CalleeKey)>,
    /// Invocations in flight per (registration, callee), for concurrency limits: only calls to
    /// registrations with a limit are counted (see `Pending::limited`).
    load: HashMap<(RegistrationId, SessionId), u64>,
}

struct Pending {
    caller: Arc<Peer>,
    call_request: RequestId,
    callee: Arc<Peer>,
    registration: RegistrationId,
    /// The registration has a concurrency limit, so the call is counted in `Calls::load`.
    /// Without one nothing reads the count, and keeping it cost two hash-map updates per call.
    limited: bool,
    procedure: Uri,
    receive_progress: bool,
    /// The caller is still sending CALL chunks (progressive call invocations).
    caller_streaming: bool,
    deadline: Option<Instant>,
    /// What rerouting needs if the callee answers `wamp.error.unavailable`. Boxed: only shared
    /// registrations have it, and without it a `Pending` is small enough to move inline.
    reroute: Option<Box<Reroute>>,
}

struct Reroute {
    details: Dict,
    payload: Payload,
    /// Other callees, in preference order.
    untried: Vec<Arc<Peer>>,
    concurrency: Option<u64>,
}

impl Dealer {
    /// Routes a CALL to a callee as an INVOCATION, or continues a progressive call invocation.
    pub(crate) fn call(
        &self,
        caller: &Arc<Peer>,
        call: Call,
        options: &CallOptions,
        realm: &RealmConfig,
        now: Instant,
    ) -> Result<(), Error> {
        // Bound first: a guard in the `if let` would live on through `continue_call`.
        let in_flight = self.lock_calls().serving(caller.id(), call.request);
        if let Some(callee_key) = in_flight {
            return self.continue_call(callee_key, call, options);
        }
        let route = self
            .route(&call.procedure, options.partition_key.as_deref())
            .ok_or_else(|| Error::NoSuchProcedure(call.procedure.clone()))?;
        let timeout = realm.call_timeout(options.timeout_ms);
        let mut details =
            invocation_details(caller, &call.procedure, &route, options, realm, timeout);
        copy_passthru_options(&call.options, &mut details);
        let deadline = timeout.map(|t| now + t);
        let Route { registration, concurrency, candidates, .. } = route;

        let mut calls = self.lock_calls();
        let pending = calls.by_caller.get(&caller.id()).map_or(0, HashMap::len);
        limits::check(self.limits.max_pending_calls, pending, "pending calls per session")?;
        let mut untried = candidates.into_iter();
        let callee = untried
            .by_ref()
            .find(|c| calls.has_room(registration, c, concurrency))
            .ok_or_else(|| {
                Error::NoAvailableCallee(format!(
                    "every callee of \"{}\" is at its concurrency limit",
                    call.procedure
                ))
            })?;
        if call.options.contains_key("ppt_scheme") && !supports_passthru(callee.info(), "callee") {
            return Err(Error::FeatureNotSupported(format!(
                "the callee of \"{}\" does not support payload passthru mode",
                call.procedure
            )));
        }
        // The spec requires a callee of progressive invocations to support canceling too. Only
        // looked up for such calls: three dictionary searches cost ~190 instructions per call.
        if options.progress && !accepts_progressive_invocations(&callee) {
            return Err(Error::FeatureNotSupported(format!(
                "the callee of \"{}\" does not accept progressive call invocations",
                call.procedure
            )));
        }
        let untried: Vec<_> = untried.collect();
        let reroute = (!untried.is_empty() && !options.progress).then(|| {
            Box::new(Reroute {
                details: details.clone(),
                payload: call.payload.clone(),
                untried,
                concurrency,
            })
        });
        let pending = Pending {
            caller: Arc::clone(caller),
            call_request: call.request,
            callee: Arc::clone(&callee),
            registration,
            limited: concurrency.is_some(),
            procedure: call.procedure,
            receive_progress: details.contains_key("receive_progress"),
            caller_streaming: options.progress,
            deadline,
            reroute,
        };
        let request = callee.next_request_id();
        let soonest = calls.insert((callee.id(), request), pending);
        drop(calls);
        callee.send(Invocation { request, registration, details, payload: call.payload });
        if soonest {
            self.timers.wake();
        }
        Ok(())
    }

    /// Another CALL chunk of a progressive call invocation, forwarded to the same callee under
    /// the same invocation request id.
    fn continue_call(
        &self,
        callee_key: CalleeKey,
        call: Call,
        options: &CallOptions,
    ) -> Result<(), Error> {
        let mut calls = self.lock_calls();
        let Some(pending) = calls.pending_mut(callee_key) else { return Ok(()) };
        if !pending.caller_streaming {
            return Err(Error::ProtocolViolation(format!(
                "CALL request id {} is already in flight",
                call.request
            )));
        }
        pending.caller_streaming = options.progress;
        let (callee, registration) = (Arc::clone(&pending.callee), pending.registration);
        drop(calls);
        let details = if options.progress {
            dict! { "progress" => true }
        } else {
            Dict::new()
        };
        callee.send(Invocation {
            request: callee_key.1,
            registration,
            details,
            payload: call.payload,
        });
        Ok(())
    }

    /// Forwards a callee's YIELD to the caller as RESULT (progressive or final).
    pub(crate) fn yield_result(&self, callee: &Peer, result: Yield) -> Result<(), Error> {
        let progress = result.options.get("progress").and_then(Value::as_bool).unwrap_or(false);
        let key = (callee.id(), result.request);
        let mut calls = self.lock_calls();
        let Some(pending) = calls.pending(key) else {
            return late_answer(callee, result.request, "YIELD");
        };
        let progressive = progress && pending.receive_progress;
        let (caller, call_request) = (Arc::clone(&pending.caller), pending.call_request);
        if !progressive {
            calls.finish(key);
        }
        drop(calls);
        let mut details = if progressive {
            dict! { "progress" => true }
        } else {
            Dict::new()
        };
        copy_passthru_options(&result.options, &mut details);
        caller.send(message::Result { request: call_request, details, payload: result.payload });
        Ok(())
    }

    /// A YIELD carrying a passthru payload for a caller that did not announce the feature: the
    /// spec makes it an application error for the callee (ERROR for its YIELD); the caller is
    /// told too, so it does not wait for a result that will not come.
    pub(crate) fn check_caller_passthru(
        &self,
        callee: &Peer,
        request: RequestId,
    ) -> Result<(), Error> {
        let key = (callee.id(), request);
        let mut calls = self.lock_calls();
        let supported =
            calls.pending(key).is_none_or(|p| supports_passthru(p.caller.info(), "caller"));
        if supported {
            return Ok(());
        }
        let error =
            Error::FeatureNotSupported("the caller does not support payload passthru mode".into());
        if let Some(pending) = calls.finish(key) {
            pending.caller.send(error_for_call(pending.call_request, &error));
        }
        Err(error)
    }

    /// Forwards a callee's ERROR for an invocation to the caller, or reroutes the call to
    /// another callee when the error is `wamp.error.unavailable` (call rerouting).
    pub(crate) fn invocation_error(
        &self,
        callee: &Peer,
        error: message::Error,
    ) -> Result<(), Error> {
        let key = (callee.id(), error.request);
        let mut calls = self.lock_calls();
        let Some(pending) = calls.finish(key) else {
            return late_answer(callee, error.request, "ERROR");
        };
        if error.error.as_str() == "wamp.error.unavailable" {
            let rerouted = calls.reroute(pending);
            drop(calls);
            return match rerouted {
                Ok((next, request, registration, reroute_details, payload)) => {
                    next.send(Invocation {
                        request,
                        registration,
                        details: reroute_details,
                        payload,
                    });
                    Ok(())
                }
                Err((caller, call_request, procedure)) => {
                    let error = Error::NoAvailableCallee(format!(
                        "no callee of \"{procedure}\" is available"
                    ));
                    caller.send(error_for_call(call_request, &error));
                    Ok(())
                }
            };
        }
        drop(calls);
        pending.caller.send(message::Error {
            request_type: MessageType::Call,
            request: pending.call_request,
            ..error
        });
        Ok(())
    }

    /// Cancels a caller's call in flight. A callee that did not announce call canceling is
    /// treated as `skip`, as the spec says. Unknown calls (already answered) are ignored.
    ///
    /// `authorize` checks the `wamp.cancel` permission on the called procedure. A refused
    /// CANCEL ends the call for the caller with that refusal (an ERROR for its CALL: clients
    /// expect one after CANCEL, and the WAMP ERROR has no form for CANCEL), and the callee is
    /// not interrupted: its answer is discarded, as with `skip`.
    pub(crate) fn cancel(
        &self,
        caller: &Peer,
        request: RequestId,
        mode: CancelMode,
        authorize: impl FnOnce(&Uri) -> Result<(), Error>,
    ) {
        let mut calls = self.lock_calls();
        let Some(callee_key) = calls.serving(caller.id(), request) else { return };
        let Some(pending) = calls.pending(callee_key) else { return };
        if let Err(refusal) = authorize(&pending.procedure) {
            calls.finish(callee_key);
            drop(calls);
            caller.send(error_for_call(request, &refusal));
            return;
        }
        let callee = Arc::clone(&pending.callee);
        let mode = if can_cancel(&callee) { mode } else { CancelMode::Skip };
        if mode != CancelMode::Kill {
            calls.finish(callee_key);
            let error = Error::Canceled("the call was canceled by the caller".into());
            caller.send(error_for_call(request, &error));
        }
        drop(calls);
        if mode != CancelMode::Skip {
            callee.send(Interrupt {
                request: callee_key.1,
                options: dict! { "mode" => mode.name() },
            });
        }
    }

    /// Fails every call whose deadline is at or before `now` with `wamp.error.timeout`, and
    /// interrupts its callee. Returns the next deadline.
    pub(crate) fn expire(&self, now: Instant) -> Option<Instant> {
        let mut calls = self.lock_calls();
        while let Some(&(deadline, key)) = calls.deadlines.first() {
            if deadline > now {
                return Some(deadline);
            }
            if let Some(pending) = calls.finish(key) {
                let error =
                    Error::Timeout(format!("the call to \"{}\" timed out", pending.procedure));
                pending.caller.send(error_for_call(pending.call_request, &error));
                if can_cancel(&pending.callee) {
                    let options =
                        dict! { "mode" => "killnowait", "reason" => "wamp.error.timeout" };
                    pending.callee.send(Interrupt { request: key.1, options });
                }
            }
        }
        None
    }
}

impl Calls {
    /// Records a call; returns whether its deadline is now the soonest.
    fn insert(&mut self, key: CalleeKey, pending: Pending) -> bool {
        if pending.limited {
            *self.load.entry((pending.registration, key.0)).or_default() += 1;
        }
        self.by_caller.entry(pending.caller.id()).or_default().insert(pending.call_request, key);
        let soonest = pending
            .deadline
            .is_some_and(|d| self.deadlines.first().is_none_or(|(first, _)| d < *first));
        if let Some(deadline) = pending.deadline {
            self.deadlines.insert((deadline, key));
        }
        self.invocations.entry(key.0).or_default().insert(key.1, pending);
        soonest
    }

    /// How many sessions the indexes hold (kept or not yet removed).
    #[cfg(test)]
    pub(super) fn sessions(&self) -> usize {
        self.invocations.len() + self.by_caller.len()
    }

    /// The invocation serving `caller`'s call `request`, if it is in flight.
    fn serving(&self, caller: SessionId, request: RequestId) -> Option<CalleeKey> {
        self.by_caller.get(&caller)?.get(&request).copied()
    }

    fn pending(&self, key: CalleeKey) -> Option<&Pending> {
        self.invocations.get(&key.0)?.get(&key.1)
    }

    fn pending_mut(&mut self, key: CalleeKey) -> Option<&mut Pending> {
        self.invocations.get_mut(&key.0)?.get_mut(&key.1)
    }

    /// Removes a call from every index.
    fn finish(&mut self, key: CalleeKey) -> Option<Pending> {
        let by_callee = self.invocations.get_mut(&key.0)?;
        let pending = by_callee.remove(&key.1)?;
        let callee_done = release(by_callee, &pending.callee);
        if callee_done {
            self.invocations.remove(&key.0);
        }
        let caller = pending.caller.id();
        if let Some(by_caller) = self.by_caller.get_mut(&caller) {
            by_caller.remove(&pending.call_request);
            if release(by_caller, &pending.caller) {
                self.by_caller.remove(&caller);
            }
        }
        if let Some(deadline) = pending.deadline {
            self.deadlines.remove(&(deadline, key));
        }
        let load_key = (pending.registration, key.0);
        if pending.limited
            && let Some(n) = self.load.get_mut(&load_key)
        {
            *n -= 1;
            if *n == 0 {
                self.load.remove(&load_key);
            }
        }
        Some(pending)
    }

    fn has_room(&self, registration: RegistrationId, callee: &Peer, limit: Option<u64>) -> bool {
        limit.is_none_or(|limit| {
            self.load.get(&(registration, callee.id())).copied().unwrap_or(0) < limit
        })
    }

    /// Moves a call whose callee said it is unavailable to the next callee with room. On
    /// failure, returns who to tell.
    #[allow(clippy::type_complexity)]
    fn reroute(
        &mut self,
        mut pending: Pending,
    ) -> Result<(Arc<Peer>, RequestId, RegistrationId, Dict, Payload), (Arc<Peer>, RequestId, Uri)>
    {
        let Some(mut reroute) = pending.reroute.take() else {
            return Err((pending.caller, pending.call_request, pending.procedure));
        };
        let position = reroute
            .untried
            .iter()
            .position(|c| self.has_room(pending.registration, c, reroute.concurrency));
        let Some(next) = position.map(|i| reroute.untried.remove(i)) else {
            return Err((pending.caller, pending.call_request, pending.procedure));
        };
        let request = next.next_request_id();
        let (details, payload) = (reroute.details.clone(), reroute.payload.clone());
        pending.callee = Arc::clone(&next);
        pending.reroute = (!reroute.untried.is_empty()).then_some(reroute);
        let registration = pending.registration;
        self.insert((next.id(), request), pending);
        Ok((next, request, registration, details, payload))
    }

    /// Fails the calls a departed callee was serving and abandons those a departed caller made
    /// (interrupting their callees where they support it).
    pub(super) fn remove_session(&mut self, session: SessionId) {
        // In request order, as the callers' errors went out when these were B-trees.
        let mut as_callee: Vec<CalleeKey> = self
            .invocations
            .get(&session)
            .map(|calls| calls.keys().map(|r| (session, *r)).collect())
            .unwrap_or_default();
        as_callee.sort_unstable();
        for key in as_callee {
            if let Some(pending) = self.finish(key)
                && pending.caller.id() != session
            {
                let error = Error::Canceled("the callee left before answering".into());
                pending.caller.send(error_for_call(pending.call_request, &error));
            }
        }
        let mut as_caller: Vec<(RequestId, CalleeKey)> = self
            .by_caller
            .get(&session)
            .map(|calls| calls.iter().map(|(r, k)| (*r, *k)).collect())
            .unwrap_or_default();
        as_caller.sort_unstable();
        for (_, key) in as_caller {
            if let Some(pending) = self.finish(key)
                && can_cancel(&pending.callee)
            {
                pending
                    .callee
                    .send(Interrupt { request: key.1, options: dict! { "mode" => "killnowait" } });
            }
        }
        // Its (now empty) indexes, kept between calls while it was attached.
        self.invocations.remove(&session);
        self.by_caller.remove(&session);
    }
}

/// INVOCATION.Details for a call: the called URI for pattern registrations, progress, the
/// caller when disclosed (by the caller, the callee's REGISTER, or the realm's policy), the
/// timeout, and payload passthru options.
fn invocation_details(
    caller: &Peer,
    procedure: &Uri,
    route: &Route,
    options: &CallOptions,
    realm: &RealmConfig,
    timeout: Option<std::time::Duration>,
) -> Dict {
    let mut details = Dict::new();
    let callee_supports =
        |feature| route.candidates.first().is_some_and(|c| c.info().has_feature("callee", feature));
    if route.policy != MatchPolicy::Exact {
        details.insert("procedure".into(), Value::from(procedure.as_str()));
    }
    if options.receive_progress && callee_supports("progressive_call_results") {
        details.insert("receive_progress".into(), Value::Bool(true));
    }
    if options.progress {
        details.insert("progress".into(), Value::Bool(true));
    }
    if options.disclose_me || route.disclose_caller || realm.disclose_caller {
        // The strings are shared with the session's description, not copied.
        let info = caller.info();
        details.insert("caller".into(), Value::from(info.id.get()));
        details.insert("caller_authid".into(), Value::from(Arc::clone(&info.authid)));
        details.insert("caller_authrole".into(), Value::from(Arc::clone(&info.authrole)));
    }
    if let Some(timeout) = timeout {
        details.insert("timeout".into(), Value::from(timeout.as_millis() as u64));
    }
    details
}

/// Copies payload passthru mode options (`ppt_*`) from a request's options to the details of
/// what the router forwards, so the receiver can interpret the payload it was not shown.
pub(crate) fn copy_passthru_options(options: &Dict, details: &mut Dict) {
    for (k, v) in options.iter().filter(|(k, _)| k.starts_with("ppt_")) {
        details.insert(k.clone(), v.clone());
    }
}

/// Whether a session's index of calls, which just lost one, should go: kept empty between the
/// calls of an attached session (no allocation for the next call), dropped once the session has
/// left (its last answer may arrive after `remove_session`) or when it grew large.
fn release<T>(calls: &HashMap<RequestId, T>, session: &Peer) -> bool {
    /// Above this capacity an emptied index is freed rather than kept.
    const KEEP: usize = 64;
    calls.is_empty() && (calls.capacity() > KEEP || !session.is_attached())
}

fn accepts_progressive_invocations(callee: &Peer) -> bool {
    callee.info().has_feature("callee", "progressive_call_invocations") && can_cancel(callee)
}

fn can_cancel(callee: &Peer) -> bool {
    let info = callee.info();
    info.has_feature("callee", "call_canceling") || info.has_feature("callee", "call_cancelling")
}

/// An answer to an invocation the dealer no longer tracks: fine if the router issued that
/// request id (the call was canceled, timed out or its caller left), a protocol violation
/// otherwise.
fn late_answer(callee: &Peer, request: RequestId, what: &str) -> Result<(), Error> {
    if callee.has_issued(request) {
        Ok(())
    } else {
        Err(Error::ProtocolViolation(format!("{what} for unknown INVOCATION request {request}")))
    }
}

/// ERROR for a CALL request.
pub(crate) fn error_for_call(request: RequestId, error: &Error) -> message::Error {
    message::Error {
        request_type: MessageType::Call,
        request,
        details: Dict::new(),
        error: Uri::from(error.uri()),
        payload: error.payload(),
    }
}
