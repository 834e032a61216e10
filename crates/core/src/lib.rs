//! Junction's routing core. Driven by decoded messages; no sockets, tasks or clocks (the caller
//! passes the time in), so nearly all router behaviour is tested here, in-process.
//!
//! Layout:
//! - [`router`]: the [`Router`], its configuration and its realms.
//! - [`realm`]: a [`Realm`] (routing and security domain) and the sessions attached to it.
//! - [`session`]: the per-connection [`Session`] state machine (HELLO … GOODBYE).
//! - [`broker`]: publish & subscribe.
//! - [`dealer`]: routed remote procedure calls.
//! - [`outbox`]: how the core hands messages to a transport ([`Outbox`], [`Outbound`]).
//! - [`time`]: [`Now`], the time a driver passes in.
//! - [`security`]: users, groups and grants of a realm; authorization.
//! - [`error`]: [`Error`], and its single mapping to `wamp.error.*` URIs.
//! - [`cluster`]: the seam to a cluster layer (remote sessions mirrored as peers).
//! - [`admin`]: the `bondy.*` admin API (realms, users, groups, grants).
//! - [`meta`]: the session, registration and subscription meta API, and testaments.
//! - [`features`]: the roles and features announced in WELCOME.
//! - [`limits`]: per-session and per-realm limits.
//!
//! Sharing model: each connection owns its [`Session`] (`&mut self`); realm-level tables are
//! shared by every connection task and take `&self`, with short critical sections and no lock held
//! while a transport writes.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod broker;
pub mod cluster;
pub mod dealer;
pub mod error;
pub mod features;
#[doc(hidden)]
pub mod fuzzing;
mod ids;
pub mod limits;
mod matcher;
pub mod meta;
pub mod options;
pub mod outbox;
pub mod persistence;
pub mod realm;
pub mod router;
pub mod security;
pub mod session;
mod tickets;
pub mod time;

pub use error::Error;
pub use limits::Limits;
pub use outbox::{Outbound, Outbox, SharedMessage};
pub use persistence::Persistence;
pub use realm::{Realm, RealmConfig};
pub use router::{Router, RouterConfig};
pub use session::{Session, SessionInfo, Status, TransportInfo, TransportKind};
pub use time::Now;

#[cfg(test)]
mod tests;
