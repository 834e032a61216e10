//! Junction's transports: they accept connections, frame bytes, and drive one
//! [`Session`](junction_core::Session) per connection.
//!
//! Layout:
//! - [`config`]: limits and timeouts that apply to every connection.
//! - [`listener`]: accept loops — the universal TCP port (RawSocket when the first byte is
//!   `0x7F`, WebSocket otherwise) and RawSocket over a Unix domain socket.
//! - [`websocket`]: the WebSocket handshake (subprotocols `wamp.2.json|msgpack|cbor`) and link.
//! - [`rawsocket`]: the RawSocket handshake and link.
//! - [`connection`]: the per-connection driver shared by every transport: read, hand to the
//!   session, drain the outbox, write in batches, close.
//! - `outbox`: the bounded outbound queue behind each session.
//! - `timers`: the task that expires calls past their deadline.
#![forbid(unsafe_code)]

pub mod config;
mod connection;
pub mod listener;
mod outbox;
mod rawsocket;
mod timers;
mod websocket;

pub use config::TransportConfig;
pub use listener::{Shutdown, serve_tcp, serve_unix};
pub use timers::run_timers;
