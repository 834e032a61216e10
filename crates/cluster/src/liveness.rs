//! Liveness. Each node puts its heartbeat key every second and reads the other nodes'
//! heartbeat keys directly (not through its watch, which lags behind after a NATS server
//! failure); a node whose heartbeat has not changed for `node_timeout_ms` is withdrawn. A node
//! that cannot write its own heartbeat judges nobody: it is the one cut off. A node joins only
//! once the directory has taken its first heartbeat.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::Operation;
use bytes::Bytes;

use crate::node::Node;
use crate::{ClusterError, directory};

/// How often a node tells the others it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The last heartbeat revision seen of a node, and when it was first seen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    revision: u64,
    at: Instant,
}

impl Seen {
    /// A node just learned of (its first record): it has a timeout's grace.
    pub(crate) fn now() -> Self {
        Self { revision: 0, at: Instant::now() }
    }
}

/// A heartbeat's value: the time it was put, in milliseconds since the epoch.
fn beat() -> Bytes {
    Bytes::from(directory::now_ms().to_string())
}

/// How long a joining node waits for the directory to take its first heartbeat.
const FIRST_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// Puts this node's first heartbeat and reads it back through its own NATS server (and reads
/// the configuration bucket, made just after). Right after a bucket is made, or a NATS cluster
/// started, a server may not route to the bucket yet ("no stream found", "no responders"); a
/// node that served clients then could not record them, so it waits here. Fails when the
/// buckets still refuse after the timeout.
pub(crate) async fn first_heartbeat(node: &Node) -> Result<(), ClusterError> {
    let key = directory::heartbeat_key(&node.name);
    let deadline = Instant::now() + FIRST_HEARTBEAT_TIMEOUT;
    let mut warned = false;
    loop {
        let round_trip = async {
            node.directory.put(&key, beat()).await.map_err(|e| format!("put: {e}"))?;
            node.directory.entry(&key).await.map_err(|e| format!("get: {e}"))?;
            let configs = &node.configs;
            configs.entry(&key).await.map_err(|e| format!("get from {}: {e}", configs.name))?;
            Ok::<_, String>(())
        };
        let reason = match tokio::time::timeout(HEARTBEAT, round_trip).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(reason)) => reason,
            Err(_) => "no answer within a second".to_owned(),
        };
        if Instant::now() > deadline {
            return Err(ClusterError::Bucket { bucket: directory::BUCKET, reason });
        }
        if !warned {
            warned = true;
            tracing::warn!(node = %node.name, %reason, "the cluster directory does not take writes yet; waiting");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Puts this node's heartbeat every second, and withdraws the nodes that stopped theirs.
pub(crate) async fn run(node: Arc<Node>) {
    let key = directory::heartbeat_key(&node.name);
    let mut ticks = tokio::time::interval(HEARTBEAT);
    let mut healthy = true;
    loop {
        ticks.tick().await;
        let written = tokio::time::timeout(HEARTBEAT, node.directory.put(&key, beat())).await;
        if !matches!(written, Ok(Ok(_))) {
            if healthy {
                tracing::warn!(node = %node.name, "cannot write to the cluster directory");
            }
            healthy = false;
            continue;
        }
        let recovered = !std::mem::replace(&mut healthy, true);
        if recovered {
            tracing::info!(node = %node.name, "the cluster directory answers again; resuming");
            let mut state = node.state();
            state.nodes.values_mut().for_each(|seen| seen.at = Instant::now());
            // The others may have taken this node for dead and deleted its records.
            state.owed.records = true;
        }
        node.write_owed();
        if recovered {
            // Judge the others from the next heartbeat on.
            continue;
        }
        for name in node.silent_nodes().await {
            tracing::warn!(node = %name, "cluster node is silent; withdrawing its sessions");
            node.node_gone(&name);
            node.delete_keys_of(name);
        }
    }
}

impl Node {
    /// Records heartbeat `revision` of `node`, seen now.
    pub(crate) fn heard(&self, node: &str, revision: u64) {
        let mut state = self.state();
        let seen = state.nodes.entry(node.to_owned()).or_insert_with(Seen::now);
        if revision > seen.revision {
            *seen = Seen { revision, at: Instant::now() };
        }
    }

    /// The known nodes whose heartbeat has not changed for the timeout. A heartbeat that
    /// cannot be read now is no evidence either way.
    async fn silent_nodes(&self) -> Vec<String> {
        let known: Vec<String> = self.state().nodes.keys().cloned().collect();
        let mut silent = Vec::new();
        for name in known {
            let key = directory::heartbeat_key(&name);
            match tokio::time::timeout(HEARTBEAT, self.directory.entry(key)).await {
                Ok(Ok(Some(entry))) if entry.operation == Operation::Put => {
                    self.heard(&name, entry.revision);
                }
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => continue,
            }
            let stale =
                self.state().nodes.get(&name).is_some_and(|s| s.at.elapsed() > self.node_timeout);
            if stale {
                silent.push(name);
            }
        }
        silent
    }
}
