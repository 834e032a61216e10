//! The dealer: registrations, and calls routed from callers to callees.
//!
//! Registration lookups take a read lock on the registration table; the table of calls in
//! flight sits behind its own short-lived mutex. The two locks are never held together.
//!
//! - [`mod@self`]: registrations, matching, callee selection, revocation.
//! - `calls`: calls in flight — progressive results and invocations, cancel, timeouts,
//!   rerouting, concurrency limits, clean-up when a session leaves.

mod calls;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rand::seq::SliceRandom;
use smallvec::SmallVec;

use junction_wire::message::Unregistered;
use junction_wire::{RegistrationId, RequestId, SessionId, Uri, dict};

use calls::Calls;
pub use calls::CancelMode;

use crate::error::{Error, remote_session};
use crate::ids;
use crate::limits::{self, Limits};
use crate::matcher::{matches, wildcard_specificity};
use crate::options::{InvokePolicy, MatchPolicy, RegisterOptions};
use crate::realm::{Peer, read, write};
use crate::time::TimerWaker;

/// The realm's registrations and calls in flight.
pub struct Dealer {
    /// The realm's name, part of every registration id.
    realm: String,
    table: RwLock<Table>,
    limits: Arc<Limits>,
    calls: Mutex<Calls>,
    /// Told when a call deadline sooner than the known ones appears.
    timers: Arc<TimerWaker>,
}

/// Hashed with foldhash, not SipHash: the maps are read on every call, and the keys are
/// the router's own ids and URIs that passed its checks (foldhash is seeded at random too).
#[derive(Default)]
struct Table {
    /// Registration per (procedure, policy): the key that makes ids shared.
    by_key: foldhash::HashMap<(Uri, MatchPolicy), RegistrationId>,
    /// Prefix and wildcard registrations, consulted when no exact one matches.
    patterns: Vec<RegistrationId>,
    registrations: foldhash::HashMap<RegistrationId, Registration>,
    /// What each session registered, so a leaving session is removed in one step.
    by_session: foldhash::HashMap<SessionId, foldhash::HashSet<RegistrationId>>,
}

/// A registration and its callees.
#[derive(Debug)]
pub struct Registration {
    /// The shared id.
    pub id: RegistrationId,
    /// The procedure or pattern.
    pub procedure: Uri,
    /// How the procedure is matched.
    pub policy: MatchPolicy,
    /// How a callee is picked.
    pub invoke: InvokePolicy,
    /// When the first callee created it.
    pub created: SystemTime,
    /// The first callee asked to know who calls.
    pub disclose_caller: bool,
    /// Invocations in flight each callee accepts at most.
    pub concurrency: Option<u64>,
    /// Callees in the order they registered.
    callees: Vec<Arc<Peer>>,
    /// Round-robin cursor.
    next: AtomicUsize,
}

/// The outcome of a REGISTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// The (possibly shared) registration id.
    pub id: RegistrationId,
    /// Whether this REGISTER created the registration.
    pub created: bool,
}

/// Where a call goes: the registration, and its callees in the order the invocation policy
/// prefers them (the first one that is not at its concurrency limit gets the call; the others
/// are kept for rerouting).
pub(crate) struct Route {
    pub(crate) registration: RegistrationId,
    pub(crate) policy: MatchPolicy,
    pub(crate) disclose_caller: bool,
    pub(crate) concurrency: Option<u64>,
    pub(crate) candidates: Candidates,
}

/// The callees a call may go to, in preference order: on the stack for the usual one or two
/// (a `Vec` cost an allocation per call).
pub(crate) type Candidates = SmallVec<[Arc<Peer>; 2]>;

impl Dealer {
    pub(crate) fn new(realm: &Uri, timers: Arc<TimerWaker>, limits: Arc<Limits>) -> Self {
        let realm = realm.to_string();
        Self { realm, table: RwLock::default(), limits, calls: Mutex::default(), timers }
    }

