//! Junction's transports: they accept connections, frame bytes, and drive one
//! [`Session`](junction_core::Session) per connection.
//!
//! Layout:
//! - [`config`]: limits and timeouts that apply to every connection.
//! - [`listener`]: accept loops — the universal TCP port (RawSocket when the first byte is
//!   `0x7F`, WebSocket otherwise) and RawSocket over a Unix domain socket.
//! - [`http`]: HTTP on the same port: the WebSocket upgrade and `/healthz`, `/readyz`, `/metrics`.
//! - `websocket`: the WebSocket link (subprotocols `wamp.2.json|msgpack|cbor`, plain or batched).
//! - `rawsocket`: the RawSocket handshake and link.
//! - `connection`: the per-connection driver shared by every transport: read, hand to the
//!   session, drain the outbox, write in batches, close.
//! - `input`, `output`: the read and write sides of both links, with no buffer kept while a
//!   connection is idle.
//! - `outbox`: the bounded outbound queue behind each session.
//! - [`message_metrics`]: the per-message counters and histogram, kept per thread and summed
//!   for `/metrics`.
//! - [`tls`]: TLS (rustls) for WSS and RawSocket-over-TLS, reloadable; `tls_unique`: the TLS 1.2
//!   channel binding rustls does not expose, worked out from the handshake.
//! - `timers`: the task that expires calls past their deadline.
//! - `fuzzing`: the WebSocket link driven by arbitrary octets (the `websocket_framing` target).
#![forbid(unsafe_code)]

pub mod config;
mod connection;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
mod input;
pub mod listener;
pub mod message_metrics;
mod outbox;
mod output;
mod rawsocket;
mod timers;
pub mod tls;
mod tls_unique;
mod websocket;

pub use config::TransportConfig;
pub use http::HttpEndpoints;
pub use listener::{Services, Shutdown, serve_tcp, serve_tls, serve_unix};
pub use timers::run_timers;
pub use tls::{Tls, TlsFiles};
