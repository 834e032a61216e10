//! Realm settings (users, groups, grants, sources…) replicated between nodes. A change made
//! through the admin API is written to the node's own store, as on a single node, and put in
//! the configuration bucket; every other node watches the bucket and applies it to its live
//! realm at once (and to its own store, so it survives a restart without NATS). A change whose
//! put failed (NATS unreachable) is sent again, in the realm's latest state, once this node's
//! heartbeat goes through.

use std::sync::Arc;
use std::time::SystemTime;

use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use junction_auth::ticket::Claims;
use junction_core::{Persistence, RealmConfig};
use junction_wire::Uri;

use crate::ClusterError;
use crate::follow::{Staleness, follow};
use crate::node::{Node, Write};

/// The configuration bucket.
pub(crate) const BUCKET: &str = "junction_config";

/// One realm's settings, and the node that changed them last.
#[derive(Serialize, Deserialize)]
struct ConfigRecord {
    node: String,
    realm: serde_json::Value,
}

/// `realm.<hex of the name>`: realm URIs may hold characters KV keys may not.
fn key(realm: &str) -> String {
    let hex: String = realm.bytes().map(|b| format!("{b:02x}")).collect();
    format!("realm.{hex}")
}

fn realm_of(key: &str) -> Option<String> {
    let hex = key.strip_prefix("realm.")?;
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// Starts applying other nodes' changes, from the bucket's current state on.
pub(crate) async fn start(node: &Arc<Node>) -> Result<(), ClusterError> {
    let staleness = Staleness::Renewed(Arc::clone(&node.watches_renewed));
    let follower = Arc::clone(node);
    follow(node.configs.clone(), staleness, move |entry| follower.apply_config(entry))
        .await
        .map_err(|e| ClusterError::Bucket { bucket: BUCKET, reason: e.to_string() })
}

impl Node {
    fn apply_config(&self, entry: kv::Entry) {
        let Some(name) = realm_of(&entry.key) else { return };
        let now = SystemTime::now();
        if entry.operation != Operation::Put {
            self.router.drop_realm(&Uri::from(name.as_str()), now);
            if let Err(error) = self.store.delete_realm(&name) {
                tracing::warn!(%error, realm = %name, "replicated realm deletion not stored");
            }
            return;
        }
        let Ok(record) = serde_json::from_slice::<ConfigRecord>(&entry.value) else { return };
        if record.node == self.name {
            return;
        }
        let config = serde_json::to_vec(&record.realm)
            .map_err(|e| e.to_string())
            .and_then(|bytes| junction_store::decode_realm(&bytes));
        match config {
            Ok(config) => {
                if let Err(error) = self.store.save_realm(&config) {
                    tracing::warn!(%error, realm = %name, "replicated realm not stored");
                }
                tracing::info!(realm = %name, from = %record.node, "realm settings replicated");
                self.router.apply_realm(config, now);
                self.adopt_orphans();
            }
            Err(error) => tracing::warn!(%error, realm = %name, "replicated realm unreadable"),
        }
    }

    /// Puts again the settings of the realms whose last write to the bucket failed (NATS was
    /// unreachable), as this node's store holds them now: a realm changed meanwhile is sent
    /// once, in its latest state, and a realm deleted meanwhile is deleted.
    pub(crate) fn resend_owed_realms(&self) {
        let keys = std::mem::take(&mut self.state().owed.realms);
        if keys.is_empty() {
            return;
        }
        let stored = match self.store.realms() {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "cannot read the realms to send again");
                self.state().owed.realms.extend(keys);
                return;
            }
        };
        for key in keys {
            let realm =
                realm_of(&key).and_then(|name| stored.iter().find(|r| r.name.as_str() == name));
            match realm.map(|realm| self.realm_write(realm)) {
                Some(Ok(write)) => self.write(write),
                Some(Err(error)) => tracing::warn!(%error, %key, "realm settings not encodable"),
                None => self.write(Write::Delete(self.configs.clone(), key)),
            }
        }
    }

    /// The write that puts `realm`'s settings in the bucket, in this node's name.
    fn realm_write(&self, realm: &RealmConfig) -> Result<Write, String> {
        let stored = junction_store::encode_realm(realm)?;
        let realm_json = serde_json::from_slice(&stored).map_err(|e| e.to_string())?;
        let record = ConfigRecord { node: self.name.clone(), realm: realm_json };
        let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        Ok(Write::Put(self.configs.clone(), key(realm.name.as_str()), Bytes::from(value)))
    }
}

/// The node's store, with every realm change also put in the configuration bucket.
pub struct ReplicatedStore {
    node: Arc<Node>,
}

impl ReplicatedStore {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

impl Persistence for ReplicatedStore {
    fn save_realm(&self, realm: &RealmConfig) -> Result<(), String> {
        self.node.store.save_realm(realm).map_err(|e| e.to_string())?;
        self.node.write(self.node.realm_write(realm)?);
        Ok(())
    }

    fn delete_realm(&self, name: &str) -> Result<(), String> {
        self.node.store.delete_realm(name).map_err(|e| e.to_string())?;
        self.node.write(Write::Delete(self.node.configs.clone(), key(name)));
        Ok(())
    }

    fn ticket_key(&self) -> Result<[u8; 32], String> {
        self.node.store.ticket_key().map_err(|e| e.to_string())
    }

    fn tickets(&self) -> Result<Vec<Claims>, String> {
        self.node.store.tickets().map_err(|e| e.to_string())
    }

    fn save_ticket(&self, ticket: &Claims) -> Result<(), String> {
        self.node.store.save_ticket(ticket).map_err(|e| e.to_string())
    }

    fn delete_tickets(&self, ids: &[String]) -> Result<(), String> {
        self.node.store.delete_tickets(ids).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_names_survive_the_key() {
        for name in ["realm1", "com.example.app", "with space/and*"] {
            let k = key(name);
            assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'));
            assert_eq!(realm_of(&k).as_deref(), Some(name));
        }
    }
}
