//! Random identifiers in `[1, 2^53]`, as the spec asks for global-scope IDs. Router-scope IDs
//! (subscriptions, registrations) are random too, so they reveal nothing about router activity.

use std::collections::HashMap;

use rand::Rng;

use junction_wire::id::MAX_ID;

/// A random ID in `[1, 2^53]`, wrapped by `wrap` (one of the id types' `new`).
pub(crate) fn random<T>(wrap: fn(u64) -> Option<T>) -> T {
    loop {
        // Every draw is in range, so this returns on the first pass.
        if let Some(id) = wrap(rand::rng().random_range(1..=MAX_ID)) {
            return id;
        }
    }
}

/// A random id that is not a key of `taken` yet.
pub(crate) fn fresh<T: std::hash::Hash + Eq, V>(
    wrap: fn(u64) -> Option<T>,
    taken: &HashMap<T, V>,
) -> T {
    loop {
        let id = random(wrap);
        if !taken.contains_key(&id) {
            return id;
        }
    }
}
