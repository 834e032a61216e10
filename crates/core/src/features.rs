//! The router roles and features announced in WELCOME. Only features that work end to end are
//! listed: a client that reads a flag here may rely on it.

use junction_wire::{Dict, Value, dict};

use crate::realm::RealmConfig;

/// Broker features Junction implements on every realm.
pub const BROKER_FEATURES: &[&str] = &[
    "publisher_exclusion",
    "publisher_identification",
    "subscriber_blackwhite_listing",
    "pattern_based_subscription",
    "event_retention",
    "subscription_revocation",
    "session_meta_api",
    "subscription_meta_api",
    "payload_passthru_mode",
];

/// Dealer features Junction implements on every realm.
pub const DEALER_FEATURES: &[&str] = &[
    "progressive_call_results",
    "progressive_call_invocations",
    "call_canceling",
    "call_timeout",
    "caller_identification",
    "pattern_based_registration",
    "shared_registration",
    "sharded_registration",
    "registration_revocation",
    "call_reroute",
    "session_meta_api",
    "registration_meta_api",
    "testament_meta_api",
    "payload_passthru_mode",
];

/// `WELCOME.Details.roles` for a session of `realm`. `event_history` is announced only where
/// the realm keeps a history.
pub fn router_roles(realm: &RealmConfig) -> Dict {
    let flags = |names: &[&'static str]| -> Dict {
        names.iter().map(|n| ((*n).into(), Value::Bool(true))).collect()
    };
    let mut broker = flags(BROKER_FEATURES);
    if !realm.event_history.is_empty() {
        broker.insert("event_history".into(), Value::Bool(true));
    }
    dict! {
        "broker" => dict! { "features" => broker },
        "dealer" => dict! { "features" => flags(DEALER_FEATURES) },
    }
}
