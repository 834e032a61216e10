//! Junction's durable configuration: realms with their users, groups and grants, kept in an
//! embedded, crash-safe redb database in the data directory. Every change is one write
//! transaction committed with fsync before the admin call that made it is answered, so nothing
//! acknowledged is lost on `kill -9`.
//!
//! Layout:
//! - [`Store`]: open, read and write the database (`junction.redb`), versioned.
//! - `records`: the stored form of a realm (serde, JSON), and its conversion from and to the
//!   core's [`RealmConfig`](junction_core::RealmConfig).
//!
//! - Issued tickets (`tickets`, id → claims JSON) and the key that signs them (`keys`):
//!   tables added within format version 1; a revoked ticket is deleted, so revocation is as
//!   durable as issuing.
//! - Format version 2: realm records may carry `allow_connections`, `is_prototype`,
//!   `prototype_uri` and `inherited`; version 1 stores are read and upgraded in place.
//!
//! Sessions, registrations and subscriptions are not stored: they end with their connections.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod records;

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use junction_auth::ticket::Claims;
use junction_core::{Persistence, RealmConfig};

/// The on-disk format this build writes. Version 2 added prototype realms and
/// `allow_connections` to the realm records (members older records lack and read with their
/// defaults); a version 1 store is marked version 2 when opened, so that an older build, which
/// would drop those members and with them what a realm inherits, refuses it.
pub const FORMAT_VERSION: u64 = 2;

/// The oldest format this build reads (and upgrades).
const OLDEST_READABLE: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REALMS: TableDefinition<&str, &[u8]> = TableDefinition::new("realms");
const TICKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("tickets");
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or written.
    #[error("{path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        source: Box<redb::Error>,
    },
    /// The file was written by a newer Junction.
    #[error("{path}: format version {found}; this build reads version {FORMAT_VERSION}")]
    Version {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
    /// A stored realm does not decode.
    #[error("stored realm {realm}: {reason}")]
    Corrupt {
        /// The realm's key.
        realm: String,
        /// What is wrong.
        reason: String,
    },
}

