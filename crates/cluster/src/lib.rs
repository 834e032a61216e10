//! Cluster mode: several Junction nodes behave as one router, over NATS.
//!
//! Each node keeps a mirror of the whole cluster in its own realms: the sessions,
//! subscriptions and registrations of other nodes are attached there as *remote peers*
//! ([`junction_core::cluster`]), so the broker, the dealer and the meta API need no cluster
//! logic of their own. A remote peer's outbox forwards to the node that holds the session.
//!
//! - [`directory`]: the JetStream key-value bucket every node writes its sessions,
//!   subscriptions, registrations and heartbeats to, and watches to build its mirror.
//! - [`mirror`]: applies directory changes to the local realms; withdraws dead nodes.
//! - [`follow`]: watching a bucket through NATS server failures.
//! - [`liveness`]: heartbeats, and withdrawing the nodes that stop them.
//! - [`forward`]: remote peers' outboxes and the per-node forwarders (one NATS message per
//!   publication and node, however many subscribers it reaches there).
//! - [`inbox`]: what other nodes send this one (events, invocations and their answers,
//!   interrupts, kills).
//! - [`link`]: the hooks the core calls for local sessions.
//! - [`config_sync`]: realm settings replicated through a second bucket.
//!
//! NATS does the transport, interest routing and (through JetStream) the replicated state; no
//! membership or consensus protocol of our own.

mod config;
mod config_sync;
mod directory;
mod follow;
mod forward;
mod inbox;
mod link;
mod liveness;
mod mirror;
mod node;

pub use config::ClusterConfig;
pub use node::{Node, join};

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS could not be reached or refused us.
    #[error("cannot connect to NATS at {servers}: {reason}")]
    Connect {
        /// The servers tried.
        servers: String,
        /// What the client said.
        reason: String,
    },
    /// JetStream is not enabled on the NATS servers, or a bucket could not be made.
    #[error(
        "JetStream key-value bucket {bucket}: {reason} (is JetStream enabled on the NATS servers?)"
    )]
    Bucket {
        /// The bucket.
        bucket: &'static str,
        /// What the server said.
        reason: String,
    },
}
