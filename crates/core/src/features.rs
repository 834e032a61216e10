//! The router roles and features announced in WELCOME. Only features that work end to end are
//! listed: a client that reads a flag here may rely on it.

use junction_wire::{Dict, Value, dict};

/// Broker features Junction implements.
pub const BROKER_FEATURES: &[&str] = &[
    "publisher_exclusion",
    "subscriber_blackwhite_listing",
    "publisher_identification",
    "session_meta_api",
    "subscription_meta_api",
];

/// Dealer features Junction implements.
pub const DEALER_FEATURES: &[&str] = &[
    "session_meta_api",
    "registration_meta_api",
    "testament_meta_api",
];

/// `WELCOME.Details.roles`.
pub fn router_roles() -> Dict {
    let features = |names: &[&str]| {
        let flags: Dict = names
            .iter()
            .map(|n| (n.to_string(), Value::Bool(true)))
            .collect();
        Value::Dict(dict! { "features" => flags })
    };
    dict! { "broker" => features(BROKER_FEATURES), "dealer" => features(DEALER_FEATURES) }
}
