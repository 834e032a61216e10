//! Where the admin API writes what it changes. The core only knows this trait; the store crate
//! implements it with an embedded database, and a router without one keeps changes in memory.

use crate::realm::RealmConfig;

/// Durable storage of realms (with their users, groups and grants).
pub trait Persistence: Send + Sync {
    /// Stores a realm as it is now; the change must be durable when this returns.
    fn save_realm(&self, realm: &RealmConfig) -> Result<(), String>;
    /// Removes a realm.
    fn delete_realm(&self, name: &str) -> Result<(), String>;
}