/// The durable configuration store.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) `junction.redb` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("junction.redb");
        let db = Database::create(&path).map_err(|e| database(&path, e))?;
        let store = Self { db, path };
        store.check_version()?;
        Ok(store)
    }

    fn check_version(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| database(&self.path, e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| database(&self.path, e))?;
            let found =
                meta.get("format_version").map_err(|e| database(&self.path, e))?.map(|v| v.value());
            match found {
                Some(v) if v == FORMAT_VERSION => {}
                None | Some(OLDEST_READABLE..FORMAT_VERSION) => {
                    meta.insert("format_version", FORMAT_VERSION)
                        .map_err(|e| database(&self.path, e))?;
                }
                Some(found) => return Err(StoreError::Version { path: self.path.clone(), found }),
            }
            tx.open_table(REALMS).map_err(|e| database(&self.path, e))?;
            tx.open_table(TICKETS).map_err(|e| database(&self.path, e))?;
            tx.open_table(KEYS).map_err(|e| database(&self.path, e))?;
        }
        tx.commit().map_err(|e| database(&self.path, e))
    }

    /// Every stored realm.
    pub fn realms(&self) -> Result<Vec<RealmConfig>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| database(&self.path, e))?;
        let table = tx.open_table(REALMS).map_err(|e| database(&self.path, e))?;
        let mut realms = Vec::new();
        for row in table.iter().map_err(|e| database(&self.path, e))? {
            let (key, value) = row.map_err(|e| database(&self.path, e))?;
            let realm = decode_realm(value.value())
                .map_err(|reason| StoreError::Corrupt { realm: key.value().to_owned(), reason })?;
            realms.push(realm);
        }
        Ok(realms)
    }

    /// Stores (creates or replaces) a realm; durable when this returns.
    pub fn save_realm(&self, realm: &RealmConfig) -> Result<(), StoreError> {
        let bytes = encode_realm(realm)
            .map_err(|reason| StoreError::Corrupt { realm: realm.name.to_string(), reason })?;
        let tx = self.db.begin_write().map_err(|e| database(&self.path, e))?;
        {
            let mut table = tx.open_table(REALMS).map_err(|e| database(&self.path, e))?;
            table
                .insert(realm.name.as_str(), bytes.as_slice())
                .map_err(|e| database(&self.path, e))?;
        }
        tx.commit().map_err(|e| database(&self.path, e))
    }

    /// Removes a realm; returns whether it was stored.
    pub fn delete_realm(&self, name: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(|e| database(&self.path, e))?;
        let existed = {
            let mut table = tx.open_table(REALMS).map_err(|e| database(&self.path, e))?;
            table.remove(name).map_err(|e| database(&self.path, e))?.is_some()
        };
        tx.commit().map_err(|e| database(&self.path, e))?;
        Ok(existed)
    }

    /// The key that signs issued tickets, made (and stored) on first use.
    pub fn ticket_key(&self) -> Result<[u8; 32], StoreError> {
        let tx = self.db.begin_write().map_err(|e| database(&self.path, e))?;
        let key = {
            let mut table = tx.open_table(KEYS).map_err(|e| database(&self.path, e))?;
            let stored = table
                .get("ticket_key")
                .map_err(|e| database(&self.path, e))?
                .and_then(|v| <[u8; 32]>::try_from(v.value()).ok());
            match stored {
                Some(key) => key,
                None => {
                    let key: [u8; 32] = rand::random();
                    table
                        .insert("ticket_key", key.as_slice())
                        .map_err(|e| database(&self.path, e))?;
                    key
                }
            }
        };
        tx.commit().map_err(|e| database(&self.path, e))?;
        Ok(key)
    }

    /// Every stored (not revoked) ticket.
    pub fn tickets(&self) -> Result<Vec<Claims>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| database(&self.path, e))?;
        let table = tx.open_table(TICKETS).map_err(|e| database(&self.path, e))?;
        let mut tickets = Vec::new();
        for row in table.iter().map_err(|e| database(&self.path, e))? {
            let (key, value) = row.map_err(|e| database(&self.path, e))?;
            let claims =
                serde_json::from_slice(value.value()).ok().and_then(|v| Claims::from_json(&v));
            tickets.push(claims.ok_or_else(|| StoreError::Corrupt {
                realm: format!("(ticket {})", key.value()),
                reason: "the claims do not decode".into(),
            })?);
        }
        Ok(tickets)
    }

    /// Stores an issued ticket; durable when this returns.
    pub fn save_ticket(&self, claims: &Claims) -> Result<(), StoreError> {
        let bytes = claims.to_json().to_string();
        let tx = self.db.begin_write().map_err(|e| database(&self.path, e))?;
        {
            let mut table = tx.open_table(TICKETS).map_err(|e| database(&self.path, e))?;
            table
                .insert(claims.id.as_str(), bytes.as_bytes())
                .map_err(|e| database(&self.path, e))?;
        }
        tx.commit().map_err(|e| database(&self.path, e))
    }

    /// Removes tickets (revoked or expired) in one transaction; durable when this returns.
    pub fn delete_tickets(&self, ids: &[String]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| database(&self.path, e))?;
        {
            let mut table = tx.open_table(TICKETS).map_err(|e| database(&self.path, e))?;
            for id in ids {
                table.remove(id.as_str()).map_err(|e| database(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| database(&self.path, e))
    }
}

/// A realm in its stored form (JSON), as kept here and replicated between cluster nodes.
pub fn encode_realm(realm: &RealmConfig) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&records::RealmRecord::from_config(realm)).map_err(|e| e.to_string())
}

/// A realm read back from [`encode_realm`]'s form.
pub fn decode_realm(bytes: &[u8]) -> Result<RealmConfig, String> {
    let record: records::RealmRecord = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    record.into_config()
}

impl Persistence for Store {
    fn save_realm(&self, realm: &RealmConfig) -> Result<(), String> {
        Store::save_realm(self, realm).map_err(|e| e.to_string())
    }

    fn delete_realm(&self, name: &str) -> Result<(), String> {
        Store::delete_realm(self, name).map(drop).map_err(|e| e.to_string())
    }

    fn ticket_key(&self) -> Result<[u8; 32], String> {
        Store::ticket_key(self).map_err(|e| e.to_string())
    }

    fn tickets(&self) -> Result<Vec<Claims>, String> {
        Store::tickets(self).map_err(|e| e.to_string())
    }

    fn save_ticket(&self, ticket: &Claims) -> Result<(), String> {
        Store::save_ticket(self, ticket).map_err(|e| e.to_string())
    }

    fn delete_tickets(&self, ids: &[String]) -> Result<(), String> {
        Store::delete_tickets(self, ids).map_err(|e| e.to_string())
    }
}

