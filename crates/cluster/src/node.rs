//! A cluster node: its NATS connection, its buckets, what it knows of the other nodes, and the
//! tasks that keep that knowledge current.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::sync::{Notify, mpsc};

use junction_core::{Realm, Router};
use junction_store::Store;
use junction_wire::{RequestId, SessionId};

use crate::config::ClusterConfig;
use crate::directory::{self, Key};
use crate::forward::{self, Forward};
use crate::liveness::{self, Seen};
use crate::{ClusterError, config_sync, inbox};

/// This router as one node of a cluster.
pub struct Node {
    pub(crate) name: String,
    pub(crate) router: Arc<Router>,
    pub(crate) client: async_nats::Client,
    pub(crate) directory: kv::Store,
    /// Realm settings (see [`config_sync`]).
    pub(crate) configs: kv::Store,
    pub(crate) store: Arc<Store>,
    /// Directory and configuration writes, applied in order by one task.
    writes: mpsc::UnboundedSender<Write>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) node_timeout: Duration,
    state: Mutex<State>,
    /// Told when the directory watch had to be renewed (see `follow`).
    pub(crate) watches_renewed: Arc<Notify>,
    /// This node, for tasks it spawns.
    me: Weak<Node>,
}

/// What a node knows of the cluster. Never held while calling into a realm: realms call the
/// node back (hooks, remote outboxes).
#[derive(Default)]
pub(crate) struct State {
    /// Sessions of this node, with their realm and the `single` registrations they claimed.
    pub(crate) local: HashMap<SessionId, Local>,
    /// Sessions of other nodes mirrored here.
    pub(crate) remote: HashMap<SessionId, Remote>,
    /// Other nodes, with their last heartbeat seen.
    pub(crate) nodes: HashMap<String, Seen>,
    /// Invocations of local callees on behalf of other nodes: (callee, our request id) → the
    /// caller's node and its request id.
    pub(crate) relayed: HashMap<(SessionId, RequestId), Relayed>,
    /// The same, from the other end: (node, callee, its request id) → our request id.
    pub(crate) relayed_back: HashMap<(String, SessionId, RequestId), RequestId>,
    /// Directory entries of remote sessions whose realm this node does not have yet.
    pub(crate) orphans: HashMap<SessionId, Orphan>,
    /// One forwarder per other node.
    pub(crate) forwarders: HashMap<String, mpsc::UnboundedSender<Forward>>,
    /// What the buckets are owed, written at the next heartbeat that goes through.
    pub(crate) owed: Owed,
}

/// Writes the buckets are owed: some failed (NATS or JetStream unreachable), or other nodes
/// deleted this node's records (they took it for dead).
#[derive(Default)]
pub(crate) struct Owed {
    /// All this node's directory records, written again (`resync`).
    pub(crate) records: bool,
    /// The configuration keys of realms whose settings were not put (see `config_sync`).
    pub(crate) realms: HashSet<String>,
}

pub(crate) struct Local {
    pub(crate) realm: Arc<Realm>,
    /// The `single` registrations this session holds or is taking.
    pub(crate) claims: Vec<Claim>,
}

/// A claim key, and the registration it became once REGISTER went through.
pub(crate) struct Claim {
    pub(crate) key: String,
    pub(crate) registration: Option<junction_wire::RegistrationId>,
}

pub(crate) struct Remote {
    pub(crate) node: String,
    pub(crate) realm: Arc<Realm>,
}

/// A remote session waiting for its realm, with its directory entries in order.
pub(crate) struct Orphan {
    pub(crate) node: String,
    pub(crate) entries: Vec<kv::Entry>,
}

#[derive(Clone)]
pub(crate) struct Relayed {
    pub(crate) node: String,
    pub(crate) request: RequestId,
}

/// A write to a bucket.
pub(crate) enum Write {
    Put(kv::Store, String, Bytes),
    Delete(kv::Store, String),
}

