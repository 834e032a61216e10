//! WAMP-CRA (challenge-response authentication): the router sends a JSON challenge; the client
//! answers `base64(HMAC-SHA256(key, challenge))`.
//!
//! - *Salted* (the default): the key is the PBKDF2 derivation of the secret, and the router sends
//!   salt, iterations and key length along with the challenge.
//! - *Unsalted* (opt-in per user): the challenge comes alone and the key is the secret itself,
//!   as Autobahn and xconn do when the challenge has no `salt`. The router does not keep the
//!   secret: it keeps an [`UnsaltedKey`], the two SHA-256 states HMAC reaches after its first
//!   block, from which it finishes any HMAC under that key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;
use crate::password::{KEY_LENGTH, StoredPassword};

/// What the router remembers between CHALLENGE and AUTHENTICATE.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The challenge string (JSON) the client signs.
    pub challenge: String,
    /// What the client needs to derive its key, sent with the challenge; `None` for an
    /// unsalted challenge, which the client signs with its secret itself.
    pub salting: Option<Salting>,
}

/// The PBKDF2 parameters of a salted challenge (`CHALLENGE.Details.salt|iterations|keylen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salting {
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
    /// A fresh challenge for `who`: unsalted when `stored` carries an [`UnsaltedKey`] (the
    /// user opted in), otherwise salted with `stored`'s salt.
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
        let salting = stored.unsalted_cra.is_none().then(|| Salting {
            salt: stored.salt.clone(),
            iterations: stored.iterations,
            keylen: KEY_LENGTH,
        });
        Self { challenge, salting }
    }

    /// Verifies the client's signature, in constant time, with the key the challenge asked
    /// for: the salted derived key, or the unsalted key.
    pub fn verify(&self, stored: &StoredPassword, signature: &str) -> Result<(), AuthError> {
        let signature = BASE64
            .decode(signature.trim())
            .map_err(|_| AuthError::Malformed("signature is not base64"))?;
        if self.salting.is_none() {
            let key = stored.unsalted_cra.as_ref().ok_or(AuthError::NoCredential)?;
            let expected = key.mac(self.challenge.as_bytes());
            return if bool::from(expected.as_slice().ct_eq(&signature)) {
                Ok(())
            } else {
                Err(AuthError::BadSignature)
            };
        }
        let mut mac = crate::hmac_sha256(stored.cra_key().as_bytes());
        mac.update(self.challenge.as_bytes());
        mac.verify_slice(&signature).map_err(|_| AuthError::BadSignature)
    }
}

/// HMAC-SHA256 keyed with a secret, without the secret: the SHA-256 chaining states after
/// compressing the one block `key ⊕ ipad` (`inner`) and `key ⊕ opad` (`outer`), RFC 2104's
/// two hashes stopped after their first block. Any HMAC under the key finishes from them.
///
/// This is what the router stores for unsalted WAMP-CRA. It is *password-equivalent* for that
/// method (whoever has it can answer any challenge) and, unlike PBKDF2, costs a single hash to
/// test a guessed password against: it is only derived for users who opt in.
#[derive(Clone, PartialEq, Eq)]
pub struct UnsaltedKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

/// SHA-256's block size: HMAC pads (or first hashes) its key to this length.
const BLOCK: usize = 64;

/// SHA-256's initial chaining state (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

impl UnsaltedKey {
    /// The octets [`UnsaltedKey::to_bytes`] writes: the two states, big-endian.
    pub const LENGTH: usize = 64;

    /// Derives the states from `secret` (the password as UTF-8 octets for WAMP-CRA). A secret
    /// longer than a block is hashed first, as RFC 2104 says.
    pub fn derive(secret: &[u8]) -> Self {
        let mut key = [0u8; BLOCK];
        if secret.len() > BLOCK {
            key[..32].copy_from_slice(&Sha256::digest(secret));
        } else {
            key[..secret.len()].copy_from_slice(secret);
        }
        let pad = |byte: u8| {
            let mut block = key;
            block.iter_mut().for_each(|b| *b ^= byte);
            let mut state = SHA256_IV;
            sha2::block_api::compress256(&mut state, &[block]);
            state
        };
        Self { inner: pad(0x36), outer: pad(0x5c) }
    }

    /// `HMAC-SHA256(secret, message)`.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let inner = finish(self.inner, message);
        finish(self.outer, &inner)
    }

    /// The stored form: `inner` then `outer`, each as eight big-endian words.
    pub fn to_bytes(&self) -> [u8; Self::LENGTH] {
        let mut bytes = [0u8; Self::LENGTH];
        let words = self.inner.iter().chain(&self.outer);
        for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        bytes
    }

    /// Reads what [`UnsaltedKey::to_bytes`] wrote; `None` if it is not [`Self::LENGTH`] octets.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LENGTH {
            return None;
        }
        let mut words = bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        let mut state = || std::array::from_fn(|_| words.next().unwrap_or_default());
        let inner = state();
        let outer = state();
        Some(Self { inner, outer })
    }
}

impl std::fmt::Debug for UnsaltedKey {
    /// Never the states: they are password-equivalent.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsaltedKey(..)")
    }
}

