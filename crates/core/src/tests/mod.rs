//! In-process tests: a router and scripted clients exchanging messages through in-memory
//! outboxes. Messages are written as the spec writes them, in JSON.

mod admin;
mod advanced;
mod harness;
mod limits;
mod meta;
mod prototype;
mod pubsub;
mod rpc;
mod security;
mod session;
mod spec_options;
mod tickets;
