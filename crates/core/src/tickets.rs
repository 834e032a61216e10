//! Router-issued tickets (`bondy.ticket.*`): signed claims kept in memory and, with a
//! persistence layer, in the store, so they survive restarts. A ticket is valid while it is
//! signed by the router's key, unexpired and still held here: revoking removes it durably.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use junction_auth::ticket::Claims;

use crate::persistence::Persistence;

/// Expiry of a ticket when `bondy.ticket.issue` names none (Bondy's default: 30 days).
pub(crate) const DEFAULT_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest expiry the router grants; longer requests are capped to it.
pub(crate) const MAX_EXPIRY: Duration = DEFAULT_EXPIRY;

/// The signing key and the tickets not revoked.
pub(crate) struct Tickets {
    state: Mutex<State>,
}

struct State {
    key: [u8; 32],
    issued: HashMap<String, Claims>,
}

/// Unix seconds.
pub(crate) fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Tickets {
    /// An in-memory set with a fresh key (tickets die with the router until [`Self::load`]).
    pub(crate) fn new() -> Self {
        Self { state: Mutex::new(State { key: rand::random(), issued: HashMap::new() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the stored key and tickets.
    pub(crate) fn load(&self, store: &dyn Persistence) -> Result<(), String> {
        let key = store.ticket_key()?;
        let issued = store.tickets()?.into_iter().map(|c| (c.id.clone(), c)).collect();
        *self.lock() = State { key, issued };
        Ok(())
    }

    /// Signs `claims` and keeps them (durably first); prunes expired tickets on the way.
    pub(crate) fn issue(
        &self,
        store: Option<&dyn Persistence>,
        claims: Claims,
        now: u64,
    ) -> Result<String, String> {
        let mut state = self.lock();
        let expired: Vec<String> =
            state.issued.values().filter(|c| c.expires_at <= now).map(|c| c.id.clone()).collect();
        if let Some(store) = store {
            if !expired.is_empty() {
                store.delete_tickets(&expired)?;
            }
            store.save_ticket(&claims)?;
        }
        expired.iter().for_each(|id| drop(state.issued.remove(id)));
        let ticket = claims.sign(&state.key);
        state.issued.insert(claims.id.clone(), claims);
        Ok(ticket)
    }

    /// The claims of `ticket` if the router signed it, still holds it (not revoked), it has
    /// not expired and it is for `realm`.
    pub(crate) fn validate(&self, ticket: &str, realm: &str, now: u64) -> Option<Claims> {
        let state = self.lock();
        let claims = Claims::open(&state.key, ticket).ok()?;
        let held = state.issued.get(&claims.id)?;
        (*held == claims && claims.realm == realm && now < claims.expires_at).then_some(claims)
    }

    /// The ticket `id` of `realm`, if held.
    pub(crate) fn get(&self, realm: &str, id: &str) -> Option<Claims> {
        self.lock().issued.get(id).filter(|c| c.realm == realm).cloned()
    }

    /// Revokes (durably first) every ticket `which` selects; returns how many.
    pub(crate) fn revoke(
        &self,
        store: Option<&dyn Persistence>,
        which: impl Fn(&Claims) -> bool,
    ) -> Result<usize, String> {
        let mut state = self.lock();
        let ids: Vec<String> =
            state.issued.values().filter(|c| which(c)).map(|c| c.id.clone()).collect();
        if let (Some(store), false) = (store, ids.is_empty()) {
            store.delete_tickets(&ids)?;
        }
        ids.iter().for_each(|id| drop(state.issued.remove(id)));
        Ok(ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(id: &str, expires_at: u64) -> Claims {
        Claims {
            id: id.into(),
            authid: "joe".into(),
            realm: "r".into(),
            issued_by: "joe".into(),
            issued_at: 0,
            expires_at,
            client_id: None,
            client_instance_id: None,
        }
    }

    #[test]
    fn a_ticket_is_valid_until_it_expires_or_is_revoked() {
        let tickets = Tickets::new();
        let ticket = tickets.issue(None, claims("a", 100), 0).unwrap();
        assert!(tickets.validate(&ticket, "r", 99).is_some());
        assert!(tickets.validate(&ticket, "r", 100).is_none(), "expired");
        assert!(tickets.validate(&ticket, "other", 50).is_none(), "another realm");
        assert_eq!(tickets.revoke(None, |c| c.id == "a").unwrap(), 1);
        assert!(tickets.validate(&ticket, "r", 50).is_none(), "revoked");
    }

    #[test]
    fn a_ticket_signed_by_another_router_is_refused() {
        let other = Tickets::new().issue(None, claims("a", 100), 0).unwrap();
        let tickets = Tickets::new();
        tickets.issue(None, claims("a", 100), 0).unwrap();
        assert!(tickets.validate(&other, "r", 50).is_none());
    }

    #[test]
    fn issuing_prunes_expired_tickets() {
        let tickets = Tickets::new();
        tickets.issue(None, claims("old", 10), 0).unwrap();
        tickets.issue(None, claims("new", 100), 50).unwrap();
        assert!(tickets.get("r", "old").is_none());
        assert!(tickets.get("r", "new").is_some());
    }
}