/// Finishes a SHA-256 hash whose first block is already compressed into `state`: compresses
/// `rest`, then the padding (`0x80`, zeros, and the total length in bits, big-endian).
fn finish(mut state: [u32; 8], rest: &[u8]) -> [u8; 32] {
    let total_bits = ((BLOCK + rest.len()) as u64) * 8;
    let mut blocks = rest.chunks_exact(BLOCK);
    for block in blocks.by_ref() {
        let mut whole = [0u8; BLOCK];
        whole.copy_from_slice(block);
        sha2::block_api::compress256(&mut state, &[whole]);
    }
    let tail = blocks.remainder();
    // The tail, 0x80 and the 8-octet length take one block, or two when the tail is 56 or more.
    let mut last = [0u8; 2 * BLOCK];
    last[..tail.len()].copy_from_slice(tail);
    last[tail.len()] = 0x80;
    let end = if tail.len() < BLOCK - 8 { BLOCK } else { 2 * BLOCK };
    last[end - 8..end].copy_from_slice(&total_bits.to_be_bytes());
    for block in last[..end].chunks_exact(BLOCK) {
        let mut whole = [0u8; BLOCK];
        whole.copy_from_slice(block);
        sha2::block_api::compress256(&mut state, &[whole]);
    }
    let mut digest = [0u8; 32];
    for (chunk, word) in digest.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    digest
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

    /// The HMAC the `hmac` crate computes with the key itself (what RFC 2104 defines).
    fn reference_hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut mac = crate::hmac_sha256(key);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn unsalted_key_computes_the_same_hmac_as_the_key_itself_for_every_length() {
        // Keys shorter than, equal to and longer than a block (long ones are hashed first);
        // messages around every padding boundary (55/56 octets end in one or two blocks).
        let key_lengths = [0, 1, 6, 32, 63, 64, 65, 100, 200];
        let message_lengths = [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300];
        for key_len in key_lengths {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 7 + 3) as u8).collect();
            let unsalted = UnsaltedKey::derive(&key);
            for message_len in message_lengths {
                let message: Vec<u8> = (0..message_len).map(|i| (i * 13 + 1) as u8).collect();
                assert_eq!(
                    unsalted.mac(&message),
                    reference_hmac(&key, &message),
                    "key of {key_len} octets, message of {message_len}"
                );
            }
        }
    }

    #[test]
    fn unsalted_key_reads_back_from_its_bytes_and_hides_itself_in_debug() {
        let key = UnsaltedKey::derive(b"secret");
        assert_eq!(UnsaltedKey::from_bytes(&key.to_bytes()), Some(key.clone()));
        assert_eq!(UnsaltedKey::from_bytes(&[0; 63]), None);
        assert_ne!(key, UnsaltedKey::derive(b"secreT"));
        assert_eq!(format!("{key:?}"), "UnsaltedKey(..)");
        assert!(!key.to_bytes().windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn unsalted_signature_matches_autobahns_compute_wcs_with_the_plain_secret() {
        // autobahn.wamp.auth.compute_wcs(b"secret", b"challenge-text") (Python's hmac module).
        let mac = UnsaltedKey::derive(b"secret").mac(b"challenge-text");
        assert_eq!(BASE64.encode(mac), "mxgp4D2cwDLb3QxKchDHgQPyxLZSGHrTs8Qd/5Cv0FM=");
        assert_eq!(sign("secret", "challenge-text"), BASE64.encode(mac));
    }

    #[test]
    fn an_opted_in_user_gets_an_unsalted_challenge_answered_with_the_secret_itself() {
        let stored = StoredPassword::new_with("secret1", true);
        let challenge = Challenge::new(&identity(), &stored);
        assert_eq!(challenge.salting, None);
        assert_eq!(challenge.verify(&stored, &sign("secret1", &challenge.challenge)), Ok(()));
        assert_eq!(
            challenge.verify(&stored, &sign("secret2", &challenge.challenge)),
            Err(AuthError::BadSignature)
        );
        // The salted answer is not accepted for an unsalted challenge.
        let salted = sign(&stored.cra_key(), &challenge.challenge);
        assert_eq!(challenge.verify(&stored, &salted), Err(AuthError::BadSignature));
    }

    #[test]
    fn users_who_did_not_opt_in_get_salted_challenges() {
        let stored = StoredPassword::new("secret1");
        assert!(stored.unsalted_cra.is_none());
        let challenge = Challenge::new(&identity(), &stored);
        let salting = challenge.salting.clone().expect("salted by default");
        assert_eq!(salting.salt, stored.salt);
        assert_eq!(salting.keylen, KEY_LENGTH);
        // The plain secret does not answer a salted challenge.
        let plain = sign("secret1", &challenge.challenge);
        assert_eq!(challenge.verify(&stored, &plain), Err(AuthError::BadSignature));
        // An unsalted challenge for a user without the unsalted key verifies nothing.
        let unsalted = Challenge { salting: None, ..challenge };
        assert_eq!(unsalted.verify(&stored, &plain), Err(AuthError::NoCredential));
    }

    #[test]
    fn the_right_key_verifies_and_another_does_not() {
        let stored = StoredPassword::new("secret1");
        let challenge = Challenge::new(&identity(), &stored);
        assert!(challenge.challenge.contains("\"authmethod\":\"wampcra\""));
        assert!(challenge.salting.is_some());
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
