//! The meta API: procedures and events through which sessions see their realm (spec, "Session
//! Meta API", "Registration Meta API", "Subscription Meta API", "Session Testament").
//!
//! Procedures are answered by the router itself, synchronously, within the caller's realm; a
//! session never sees another realm. Events ([`events`]) are published by the router into the
//! realm where they happen.

mod args;
pub(crate) mod events;
mod registration;
pub(crate) mod session;
mod subscription;

use std::sync::Arc;
use std::time::SystemTime;

use junction_wire::{Payload, Uri, Value};

use crate::error::Error;
use crate::realm::{Peer, Realm};
use crate::time::Now;

/// Procedures announced by the meta API, for documentation and tests.
pub const PROCEDURES: &[&str] = &[
    "wamp.session.count",
    "wamp.session.list",
    "wamp.session.get",
    "wamp.session.kill",
    "wamp.session.kill_by_authid",
    "wamp.session.kill_by_authrole",
    "wamp.session.kill_all",
    "wamp.session.add_testament",
    "wamp.session.flush_testaments",
    "wamp.registration.list",
    "wamp.registration.lookup",
    "wamp.registration.match",
    "wamp.registration.get",
    "wamp.registration.list_callees",
    "wamp.registration.count_callees",
    "wamp.subscription.list",
    "wamp.subscription.lookup",
    "wamp.subscription.match",
    "wamp.subscription.get",
    "wamp.subscription.list_subscribers",
    "wamp.subscription.count_subscribers",
    "wamp.subscription.get_events",
    "wamp.subscription.remove_subscriber",
    "wamp.registration.remove_callee",
];

/// Answers a call to a meta procedure, or `None` if `procedure` is not one.
pub(crate) fn call(
    realm: &Realm,
    caller: &Arc<Peer>,
    procedure: &Uri,
    payload: &Payload,
    now: Now,
) -> Option<Result<Payload, Error>> {
    let name = procedure.as_str();
    let args = match args::Args::new(name, payload) {
        Ok(args) => args,
        Err(error) => return Some(Err(error)),
    };
    let result = if let Some(rest) = name.strip_prefix("wamp.session.") {
        session::call(realm, caller, rest, &args, now.wall)?
    } else if let Some(rest) = name.strip_prefix("wamp.registration.") {
        registration::call(realm, rest, &args, now.wall)?
    } else if let Some(rest) = name.strip_prefix("wamp.subscription.") {
        subscription::call(realm, caller, rest, &args, now.wall)?
    } else {
        return None;
    };
    // Every meta procedure answers with one positional result (or none, for `Value::Null`
    // from procedures that "do not return a value").
    Some(result.map(|value| match value {
        Value::Null if returns_nothing(name) => Payload::default(),
        value => Payload::args(vec![value]),
    }))
}

/// Procedures whose spec says they "do not return a value".
fn returns_nothing(name: &str) -> bool {
    matches!(
        name,
        "wamp.session.add_testament"
            | "wamp.session.flush_testaments"
            | "wamp.session.kill"
            | "wamp.subscription.remove_subscriber"
            | "wamp.registration.remove_callee"
    )
}

/// ISO 8601 (RFC 3339, UTC, milliseconds) as the meta API's `created` fields use.
pub(crate) fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
