//! Stored passwords: never the password itself, only PBKDF2-HMAC-SHA256 over it with a random
//! salt. The same derived key serves `ticket` (derive the presented ticket and compare) and
//! salted `wampcra` (the key Autobahn and xconn derive on their side). A password set since
//! `scram` exists also carries a [`ScramCredential`] (Argon2id), derived at the same moment, and
//! for users who opt in to unsalted `wampcra`, an [`UnsaltedKey`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::cra::UnsaltedKey;
use crate::scram::ScramCredential;

/// Iterations for newly stored passwords (WAMP-CRA clients accept any count the router sends).
pub const DEFAULT_ITERATIONS: u32 = 1000;

/// Derived key length in octets.
pub const KEY_LENGTH: usize = 32;

/// A password as stored: salt, iteration count and derived key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPassword {
    /// The salt, as text (WAMP-CRA sends it to the client verbatim).
    pub salt: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// PBKDF2-HMAC-SHA256(password, salt, iterations), `KEY_LENGTH` octets.
    pub key: Vec<u8>,
    /// The `scram` credential. `None` for passwords stored before Junction had `scram` (they
    /// need to be set again to use it) and for [`StoredPassword::with_salt`].
    pub scram: Option<ScramCredential>,
    /// The key for *unsalted* `wampcra`, only for users who opted in: with it, the router
    /// sends WAMP-CRA challenges without a salt. Password-equivalent for that method and
    /// cheap to brute-force, unlike `key` (see [`UnsaltedKey`]).
    pub unsalted_cra: Option<UnsaltedKey>,
}

impl StoredPassword {
    /// Derives a new stored password with a fresh random salt (salted `wampcra` only).
    pub fn new(password: &str) -> Self {
        Self::new_with(password, false)
    }

    /// Derives a new stored password with a fresh random salt, and with `unsalted_cra` the key
    /// for unsalted `wampcra` as well.
    pub fn new_with(password: &str, unsalted_cra: bool) -> Self {
        let salt: String = {
            let bytes: [u8; 16] = rand::rng().random();
            hex::encode(bytes)
        };
        Self {
            scram: Some(ScramCredential::new(password)),
            unsalted_cra: unsalted_cra.then(|| UnsaltedKey::derive(password.as_bytes())),
            ..Self::with_salt(password, &salt, DEFAULT_ITERATIONS)
        }
    }

    /// Derives the PBKDF2 part of a stored password with a given salt and iteration count (no
    /// `scram` credential: that is what a WAMP-CRA client computes).
    pub fn with_salt(password: &str, salt: &str, iterations: u32) -> Self {
        Self {
            salt: salt.to_owned(),
            iterations,
            key: derive(password, salt, iterations),
            scram: None,
            unsalted_cra: None,
        }
    }

    /// Whether `password` is the one stored, in constant time.
    pub fn matches(&self, password: &str) -> bool {
        derive(password, &self.salt, self.iterations).ct_eq(&self.key).into()
    }

    /// The WAMP-CRA signing key: the derived key in base64, as clients compute it.
    pub fn cra_key(&self) -> String {
        BASE64.encode(&self.key)
    }
}

/// A stand-in for a user who does not exist, indistinguishable on the wire from a real one: its
/// salt looks like a random salt but is stable for `authid` (an HMAC under the router's
/// `secret`), and checking a ticket against it costs the same PBKDF2 work. It matches nothing.
pub fn decoy(secret: &[u8; 32], authid: &str) -> StoredPassword {
    use hmac::Mac;
    let mut mac = crate::hmac_sha256(secret);
    mac.update(authid.as_bytes());
    let salt = hex::encode(&mac.finalize().into_bytes()[..16]);
    let mut stored = StoredPassword::with_salt("", &salt, DEFAULT_ITERATIONS);
    // No password derives to an all-zero key in practice; `matches` compares in constant time.
    stored.key = vec![0; KEY_LENGTH];
    stored
}

fn derive(password: &str, salt: &str, iterations: u32) -> Vec<u8> {
    let mut key = vec![0u8; KEY_LENGTH];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_password_matches_only_itself_and_is_not_kept_in_clear() {
        let stored = StoredPassword::new("s3cret");
        assert!(stored.matches("s3cret"));
        assert!(!stored.matches("s3cret "));
        assert!(!stored.key.windows(6).any(|w| w == b"s3cret"));
        assert_ne!(StoredPassword::new("s3cret").salt, stored.salt, "salts are random");
        let scram = stored.scram.as_ref().expect("new passwords get a scram credential");
        assert!(!scram.stored_key.windows(6).any(|w| w == b"s3cret"));
        assert!(!scram.server_key.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn decoys_look_like_real_salts_are_stable_and_match_nothing() {
        let secret = [3u8; 32];
        let decoy = decoy(&secret, "nobody");
        assert_eq!(decoy.salt.len(), StoredPassword::new("x").salt.len());
        assert!(decoy.salt.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(decoy, super::decoy(&secret, "nobody"));
        assert_ne!(decoy.salt, super::decoy(&secret, "somebody").salt);
        assert!(!decoy.matches(""));
    }

    #[test]
    fn cra_key_matches_autobahns_derive_key() {
        // autobahn.wamp.auth.derive_key("secret", "salt", 1000, 32), computed with Autobahn 26.10.2.
        let stored = StoredPassword::with_salt("secret", "salt", 1000);
        assert_eq!(stored.cra_key(), "qN+JnzxPIE2WfgrWPAkph8EAVeuwF7PZ0ordIY1Peq0=");
    }
}