/// Connects to NATS, joins the cluster and starts mirroring it into `router`. Fails if NATS or
/// JetStream cannot be reached: a node that was asked to cluster does not run alone.
pub async fn join(
    config: ClusterConfig,
    router: Arc<Router>,
    store: Arc<Store>,
) -> Result<Arc<Node>, ClusterError> {
    let servers = config.nats.join(", ");
    let connect_error = |reason: String| ClusterError::Connect { servers: servers.clone(), reason };
    let addrs = config
        .nats
        .iter()
        .map(|url| url.parse::<async_nats::ServerAddr>().map_err(|e| connect_error(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let client = async_nats::ConnectOptions::new()
        .name(format!("junction-{}", config.node))
        .connection_timeout(Duration::from_secs(5))
        .connect(addrs)
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    let js = jetstream::new(client.clone());
    let directory = bucket(&js, directory::BUCKET, config.replicas).await?;
    let configs = bucket(&js, config_sync::BUCKET, config.replicas).await?;

    let (writes, pending) = mpsc::unbounded_channel();
    let node = Arc::new_cyclic(|me| Node {
        name: config.node.clone(),
        router: Arc::clone(&router),
        client,
        directory,
        configs,
        store,
        writes,
        runtime: tokio::runtime::Handle::current(),
        node_timeout: Duration::from_millis(config.node_timeout_ms),
        state: Mutex::default(),
        watches_renewed: Arc::default(),
        me: me.clone(),
    });
    liveness::first_heartbeat(&node).await?;
    node.prune_own_keys().await;
    tokio::spawn(apply_writes(Arc::downgrade(&node), pending));
    inbox::start(&node).await.map_err(|e| connect_error(e.to_string()))?;
    node.start_mirror().await?;
    config_sync::start(&node).await?;
    router.set_cluster(Arc::clone(&node) as Arc<dyn junction_core::cluster::ClusterLink>);
    tokio::spawn(liveness::run(Arc::clone(&node)));
    tracing::info!(node = %node.name, nats = %servers, "joined the cluster");
    Ok(node)
}

/// The bucket `name`, made if it does not exist yet.
async fn bucket(
    js: &jetstream::Context,
    name: &'static str,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = kv::Config {
        bucket: name.to_owned(),
        history: 1,
        num_replicas: replicas,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another node made it meanwhile.
        Err(error) => js
            .get_key_value(name)
            .await
            .map_err(|_| ClusterError::Bucket { bucket: name, reason: error.to_string() }),
    }
}

/// Applies bucket writes in the order they were made, so a subscription never reaches the
/// directory before its session. What fails is noted in [`Owed`] for the next heartbeat that
/// goes through (see [`Node::write_owed`]).
async fn apply_writes(node: Weak<Node>, mut pending: mpsc::UnboundedReceiver<Write>) {
    while let Some(write) = pending.recv().await {
        let (bucket, key, outcome) = match write {
            Write::Put(bucket, key, value) => {
                let outcome = bucket.put(&key, value).await.map(drop).map_err(|e| e.to_string());
                (bucket, key, outcome)
            }
            Write::Delete(bucket, key) => {
                let outcome = bucket.delete(&key).await.map_err(|e| e.to_string());
                (bucket, key, outcome)
            }
        };
        if let Err(error) = outcome {
            tracing::warn!(%error, bucket = %bucket.name, %key, "cluster bucket write failed");
            let Some(node) = node.upgrade() else { return };
            let owed = &mut node.state().owed;
            if bucket.name == config_sync::BUCKET {
                owed.realms.insert(key);
            } else {
                owed.records = true;
            }
        }
    }
}

impl Node {
    /// This node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The persistence the router should use: the node's store, replicated to the cluster.
    pub fn persistence(self: &Arc<Self>) -> Arc<dyn junction_core::Persistence> {
        Arc::new(config_sync::ReplicatedStore::new(Arc::clone(self)))
    }

    /// This node as an `Arc`, for spawned tasks.
    pub(crate) fn myself(&self) -> Option<Arc<Node>> {
        self.me.upgrade()
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self, write: Write) {
        // The writer lives as long as the runtime.
        let _ = self.writes.send(write);
    }

    /// Writes what the buckets are owed: this node's records again (deletions included, see
    /// `resync`), and the realms' settings whose put failed.
    pub(crate) fn write_owed(&self) {
        if std::mem::take(&mut self.state().owed.records)
            && let Some(node) = self.myself()
        {
            self.runtime.spawn(async move { node.resync().await });
        }
        self.resend_owed_realms();
    }

    /// The forwarder to `node`, started on first use.
    pub(crate) fn forwarder(&self, node: &str) -> mpsc::UnboundedSender<Forward> {
        let mut state = self.state();
        if let Some(tx) = state.forwarders.get(node) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        state.forwarders.insert(node.to_owned(), tx.clone());
        let client = self.client.clone();
        let (from, to) = (self.name.clone(), node.to_owned());
        self.runtime.spawn(forward::run(client, from, to, rx));
        tx
    }

    /// Leaves the cluster on shutdown: removes this node's records (its sessions are gone
    /// by now), so the others withdraw them at once instead of after the node timeout.
    pub async fn leave(&self) {
        let removal = async {
            self.prune_own_keys().await;
            let _ = self.directory.delete(directory::heartbeat_key(&self.name)).await;
        };
        if tokio::time::timeout(Duration::from_secs(3), removal).await.is_err() {
            tracing::warn!(node = %self.name, "left the cluster without removing its records");
        }
    }

    /// Deletes this node's directory keys that name nothing it holds (at start: everything
    /// a previous run left behind after a crash). JetStream may still be recovering (after a
    /// NATS restart): retried until it answers, or for half a minute.
    pub(crate) async fn prune_own_keys(&self) {
        for attempt in 1..=60 {
            match self.keys_of(&self.name).await {
                Ok(keys) => {
                    for (raw, _) in keys.iter().filter(|(_, key)| !self.still_held(key)) {
                        let _ = self.directory.delete(raw).await;
                    }
                    return;
                }
                Err(error) if attempt % 10 == 1 => {
                    tracing::warn!(%error, "cannot list the cluster directory yet; retrying");
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::error!("stale records of this node may remain in the cluster directory");
    }

    /// The directory keys of `node`, as stored and parsed.
    async fn keys_of(&self, node: &str) -> Result<Vec<(String, Key)>, String> {
        let keys = self.directory.keys().await.map_err(|e| e.to_string())?;
        let keys: Vec<String> = keys.try_collect().await.map_err(|e| e.to_string())?;
        Ok(keys
            .into_iter()
            .filter_map(|raw| Key::parse(&raw).map(|key| (raw, key)))
            .filter(|(_, key)| key.node() == Some(node))
            .collect())
    }

    /// Deletes every directory key of a dead node (any survivor may; deleting twice is fine).
    pub(crate) fn delete_keys_of(&self, name: String) {
        let Some(node) = self.myself() else { return };
        self.runtime.spawn(async move {
            for (raw, _) in node.keys_of(&name).await.unwrap_or_default() {
                let _ = node.directory.delete(&raw).await;
            }
        });
    }

    /// The realm of a session of this node.
    pub(crate) fn local_realm(&self, session: SessionId) -> Option<Arc<Realm>> {
        self.state().local.get(&session).map(|l| Arc::clone(&l.realm))
    }

    /// The realm of a session of another node mirrored here.
    pub(crate) fn remote_realm(&self, session: SessionId) -> Option<Arc<Realm>> {
        self.state().remote.get(&session).map(|r| Arc::clone(&r.realm))
    }

    /// Whether a session is alive anywhere in the cluster, as far as this node knows.
    pub(crate) fn session_known(&self, session: SessionId) -> bool {
        let state = self.state();
        state.local.contains_key(&session) || state.remote.contains_key(&session)
    }
}