fn database(path: &Path, error: impl Into<redb::Error>) -> StoreError {
    StoreError::Database { path: path.to_owned(), source: Box::new(error.into()) }
}

#[cfg(test)]
mod tests {
    use junction_auth::password::StoredPassword;
    use junction_core::options::MatchPolicy;
    use junction_core::security::{Grant, Group, Permission, Security, User};

    use super::*;

    fn realm() -> RealmConfig {
        let user = User {
            password: Some(StoredPassword::new("secret")),
            authorized_keys: vec![[1; 32]],
            groups: vec!["ops".into()],
            aliases: vec!["joseph".into()],
            meta: junction_wire::dict! { "team" => "ops", "level" => 3u64 },
            ..User::named("joe")
        };
        let security = Security {
            enabled: true,
            authmethods: vec!["ticket".into()],
            users: [("joe".to_string(), user)].into(),
            groups: [("ops".to_string(), Group { name: "ops".into(), groups: vec![] })].into(),
            grants: vec![Grant {
                permissions: vec![Permission::Call],
                uri: "com.".into(),
                policy: MatchPolicy::Prefix,
                roles: vec!["ops".into()],
            }],
            sources: vec![],
        };
        RealmConfig { description: "test".into(), security, ..RealmConfig::open("com.example") }
    }

