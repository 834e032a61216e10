//! Authentication for Junction: credential hashing and the challenge-response methods of the
//! spec's "Authentication" pages. Pure functions over bytes and strings: the session state
//! machine (in `junction-core`) asks for a challenge, sends it, and verifies the answer here.
//!
//! Layout:
//! - [`password`]: how passwords are stored — only as a salted PBKDF2-SHA256 derived key, and
//!   as a SCRAM credential.
//! - [`ticket`]: `ticket`: the client sends its password; compared through the derived key.
//! - [`cra`]: `wampcra`: HMAC-SHA256 over a router challenge, keyed with the salted derived key
//!   (as Autobahn and xconn compute it), or for users who opt in, with the password itself
//!   (unsalted), which the router holds only as HMAC's two precomputed SHA-256 states.
//! - [`cryptosign`]: `cryptosign`: an Ed25519 signature over a random 32-byte challenge.
//! - [`scram`]: `scram` (WAMP-SCRAM with Argon2id): the client proves it knows the password
//!   without sending it; the router keeps only `StoredKey` and `ServerKey`.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod cra;
pub mod cryptosign;
pub mod password;
pub mod scram;
pub mod ticket;

use hmac::{Hmac, KeyInit};
use sha2::Sha256;

/// HMAC-SHA256 keyed with `key`, for every method and decoy that needs one.
fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed first), so this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// Why an authentication attempt failed. The variants are for logs and tests; what the client
/// hears is decided by the caller, which must not reveal whether a user exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The answer does not match the credential.
    #[error("the signature or ticket does not match")]
    BadSignature,
    /// The answer is not in the expected format (hex, base64, length).
    #[error("malformed authentication answer: {0}")]
    Malformed(&'static str),
    /// The user has no credential for this method.
    #[error("no credential for this method")]
    NoCredential,
}