    /// Adds `peer` as a callee of `procedure`. A second callee is accepted only when every
    /// REGISTER of the procedure asked for the same shared invocation policy. Returns `Ok(None)`
    /// if the session is being detached.
    pub(crate) fn register(
        &self,
        peer: &Arc<Peer>,
        procedure: Uri,
        options: &RegisterOptions,
        now: SystemTime,
    ) -> Result<Option<Registered>, Error> {
        let mut table = write(&self.table);
        // Checked under the lock `remove_session` takes after clearing the flag (see Broker).
        if !peer.is_attached() {
            return Ok(None);
        }
        let held = table.by_session.get(&peer.id()).map_or(0, |ids| ids.len());
        limits::check(self.limits.max_registrations, held, "registrations per session")?;
        let key = (procedure, options.match_policy);
        let existing_id = table.by_key.get(&key).copied();
        let registered = match existing_id.and_then(|id| table.registrations.get_mut(&id)) {
            Some(existing) => {
                if existing.invoke == InvokePolicy::Single
                    || options.invoke != existing.invoke
                    || existing.callees.iter().any(|c| c.id() == peer.id())
                {
                    return Err(already_registered(existing, options.invoke, peer.id()));
                }
                existing.callees.push(Arc::clone(peer));
                Registered { id: existing.id, created: false }
            }
            None => {
                let (procedure, policy) = (key.0.as_str(), key.1.name());
                let id = ids::keyed(
                    RegistrationId::new,
                    &[&self.realm, "registration", policy, procedure],
                    &table.registrations,
                );
                table.by_key.insert(key.clone(), id);
                if options.match_policy != MatchPolicy::Exact {
                    table.patterns.push(id);
                }
                let registration = Registration {
                    id,
                    procedure: key.0,
                    policy: options.match_policy,
                    invoke: options.invoke,
                    created: now,
                    disclose_caller: options.disclose_caller,
                    concurrency: options.concurrency,
                    callees: vec![Arc::clone(peer)],
                    next: AtomicUsize::new(0),
                };
                table.registrations.insert(id, registration);
                Registered { id, created: true }
            }
        };
        table.by_session.entry(peer.id()).or_default().insert(registered.id);
        Ok(Some(registered))
    }

    /// Removes `session` as a callee of registration `id`. Returns whether the registration
    /// was deleted because no callee is left.
    pub(crate) fn unregister(&self, session: SessionId, id: RegistrationId) -> Result<bool, Error> {
        let mut table = write(&self.table);
        let held = table.by_session.get_mut(&session).is_some_and(|ids| ids.remove(&id));
        if !held {
            return Err(Error::NoSuchRegistration(id.get()));
        }
        Ok(table.remove_callee(session, id))
    }

    /// The router withdraws `session` from registration `id` (registration revocation): the
    /// callee is told with UNREGISTERED(0) if it announced `registration_revocation`. Returns
    /// whether the registration was deleted.
    pub(crate) fn revoke(
        &self,
        id: RegistrationId,
        session: SessionId,
        reason: &str,
    ) -> Result<bool, Error> {
        let mut table = write(&self.table);
        let callee = table
            .registrations
            .get(&id)
            .and_then(|r| r.callees.iter().find(|c| c.id() == session).cloned())
            .ok_or(Error::NoSuchRegistration(id.get()))?;
        if callee.is_remote() {
            return Err(remote_session(session));
        }
        if let Some(ids) = table.by_session.get_mut(&session) {
            ids.remove(&id);
        }
        let deleted = table.remove_callee(session, id);
        drop(table);
        if callee.info().has_feature("callee", "registration_revocation") {
            let details = dict! { "registration" => id.get(), "reason" => reason };
            callee.send(Unregistered { request: RequestId::MIN, details: Some(details) });
        }
        Ok(deleted)
    }

