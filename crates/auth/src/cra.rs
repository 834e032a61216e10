//! WAMP-CRA (challenge-response authentication): the router sends a JSON challenge; the client
//! answers `base64(HMAC-SHA256(key, challenge))`, where the key is the salted PBKDF2 derivation
//! of its secret (the router sends salt, iterations and key length).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;
use rand::Rng;

use crate::AuthError;
use crate::password::{KEY_LENGTH, StoredPassword};

/// What the router remembers between CHALLENGE and AUTHENTICATE.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The challenge string (JSON) the client signs.
    pub challenge: String,
    /// The salt sent to the client.
    pub salt: String,
    /// The iteration count sent to the client.
    pub iterations: u32,
    /// The key length sent to the client.
    pub keylen: usize,
}

/// The identity a challenge is issued for.
pub struct Identity<'a> {
    /// The user.
    pub authid: &'a str,
    /// The role the session will have.
    pub authrole: &'a str,
    /// Who authenticates.
    pub authprovider: &'a str,
    /// The session id the router will give.
    pub session: u64,
    /// The current time, RFC 3339.
    pub timestamp: &'a str,
}

impl Challenge {
    /// A fresh challenge for `who`, keyed with `stored`'s salt.
    pub fn new(who: &Identity<'_>, stored: &StoredPassword) -> Self {
        let nonce: [u8; 16] = rand::rng().random();
        let challenge = serde_json::json!({
            "authid": who.authid,
            "authrole": who.authrole,
            "authmethod": "wampcra",
            "authprovider": who.authprovider,
            "nonce": hex::encode(nonce),
            "timestamp": who.timestamp,
            "session": who.session,
        })
        .to_string();
        Self {
            challenge,
            salt: stored.salt.clone(),
            iterations: stored.iterations,
            keylen: KEY_LENGTH,
        }
    }

    /// Verifies the client's signature, in constant time.
    pub fn verify(&self, stored: &StoredPassword, signature: &str) -> Result<(), AuthError> {
        let signature = BASE64
            .decode(signature.trim())
            .map_err(|_| AuthError::Malformed("signature is not base64"))?;
        let mut mac = crate::hmac_sha256(stored.cra_key().as_bytes());
        mac.update(self.challenge.as_bytes());
        mac.verify_slice(&signature).map_err(|_| AuthError::BadSignature)
    }
}

/// The signature a client with `key` computes (for tests and the bundled client).
pub fn sign(key: &str, challenge: &str) -> String {
    let mut mac = crate::hmac_sha256(key.as_bytes());
    mac.update(challenge.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity<'static> {
        Identity {
            authid: "joe",
            authrole: "user",
            authprovider: "junction",
            session: 7,
            timestamp: "2026-01-01T00:00:00Z",
        }
    }

    #[test]
    fn signature_matches_autobahns_compute_wcs() {
        // autobahn.wamp.auth.compute_wcs(derive_key("secret", "salt", 1000, 32), "challenge-text").
        let key = StoredPassword::with_salt("secret", "salt", 1000).cra_key();
        assert_eq!(sign(&key, "challenge-text"), "lWlEf6ieb+rMIpCneARhLxGSr5i3s/MMApt2YHwAg9A=");
    }

    #[test]
    fn the_right_key_verifies_and_another_does_not() {
        let stored = StoredPassword::new("secret1");
        let challenge = Challenge::new(&identity(), &stored);
        assert!(challenge.challenge.contains("\"authmethod\":\"wampcra\""));
        let good = sign(
            &StoredPassword::with_salt("secret1", &stored.salt, stored.iterations).cra_key(),
            &challenge.challenge,
        );
        assert_eq!(challenge.verify(&stored, &good), Ok(()));
        let bad = sign(
            &StoredPassword::with_salt("secret2", &stored.salt, stored.iterations).cra_key(),
            &challenge.challenge,
        );
        assert_eq!(challenge.verify(&stored, &bad), Err(AuthError::BadSignature));
        assert_eq!(
            challenge.verify(&stored, "%%%"),
            Err(AuthError::Malformed("signature is not base64"))
        );
    }
}
