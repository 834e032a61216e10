//! Identifiers in `[1, 2^53]`: random for global-scope IDs (sessions, publications), as the
//! spec asks; derived from what they name for router-scope IDs (subscriptions, registrations),
//! so that every node of a cluster gives the same topic the same id.

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

/// The id of the subscription or registration `key` names (realm, kind, match policy, URI):
/// the same on every router that computes it, so cluster nodes agree on ids without talking.
/// On a collision with another key already in `taken`, the next free value is used.
pub(crate) fn keyed<T: std::hash::Hash + Eq + Copy, V, S: std::hash::BuildHasher>(
    wrap: fn(u64) -> Option<T>,
    key: &[&str],
    taken: &HashMap<T, V, S>,
) -> T {
    let hash = stable_hash(key);
    let mut n = hash % MAX_ID;
    loop {
        if let Some(id) = wrap(n + 1)
            && !taken.contains_key(&id)
        {
            return id;
        }
        n = (n + 1) % MAX_ID;
    }
}

/// A hash of `parts` that is the same on every build and platform (FNV-1a; std's hashers make
/// no such promise), so that cluster nodes derive the same ids and keys.
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
