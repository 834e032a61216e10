//! The dealer: registrations, and calls routed from callers to callees.
//!
//! Registration lookups take a read lock on the registration table; the table of calls in
//! flight sits behind its own short-lived mutex. The two locks are never held together.

mod calls;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rand::Rng;

use junction_wire::{RegistrationId, SessionId, Uri};

use crate::error::Error;
use crate::ids;
use crate::matcher::{matches, wildcard_specificity};
use crate::options::{InvokePolicy, MatchPolicy, RegisterOptions};
use crate::realm::{Peer, read, write};

use calls::Calls;
pub use calls::CancelMode;

/// The realm's registrations and calls in flight.
#[derive(Default)]
pub struct Dealer {
    table: RwLock<Table>,
    calls: Mutex<Calls>,
}

#[derive(Default)]
struct Table {
    /// Registration per (procedure, policy): the key that makes ids shared.
    by_key: HashMap<(Uri, MatchPolicy), RegistrationId>,
    /// Prefix and wildcard registrations, consulted when no exact one matches.
    patterns: Vec<RegistrationId>,
    registrations: HashMap<RegistrationId, Registration>,
    /// What each session registered, so a leaving session is removed in one step.
    by_session: HashMap<SessionId, HashSet<RegistrationId>>,
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

impl Dealer {
    /// Adds `peer` as a callee of `procedure`. A second callee is accepted only when every
    /// REGISTER of the procedure asked for the same shared invocation policy.
    pub(crate) fn register(
        &self,
        peer: &Arc<Peer>,
        procedure: Uri,
        options: &RegisterOptions,
    ) -> Result<Registered, Error> {
        let mut table = write(&self.table);
        let key = (procedure, options.match_policy);
        let existing_id = table.by_key.get(&key).copied();
        let registered = match existing_id.and_then(|id| table.registrations.get_mut(&id)) {
            Some(existing) => {
                if existing.invoke == InvokePolicy::Single || options.invoke != existing.invoke {
                    return Err(Error::ProcedureAlreadyExists(key.0));
                }
                if existing.callees.iter().any(|c| c.id() == peer.id()) {
                    return Err(Error::ProcedureAlreadyExists(key.0));
                }
                existing.callees.push(Arc::clone(peer));
                Registered {
                    id: existing.id,
                    created: false,
                }
            }
            None => {
                let id = ids::fresh(RegistrationId::new, &table.registrations);
                table.by_key.insert(key.clone(), id);
                if options.match_policy != MatchPolicy::Exact {
                    table.patterns.push(id);
                }
                let registration = Registration {
                    id,
                    procedure: key.0,
                    policy: options.match_policy,
                    invoke: options.invoke,
                    callees: vec![Arc::clone(peer)],
                    next: AtomicUsize::new(0),
                };
                table.registrations.insert(id, registration);
                Registered { id, created: true }
            }
        };
        table
            .by_session
            .entry(peer.id())
            .or_default()
            .insert(registered.id);
        Ok(registered)
    }

    /// Removes `session` as a callee of registration `id`. Returns whether the registration
    /// was deleted because no callee is left.
    pub(crate) fn unregister(&self, session: SessionId, id: RegistrationId) -> Result<bool, Error> {
        let mut table = write(&self.table);
        let held = table
            .by_session
            .get_mut(&session)
            .is_some_and(|ids| ids.remove(&id));
        if !held {
            return Err(Error::NoSuchRegistration(id.get()));
        }
        Ok(table.remove_callee(session, id))
    }

    /// Removes everything a departed session held: its registrations, and its calls in flight
    /// as caller (abandoned) and as callee (failed with `wamp.error.canceled`).
    pub(crate) fn remove_session(&self, session: SessionId) {
        {
            let mut table = write(&self.table);
            for id in table.by_session.remove(&session).unwrap_or_default() {
                table.remove_callee(session, id);
            }
        }
        self.lock_calls().remove_session(session);
    }

    /// The registration that a call to `procedure` reaches, with the callee chosen by the
    /// registration's invocation policy. Precedence (spec): exact, then the longest prefix,
    /// then the wildcard whose fixed components come earliest.
    fn route(&self, procedure: &Uri) -> Option<(RegistrationId, MatchPolicy, Arc<Peer>)> {
        let table = read(&self.table);
        let registration = table
            .by_key
            .get(&(procedure.clone(), MatchPolicy::Exact))
            .and_then(|id| table.registrations.get(id))
            .or_else(|| {
                let candidates = table
                    .patterns
                    .iter()
                    .filter_map(|id| table.registrations.get(id));
                let hits: Vec<&Registration> = candidates
                    .filter(|r| matches(r.policy, r.procedure.as_str(), procedure.as_str()))
                    .collect();
                let prefix = hits
                    .iter()
                    .filter(|r| r.policy == MatchPolicy::Prefix)
                    .max_by_key(|r| r.procedure.as_str().len());
                prefix
                    .or_else(|| {
                        hits.iter()
                            .max_by_key(|r| wildcard_specificity(r.procedure.as_str()))
                    })
                    .copied()
            })?;
        let callee = registration.pick_callee()?;
        Some((registration.id, registration.policy, callee))
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The number of registrations (for tests and metrics).
    pub fn registration_count(&self) -> usize {
        read(&self.table).registrations.len()
    }
}

impl Registration {
    fn pick_callee(&self) -> Option<Arc<Peer>> {
        let n = self.callees.len();
        let index = match self.invoke {
            _ if n == 0 => return None,
            InvokePolicy::Single | InvokePolicy::First => 0,
            InvokePolicy::Last => n - 1,
            InvokePolicy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            InvokePolicy::Random => rand::rng().random_range(0..n),
        };
        self.callees.get(index).cloned()
    }
}

impl Table {
    fn remove_callee(&mut self, session: SessionId, id: RegistrationId) -> bool {
        let Some(registration) = self.registrations.get_mut(&id) else {
            return false;
        };
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