    /// What `session` holds.
    pub(crate) fn held_by(&self, session: SessionId) -> Vec<RegistrationId> {
        read(&self.table)
            .by_session
            .get(&session)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Removes everything a departed session held: its registrations, and its calls in flight
    /// as caller (abandoned) and as callee (failed with `wamp.error.canceled`). Returns each
    /// registration left and whether it was deleted, for the meta events.
    pub(crate) fn remove_session(&self, session: SessionId) -> Vec<(RegistrationId, bool)> {
        let removed = {
            let mut table = write(&self.table);
            let held = table.by_session.remove(&session).unwrap_or_default();
            held.into_iter().map(|id| (id, table.remove_callee(session, id))).collect()
        };
        self.lock_calls().remove_session(session);
        removed
    }

    /// Where a call to `procedure` goes, with the callees in preference order.
    /// `partition_key` pins the call to one callee (sharded registration).
    fn route(&self, procedure: &Uri, partition_key: Option<&str>) -> Option<Route> {
        let table = read(&self.table);
        let registration = table.best_match(procedure)?;
        Some(Route {
            registration: registration.id,
            policy: registration.policy,
            disclose_caller: registration.disclose_caller,
            concurrency: registration.concurrency,
            candidates: registration.candidates(partition_key),
        })
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many sessions the table of calls in flight still indexes, as callee or caller (for
    /// tests: it must not keep sessions that left).
    #[cfg(test)]
    pub(crate) fn sessions_with_calls(&self) -> usize {
        self.lock_calls().sessions()
    }

    /// The number of registrations (for tests and metrics).
    pub fn registration_count(&self) -> usize {
        read(&self.table).registrations.len()
    }

    /// Registration ids by match policy (`wamp.registration.list`).
    pub(crate) fn list(&self) -> HashMap<MatchPolicy, Vec<u64>> {
        let table = read(&self.table);
        let mut lists: HashMap<MatchPolicy, Vec<u64>> = HashMap::new();
        for r in table.registrations.values() {
            lists.entry(r.policy).or_default().push(r.id.get());
        }
        lists
    }

    /// Every registration with its procedure, policy and callees (to re-check grants).
    pub(crate) fn holders(&self) -> Vec<(RegistrationId, Uri, MatchPolicy, Vec<Arc<Peer>>)> {
        let table = read(&self.table);
        table
            .registrations
            .values()
            .map(|r| (r.id, r.procedure.clone(), r.policy, r.callees.clone()))
            .collect()
    }

    /// The registration for exactly this procedure and policy (`wamp.registration.lookup`).
    pub(crate) fn lookup(&self, procedure: &Uri, policy: MatchPolicy) -> Option<RegistrationId> {
        read(&self.table).by_key.get(&(procedure.clone(), policy)).copied()
    }

    /// The registration a call to `procedure` would reach (`wamp.registration.match`).
    pub(crate) fn best_match(&self, procedure: &Uri) -> Option<RegistrationId> {
        read(&self.table).best_match(procedure).map(|r| r.id)
    }

    /// Calls `f` with registration `id`, if it exists.
    pub(crate) fn with<T>(
        &self,
        id: RegistrationId,
        f: impl FnOnce(&Registration) -> T,
    ) -> Option<T> {
        read(&self.table).registrations.get(&id).map(f)
    }
}

/// The refusal of a REGISTER for a procedure someone already holds, saying why.
fn already_registered(existing: &Registration, asked: InvokePolicy, session: SessionId) -> Error {
    let uri = &existing.procedure;
    let why = if existing.callees.iter().any(|c| c.id() == session) {
        "this session already registered it".to_owned()
    } else if existing.invoke == InvokePolicy::Single {
        "it is registered with invoke policy \"single\"".to_owned()
    } else {
        format!(
            "it is registered with invoke policy \"{}\", not \"{}\"",
            existing.invoke.name(),
            asked.name()
        )
    };
    Error::ProcedureAlreadyExists(format!("procedure \"{uri}\" is already registered: {why}"))
}

impl Registration {
    /// The callees' session ids, in registration order.
    pub fn callees(&self) -> Vec<SessionId> {
        self.callees.iter().map(|c| c.id()).collect()
    }

    /// The callees in the order the invocation policy prefers them.
    fn candidates(&self, partition_key: Option<&str>) -> Candidates {
        let n = self.callees.len();
        if n == 0 {
            return Candidates::new();
        }
        if let Some(key) = partition_key {
            // The same key reaches the same callee as long as the callee set is unchanged.
            let mut hasher = DefaultHasher::new();
            key.hash(&mut hasher);
            let index = (hasher.finish() % n as u64) as usize;
            return self.callees[index..=index].iter().cloned().collect();
        }
        let take = if self.invoke == InvokePolicy::Single { 1 } else { n };
        let mut candidates: Candidates = self.callees[..take].iter().cloned().collect();
        match self.invoke {
            InvokePolicy::Single | InvokePolicy::First => {}
            InvokePolicy::Last => candidates.reverse(),
            InvokePolicy::RoundRobin => {
                candidates.rotate_left(self.next.fetch_add(1, Ordering::Relaxed) % n)
            }
            InvokePolicy::Random => candidates.shuffle(&mut rand::rng()),
        }
        candidates
    }
}

impl Table {
    /// The registration that a call to `procedure` reaches. Precedence (spec): exact, then the
    /// longest prefix, then the wildcard whose fixed components come earliest.
    fn best_match(&self, procedure: &Uri) -> Option<&Registration> {
        if let Some(exact) = self.by_key.get(&(procedure.clone(), MatchPolicy::Exact)) {
            return self.registrations.get(exact);
        }
        let hits: Vec<&Registration> = self
            .patterns
            .iter()
            .filter_map(|id| self.registrations.get(id))
            .filter(|r| matches(r.policy, r.procedure.as_str(), procedure.as_str()))
            .collect();
        let prefix = hits
            .iter()
            .filter(|r| r.policy == MatchPolicy::Prefix)
            .max_by_key(|r| r.procedure.as_str().len());
        prefix
            .or_else(|| hits.iter().max_by_key(|r| wildcard_specificity(r.procedure.as_str())))
            .copied()
    }

    fn remove_callee(&mut self, session: SessionId, id: RegistrationId) -> bool {
        let Some(registration) = self.registrations.get_mut(&id) else { return false };
        registration.callees.retain(|c| c.id() != session);
        if !registration.callees.is_empty() {
            return false;
        }
        if let Some(gone) = self.registrations.remove(&id) {
            self.by_key.remove(&(gone.procedure, gone.policy));
            self.patterns.retain(|p| *p != id);
        }
        true
    }
}