    #[test]
    fn a_saved_realm_reads_back_the_same_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path()).unwrap().save_realm(&realm()).unwrap();
        let reopened = Store::open(dir.path()).unwrap();
        let realms = reopened.realms().unwrap();
        assert_eq!(realms.len(), 1);
        let back = &realms[0];
        assert_eq!(back.description, "test");
        let joe = &back.security.users["joe"];
        assert!(joe.password.as_ref().unwrap().matches("secret"));
        assert_eq!(joe.authorized_keys, vec![[1; 32]]);
        let stored = &realm().security.users["joe"];
        assert_eq!((&joe.aliases, &joe.meta), (&stored.aliases, &stored.meta));
        assert_eq!(joe.meta.get("level"), Some(&junction_wire::Value::Int(3)));
        assert_eq!(back.security.grants[0].permissions, vec![Permission::Call]);
        assert!(reopened.delete_realm("com.example").unwrap());
        assert!(reopened.realms().unwrap().is_empty());
    }

    #[test]
    fn a_scram_credential_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let saved = realm();
        Store::open(dir.path()).unwrap().save_realm(&saved).unwrap();
        let realms = Store::open(dir.path()).unwrap().realms().unwrap();
        assert_eq!(
            realms[0].security.users["joe"].password.as_ref().unwrap().scram,
            saved.security.users["joe"].password.as_ref().unwrap().scram
        );
    }

    #[test]
    fn an_unsalted_wampcra_key_reads_back_exactly_and_is_absent_unless_opted_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut saved = realm();
        let mut una = saved.security.users["joe"].clone();
        una.authid = "una".into();
        una.password = Some(StoredPassword::new_with("una-secret", true));
        saved.security.users.insert("una".into(), una);
        Store::open(dir.path()).unwrap().save_realm(&saved).unwrap();
        let realms = Store::open(dir.path()).unwrap().realms().unwrap();
        let password = |authid: &str| realms[0].security.users[authid].password.clone().unwrap();
        let key = password("una").unsalted_cra.expect("kept");
        assert_eq!(key.mac(b"x"), junction_auth::cra::UnsaltedKey::derive(b"una-secret").mac(b"x"));
        assert!(password("joe").unsalted_cra.is_none());
    }

    #[test]
    fn a_disabled_user_stays_disabled_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut saved = realm();
        saved.security.users.get_mut("joe").unwrap().enabled = false;
        Store::open(dir.path()).unwrap().save_realm(&saved).unwrap();
        let realms = Store::open(dir.path()).unwrap().realms().unwrap();
        assert!(!realms[0].security.users["joe"].enabled);
    }

    #[test]
    fn a_user_record_written_before_scram_still_reads_without_a_scram_credential() {
        // The shape FORMAT_VERSION 1 stores wrote before `scram`: no "scram" member.
        let json = r#"{"name":"old","allow_anonymous":false,"strict_uris":false,
            "disclose_caller":false,"disclose_publisher":false,"default_call_timeout_ms":0,
            "max_call_timeout_ms":0,"security_enabled":true,"authmethods":["ticket"],
            "users":[{"authid":"joe","password":{"salt":"salt","iterations":1000,
            "key":"a8df899f3c4f204d967e0ad63c092987c10055ebb017b3d9d28add218d4f7aad"}}]}"#;
        let record: records::RealmRecord = serde_json::from_str(json).unwrap();
        let realm = record.into_config().unwrap();
        let password = realm.security.users["joe"].password.clone().unwrap();
        assert!(password.scram.is_none());
        assert!(password.unsalted_cra.is_none());
        assert!(password.matches("secret"));
        assert!(realm.security.users["joe"].enabled, "users stored before `enabled` are enabled");
    }

    #[test]
    fn prototype_links_and_allow_connections_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let child = RealmConfig {
            allow_connections: false,
            prototype_uri: Some("com.proto".into()),
            inherits: junction_core::realm::Inherits {
                security_enabled: true,
                authmethods: false,
                allow_connections: true,
            },
            ..realm()
        };
        let proto = RealmConfig { is_prototype: true, ..RealmConfig::open("com.proto") };
        {
            let store = Store::open(dir.path()).unwrap();
            store.save_realm(&child).unwrap();
            store.save_realm(&proto).unwrap();
        }
        let mut realms = Store::open(dir.path()).unwrap().realms().unwrap();
        realms.sort_by(|a, b| a.name.cmp(&b.name));
        let (child_back, proto_back) = (&realms[0], &realms[1]);
        assert_eq!(child_back.prototype_uri, child.prototype_uri);
        assert_eq!(child_back.inherits, child.inherits);
        assert!(!child_back.allow_connections && !child_back.is_prototype);
        assert!(proto_back.is_prototype && proto_back.prototype_uri.is_none());
        assert_eq!(proto_back.inherits, junction_core::realm::Inherits::default());
    }

    #[test]
    fn a_version_1_store_is_read_and_upgraded_with_realms_admitting_sessions() {
        let dir = tempfile::tempdir().unwrap();
        // A store as format version 1 wrote it: its version, and a realm record without the
        // prototype members.
        let json = br#"{"name":"old","allow_anonymous":false,"strict_uris":false,
            "disclose_caller":false,"disclose_publisher":false,"default_call_timeout_ms":0,
            "max_call_timeout_ms":0,"security_enabled":true,"authmethods":["ticket"]}"#;
        {
            let store = Store::open(dir.path()).unwrap();
            let tx = store.db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("format_version", 1).unwrap();
            tx.open_table(REALMS).unwrap().insert("old", json.as_slice()).unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let realms = store.realms().unwrap();
        assert_eq!(realms.len(), 1);
        assert!(realms[0].allow_connections && !realms[0].is_prototype);
        assert!(realms[0].prototype_uri.is_none());
        let tx = store.db.begin_read().unwrap();
        let version = tx.open_table(META).unwrap().get("format_version").unwrap().unwrap().value();
        assert_eq!(version, FORMAT_VERSION);
    }

    #[test]
    fn passwords_are_not_stored_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path()).unwrap().save_realm(&realm()).unwrap();
        let bytes = std::fs::read(dir.path().join("junction.redb")).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn tickets_and_their_key_survive_reopening_and_revocation_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let claims = |id: &str| Claims {
            id: id.into(),
            authid: "joe".into(),
            realm: "com.example".into(),
            issued_by: "joe".into(),
            issued_at: 1,
            expires_at: 2,
            client_id: Some("webapp".into()),
            client_instance_id: None,
        };
        let key = {
            let store = Store::open(dir.path()).unwrap();
            store.save_ticket(&claims("a")).unwrap();
            store.save_ticket(&claims("b")).unwrap();
            store.ticket_key().unwrap()
        };
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.ticket_key().unwrap(), key);
            let mut ids: Vec<String> = store.tickets().unwrap().into_iter().map(|c| c.id).collect();
            ids.sort();
            assert_eq!(ids, ["a", "b"]);
            assert_eq!(store.tickets().unwrap()[0], claims(&ids[0]));
            store.delete_tickets(&["a".into()]).unwrap();
        }
        let back = Store::open(dir.path()).unwrap().tickets().unwrap();
        assert_eq!(back, vec![claims("b")]);
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let tx = store.db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("format_version", FORMAT_VERSION + 1).unwrap();
            tx.commit().unwrap();
        }
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Version { .. })));
    }
}
