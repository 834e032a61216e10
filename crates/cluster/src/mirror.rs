//! The mirror: other nodes' sessions, subscriptions and registrations, attached to the local
//! realms as remote peers, kept in step with the directory bucket.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::kv::{Entry, Operation};

use junction_core::Realm;
use junction_core::realm::Peer;
use junction_wire::SessionId;

use crate::ClusterError;
use crate::directory::{Key, RegistrationRecord, SessionRecord, SubscriptionRecord};
use crate::follow::{Staleness, follow};
use crate::forward::RemoteOutbox;
use crate::liveness::Seen;
use crate::node::{Node, Orphan, Remote};

/// How long a joining node waits for the directory's current state before serving.
const CATCH_UP: Duration = Duration::from_secs(5);

/// Silence after which the directory watch is taken for dead: every node writes its heartbeat
/// each second.
const WATCH_SILENCE: Duration = Duration::from_secs(3);

impl Node {
    /// Follows the directory from its current state on, applying each change; returns once
    /// the current state is mirrored (or after [`CATCH_UP`]).
    pub(crate) async fn start_mirror(self: &Arc<Self>) -> Result<(), ClusterError> {
        let error =
            |e: String| ClusterError::Bucket { bucket: crate::directory::BUCKET, reason: e };
        let status = self.directory.status().await.map_err(|e| error(e.to_string()))?;
        let (caught_up, ready) = tokio::sync::oneshot::channel();
        let mut caught_up = Some(caught_up);
        if status.values() == 0 {
            caught_up.take().map(|tx| tx.send(()));
        }
        let node = Arc::clone(self);
        let staleness = Staleness::Silence(WATCH_SILENCE, Arc::clone(&self.watches_renewed));
        follow(self.directory.clone(), staleness, move |entry| {
            let current = entry.delta == 0;
            node.apply(entry);
            if current {
                caught_up.take().map(|tx| tx.send(()));
            }
        })
        .await
        .map_err(|e| error(e.to_string()))?;
        let _ = tokio::time::timeout(CATCH_UP, ready).await;
        Ok(())
    }

    /// Applies one directory change made by another node.
    pub(crate) fn apply(&self, entry: Entry) {
        let Some(key) = Key::parse(&entry.key) else { return };
        let put = entry.operation == Operation::Put;
        if key.node() == Some(&self.name) {
            if !put && self.still_held(&key) {
                // Taken for dead by another node: written again at the next heartbeat (a
                // burst of deletions makes one rewrite).
                self.state().owed.records = true;
            }
            return;
        }
        let Some(node) = key.node().map(str::to_owned) else { return };
        let now = SystemTime::now();
        match key {
            // A deleted heartbeat means another node took this one for dead: each node
            // judges for itself (its sessions' records go with it anyway).
            Key::Heartbeat { .. } if put => self.heard(&node, entry.revision),
            Key::Heartbeat { .. } => {}
            Key::Session { session, .. } => {
                if put {
                    self.mirror_session(node, entry, now);
                } else {
                    let remote = {
                        let mut state = self.state();
                        state.orphans.remove(&session);
                        state.remote.remove(&session)
                    };
                    if let Some(remote) = remote {
                        remote.realm.detach_remote(session, now);
                    }
                }
            }
            Key::Subscription { session, id, .. } => self.mirror_holding(
                session,
                entry,
                |realm| realm.unsubscribe_remote(session, id, now),
                |realm, peer, value| {
                    let (topic, policy) = SubscriptionRecord::read(value).ok_or("unreadable")?;
                    realm.subscribe_remote(peer, topic, policy, now).map_err(|e| e.to_string())
                },
            ),
            Key::Registration { session, id, .. } => self.mirror_holding(
                session,
                entry,
                |realm| realm.unregister_remote(session, id, now),
                |realm, peer, value| {
                    let (procedure, options) =
                        RegistrationRecord::read(value).ok_or("unreadable")?;
                    realm.register_remote(peer, procedure, &options, now).map_err(|e| e.to_string())
                },
            ),
            Key::Claim => {}
        }
    }

