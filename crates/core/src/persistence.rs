//! Where the admin API writes what it changes. The core only knows this trait; the store crate
//! implements it with an embedded database, and a router without one keeps changes in memory.

use junction_auth::ticket::Claims;

use crate::realm::RealmConfig;

/// Durable storage of realms (with their users, groups and grants) and issued tickets.
pub trait Persistence: Send + Sync {
    /// Stores a realm as it is now; the change must be durable when this returns.
    fn save_realm(&self, realm: &RealmConfig) -> Result<(), String>;
    /// Removes a realm.
    fn delete_realm(&self, name: &str) -> Result<(), String>;
    /// The key that signs issued tickets: made and stored on first use, then always the same.
    fn ticket_key(&self) -> Result<[u8; 32], String>;
    /// Every issued ticket that is not revoked (expired ones may still be there).
    fn tickets(&self) -> Result<Vec<Claims>, String>;
    /// Stores an issued ticket; durable when this returns.
    fn save_ticket(&self, ticket: &Claims) -> Result<(), String>;
    /// Removes tickets (revoked or expired); durable when this returns.
    fn delete_tickets(&self, ids: &[String]) -> Result<(), String>;
}
