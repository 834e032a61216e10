//! The `[cluster]` settings.

use serde::{Deserialize, Serialize};

/// How a node joins its cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster: letters, digits, `-` and `_`.
    pub node: String,
    /// NATS server URLs (`nats://host:port`); JetStream must be enabled.
    pub nats: Vec<String>,
    /// Replicas of the key-value buckets (1, or 3 for a three-server NATS cluster).
    #[serde(default = "one")]
    pub replicas: usize,
    /// Milliseconds without a heartbeat after which a node is taken for dead.
    #[serde(default = "node_timeout_ms")]
    pub node_timeout_ms: u64,
}

fn one() -> usize {
    1
}

fn node_timeout_ms() -> u64 {
    3000
}

impl ClusterConfig {
    /// Checks what serde cannot: the node name's characters, a server to connect to.
    pub fn validate(&self) -> Result<(), String> {
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.node.is_empty() || !self.node.chars().all(valid) {
            return Err(format!(
                "cluster.node \"{}\" must be letters, digits, '-' and '_' only",
                self.node
            ));
        }
        if self.nats.is_empty() {
            return Err("cluster.nats must name at least one NATS server".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return Err("cluster.replicas must be between 1 and 5".into());
        }
        if self.node_timeout_ms < 500 {
            return Err("cluster.node_timeout_ms must be at least 500".into());
        }
        Ok(())
    }
}