    /// Mirrors a subscription or registration of a remote session (`add`), or ends it
    /// (`remove`); one of a session still waiting for its realm waits with it.
    fn mirror_holding(
        &self,
        session: SessionId,
        entry: Entry,
        remove: impl FnOnce(&Realm),
        add: impl FnOnce(&Realm, &Arc<Peer>, &[u8]) -> Result<(), String>,
    ) {
        let Some(realm) = self.remote_realm(session) else { return self.keep_orphan(entry) };
        if entry.operation != Operation::Put {
            return remove(&realm);
        }
        let Some(peer) = realm.session(session) else { return };
        if let Err(error) = add(&realm, &peer, &entry.value) {
            tracing::warn!(%error, key = %entry.key, "remote holding not mirrored");
        }
    }

    /// Whether this node still holds what one of its own directory keys names (if so, its
    /// deletion was another node's doing).
    pub(crate) fn still_held(&self, key: &Key) -> bool {
        // A node's own heartbeat is always current; claims are found by their holder.
        let Some(session) = key.session() else { return matches!(key, Key::Heartbeat { .. }) };
        let Some(realm) = self.local_realm(session) else { return false };
        let (subscriptions, registrations) = realm.held_by(session);
        match key {
            Key::Subscription { id, .. } => subscriptions.contains(id),
            Key::Registration { id, .. } => registrations.contains(id),
            _ => realm.session(session).is_some(),
        }
    }

    /// Attaches a session of `node` to its realm here. A session of a realm this node does
    /// not have yet (its creation is still on the way) waits, with its subscriptions and
    /// registrations, until the realm arrives.
    fn mirror_session(&self, node: String, entry: Entry, now: SystemTime) {
        let Some(record) = serde_json::from_slice::<SessionRecord>(&entry.value).ok() else {
            return;
        };
        let Some(info) = record.info() else { return };
        let Some(realm) = self.router.realm(&record.realm()) else {
            self.state().orphans.insert(info.id, Orphan { node, entries: vec![entry] });
            return;
        };
        let session = info.id;
        let outbox = Arc::new(RemoteOutbox::new(session, self.forwarder(&node)));
        if realm.attach_remote(info, outbox, now).is_some() {
            let mut state = self.state();
            // A node is given one timeout's grace to send its first heartbeat.
            state.nodes.entry(node.clone()).or_insert_with(Seen::now);
            state.remote.insert(session, Remote { node, realm });
        }
    }

    /// Keeps a subscription or registration of a session waiting for its realm.
    fn keep_orphan(&self, entry: Entry) {
        let Some(session) = Key::parse(&entry.key).and_then(|k| k.session()) else { return };
        if let Some(orphan) = self.state().orphans.get_mut(&session) {
            orphan.entries.push(entry);
        }
    }

    /// Mirrors the sessions that were waiting for a realm this node now has.
    pub(crate) fn adopt_orphans(&self) {
        let orphans: Vec<Orphan> = self.state().orphans.drain().map(|(_, o)| o).collect();
        for entry in orphans.into_iter().flat_map(|o| o.entries) {
            self.apply(entry);
        }
    }

    /// Withdraws everything of a node that left or went silent: its sessions leave (with
    /// `on_leave`), their subscriptions and registrations go, calls waiting on them fail.
    pub(crate) fn node_gone(&self, node: &str) {
        let gone: Vec<(SessionId, Remote)> = {
            let mut state = self.state();
            state.nodes.remove(node);
            state.forwarders.remove(node);
            state.orphans.retain(|_, orphan| orphan.node != node);
            let ids: Vec<SessionId> =
                state.remote.iter().filter(|(_, r)| r.node == node).map(|(id, _)| *id).collect();
            ids.into_iter().filter_map(|id| state.remote.remove(&id).map(|r| (id, r))).collect()
        };
        let now = SystemTime::now();
        for (session, remote) in gone {
            remote.realm.detach_remote(session, now);
        }
    }
}
