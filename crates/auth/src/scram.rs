//! WAMP-SCRAM (`scram`), as Autobahn|Python's `AuthScram` and Crossbar.io speak it, with the
//! Argon2id (version 1.3, `"argon2id-13"`) key derivation (spec:
//! advanced/authentication_scram.md, RFC 5802 / RFC 7677).
//!
//! The router stores only `StoredKey` and `ServerKey` (plus salt and KDF parameters) and never
//! runs the KDF while authenticating: the client does. The exchange:
//!
//! - HELLO `authextra.nonce`: the client nonce (base64); `channel_binding` null or absent.
//! - CHALLENGE `{nonce, salt, kdf, iterations, memory}`: `nonce` is the client nonce followed by
//!   the server's (both base64, concatenated as text as the spec shows), `salt` is base64.
//!   Nothing else: Autobahn refuses a challenge with other attributes.
//! - AUTHENTICATE: the signature is base64 `ClientProof`; `nonce`, `channel_binding` and
//!   `cbind_data` in its extra are checked when present (Autobahn sends none of them).
//! - WELCOME `authextra.scram_server_signature`: base64 `ServerSignature`, which Autobahn checks.
//!
//! Where Autobahn and Crossbar differ from the spec text, this follows them, since they are the
//! implementations clients meet:
//! - `SaltedPassword` is not the raw Argon2 output but its unpadded base64 text (the hash field
//!   of Argon2's PHC string), used as the HMAC key.
//! - `AuthMessage` is `n=<authid>,r=<client nonce>,r=<nonce>,s=<salt>,i=<iterations>,c=,r=<nonce>`:
//!   the channel-binding attribute is empty (the spec says base64 of `n,,`), and the authid is
//!   neither SASLprep-normalised nor escaped (the same for ASCII authids without `,` and `=`).
//! - The password is used as UTF-8 without SASLprep.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, STANDARD_NO_PAD as BASE64_NO_PAD};
use hmac::Mac;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;

/// The KDF type string Autobahn and Crossbar use for Argon2id version 1.3.
pub const KDF: &str = "argon2id-13";

/// Argon2id time cost (passes) for new credentials.
pub const DEFAULT_ITERATIONS: u32 = 2;

/// Argon2id memory cost in KiB for new credentials: 19 MiB with 2 passes and parallelism 1 is
/// OWASP's recommended Argon2id minimum. The client pays it, once per authentication.
pub const DEFAULT_MEMORY: u32 = 19 * 1024;

/// Salt length in octets (the spec recommends 128 bits).
pub const SALT_LENGTH: usize = 16;

/// Length of the keys and of the proof (SHA-256 output).
pub const KEY_LENGTH: usize = 32;

/// A user's SCRAM credential as the router stores it: no password, no `SaltedPassword`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The per-user random salt.
    pub salt: Vec<u8>,
    /// Argon2id time cost.
    pub iterations: u32,
    /// Argon2id memory cost in KiB.
    pub memory: u32,
    /// `SHA256(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: [u8; KEY_LENGTH],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; KEY_LENGTH],
}

impl ScramCredential {
    /// Derives a credential for `password` with a fresh random salt and the default costs.
    pub fn new(password: &str) -> Self {
        let salt: [u8; SALT_LENGTH] = rand::rng().random();
        Self::derive(password, &salt, DEFAULT_ITERATIONS, DEFAULT_MEMORY)
            .expect("the default Argon2 parameters are valid")
    }

    /// Derives a credential with the given salt and costs.
    pub fn derive(
        password: &str,
        salt: &[u8],
        iterations: u32,
        memory: u32,
    ) -> Result<Self, AuthError> {
        let salted = salted_password(password, salt, iterations, memory)?;
        let client_key = hmac(&salted, b"Client Key");
        Ok(Self {
            salt: salt.to_vec(),
            iterations,
            memory,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        })
    }
}

/// `SaltedPassword` as Autobahn computes it: Argon2id v1.3 (parallelism 1, 32 octets) of the
/// UTF-8 password, taken as the ASCII text of its unpadded base64 encoding.
pub fn salted_password(
    password: &str,
    salt: &[u8],
    iterations: u32,
    memory: u32,
) -> Result<Vec<u8>, AuthError> {
    let params = argon2::Params::new(memory, iterations, 1, Some(KEY_LENGTH))
        .map_err(|_| AuthError::Malformed("bad Argon2 parameters"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut raw = [0u8; KEY_LENGTH];
    argon
        .hash_password_into(password.as_bytes(), salt, &mut raw)
        .map_err(|_| AuthError::Malformed("bad Argon2 input"))?;
    Ok(BASE64_NO_PAD.encode(raw).into_bytes())
}

/// A stand-in credential for a user who does not exist or has none: the salt looks random but
/// is stable for `authid` (an HMAC under the router's `secret`, so the spec's "mock CHALLENGE"
/// cannot be told from a real one by asking twice), the costs are the defaults, and no proof
/// verifies against it. Costs no KDF work: the router never runs the KDF while authenticating.
pub fn decoy(secret: &[u8; 32], authid: &str) -> ScramCredential {
    let mut mac = crate::hmac_sha256(secret);
    mac.update(b"scram\0");
    mac.update(authid.as_bytes());
    let salt = mac.finalize().into_bytes()[..SALT_LENGTH].to_vec();
    ScramCredential {
        salt,
        iterations: DEFAULT_ITERATIONS,
        memory: DEFAULT_MEMORY,
        // No client key hashes to all zeros in practice; the comparison is constant-time.
        stored_key: [0; KEY_LENGTH],
        server_key: [0; KEY_LENGTH],
    }
}

/// What the router remembers between CHALLENGE and AUTHENTICATE.
#[derive(Debug, Clone)]
pub struct Challenge {
    authid: String,
    client_nonce: String,
    /// Client nonce followed by the server nonce, as sent.
    pub nonce: String,
    /// The salt as sent (base64).
    pub salt: String,
    /// Argon2id time cost as sent.
    pub iterations: u32,
    /// Argon2id memory cost as sent (KiB).
    pub memory: u32,
}

/// The client's AUTHENTICATE: its signature and the attributes of its extra.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    /// The signature: base64 `ClientProof`.
    pub proof: &'a str,
    /// `extra.nonce`, if the client echoed it.
    pub nonce: Option<&'a str>,
    /// `extra.channel_binding`, if not null.
    pub channel_binding: Option<&'a str>,
    /// `extra.cbind_data`, if not null.
    pub cbind_data: Option<&'a str>,
}

impl Challenge {
    /// A fresh challenge for `authid`, who sent `client_nonce` in HELLO. The nonce must be
    /// non-empty canonical base64.
    pub fn new(
        authid: &str,
        client_nonce: &str,
        credential: &ScramCredential,
    ) -> Result<Self, AuthError> {
        if !is_nonce(client_nonce) {
            return Err(AuthError::Malformed("the client nonce is not base64"));
        }
        let server_nonce: [u8; 16] = rand::rng().random();
        Ok(Self {
            authid: authid.to_owned(),
            client_nonce: client_nonce.to_owned(),
            nonce: format!("{client_nonce}{}", BASE64.encode(server_nonce)),
            salt: BASE64.encode(&credential.salt),
            iterations: credential.iterations,
            memory: credential.memory,
        })
    }

    /// The `AuthMessage` both sides sign (see the module documentation for its exact form).
    pub fn auth_message(&self) -> String {
        auth_message(&self.authid, &self.client_nonce, &self.nonce, &self.salt, self.iterations)
    }

    /// Verifies the client's proof against `credential`, in constant time. On success, the
    /// base64 `ServerSignature` for WELCOME's `authextra.scram_server_signature`.
    pub fn verify(
        &self,
        credential: &ScramCredential,
        answer: &Answer<'_>,
    ) -> Result<String, AuthError> {
        if answer.nonce.is_some_and(|n| n != self.nonce) {
            return Err(AuthError::Malformed("the nonce is not the one of the challenge"));
        }
        if answer.channel_binding.is_some() || answer.cbind_data.is_some() {
            return Err(AuthError::Malformed("channel binding is not supported"));
        }
        let proof = BASE64
            .decode(answer.proof.trim())
            .map_err(|_| AuthError::Malformed("the proof is not base64"))?;
        if proof.len() != KEY_LENGTH {
            return Err(AuthError::Malformed("the proof is not 32 octets"));
        }
        let message = self.auth_message();
        let client_signature = hmac(&credential.stored_key, message.as_bytes());
        let client_key: Vec<u8> = client_signature.iter().zip(&proof).map(|(s, p)| s ^ p).collect();
        let recovered: [u8; KEY_LENGTH] = Sha256::digest(&client_key).into();
        if bool::from(recovered.ct_eq(&credential.stored_key)) {
            Ok(BASE64.encode(hmac(&credential.server_key, message.as_bytes())))
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

/// The CHALLENGE's attributes, as a client reads them.
#[derive(Debug, Clone, Copy)]
pub struct ServerFirst<'a> {
    /// `nonce`: client nonce and server nonce.
    pub nonce: &'a str,
    /// `salt`, base64.
    pub salt: &'a str,
    /// `iterations`.
    pub iterations: u32,
    /// `memory`.
    pub memory: u32,
}

impl Challenge {
    /// The attributes this challenge sends.
    pub fn server_first(&self) -> ServerFirst<'_> {
        ServerFirst {
            nonce: &self.nonce,
            salt: &self.salt,
            iterations: self.iterations,
            memory: self.memory,
        }
    }
}

/// What a client computes from the CHALLENGE: the base64 `ClientProof` for AUTHENTICATE and the
/// base64 `ServerSignature` it expects in WELCOME (for tests and the bundled client).
pub fn client_final(
    password: &str,
    authid: &str,
    client_nonce: &str,
    challenge: &ServerFirst<'_>,
) -> Result<(String, String), AuthError> {
    let salt = BASE64.decode(challenge.salt).map_err(|_| AuthError::Malformed("salt"))?;
    let salted = salted_password(password, &salt, challenge.iterations, challenge.memory)?;
    let message =
        auth_message(authid, client_nonce, challenge.nonce, challenge.salt, challenge.iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key: [u8; KEY_LENGTH] = Sha256::digest(client_key).into();
    let signature = hmac(&stored_key, message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
    let server_signature = hmac(&hmac(&salted, b"Server Key"), message.as_bytes());
    Ok((BASE64.encode(proof), BASE64.encode(server_signature)))
}

fn auth_message(
    authid: &str,
    client_nonce: &str,
    nonce: &str,
    salt: &str,
    iterations: u32,
) -> String {
    format!("n={authid},r={client_nonce},r={nonce},s={salt},i={iterations},c=,r={nonce}")
}

/// Non-empty canonical base64.
fn is_nonce(nonce: &str) -> bool {
    !nonce.is_empty() && BASE64.decode(nonce).is_ok_and(|bytes| BASE64.encode(bytes) == nonce)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; KEY_LENGTH] {
    let mut mac = crate::hmac_sha256(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Small costs keep the tests fast; the computation is the same.
    fn credential(password: &str) -> ScramCredential {
        ScramCredential::derive(password, b"0123456789abcdef", 1, 64).unwrap()
    }

    const CLIENT_NONCE: &str = "egVDf3DMJh0=";

    #[test]
    fn salted_password_is_argon2id_13_as_phc_base64() {
        // RFC 9106 has no parallelism-1 vector; this one is argon2-cffi 25.1.0's
        // hash_secret(b"password", b"somesalt", time_cost=2, memory_cost=65536, parallelism=1,
        // hash_len=32, type=ID, version=19), whose PHC string ends with this hash field.
        let salted = salted_password("password", b"somesalt", 2, 65536).unwrap();
        assert_eq!(
            String::from_utf8(salted).unwrap(),
            "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
        );
    }

    #[test]
    fn proofs_computed_by_autobahn_verify_and_the_server_signature_is_the_one_it_expects() {
        // autobahn.wamp.auth.AuthScram(authid="joe", password="s3cret") 26.10.2, client nonce
        // "egVDf3DMJh0=", on_challenge of this challenge; the server signature is what its
        // on_welcome compares with.
        let stored = credential("s3cret");
        let challenge = Challenge {
            authid: "joe".into(),
            client_nonce: CLIENT_NONCE.into(),
            nonce: "egVDf3DMJh0=SBmkFIh7sSo=".into(),
            salt: BASE64.encode(b"0123456789abcdef"),
            iterations: 1,
            memory: 64,
        };
        assert_eq!(
            challenge.auth_message(),
            "n=joe,r=egVDf3DMJh0=,r=egVDf3DMJh0=SBmkFIh7sSo=,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=1,\
             c=,r=egVDf3DMJh0=SBmkFIh7sSo="
        );
        let answer =
            Answer { proof: "YZy2oSoj5X6W9rjOGyUhodaCQ2+umkQSJ4aH9IUqZ4w=", ..Answer::default() };
        assert_eq!(
            challenge.verify(&stored, &answer).as_deref(),
            Ok("7NkCFCHeqB4GtGiN4qF4NA6g32byBX5NDgzXC8fe45M=")
        );
    }

    #[test]
    fn the_right_password_verifies_and_the_server_signature_matches() {
        let stored = credential("s3cret");
        let challenge = Challenge::new("joe", CLIENT_NONCE, &stored).unwrap();
        assert!(challenge.nonce.starts_with(CLIENT_NONCE));
        assert!(challenge.nonce.len() > CLIENT_NONCE.len());
        assert_eq!(BASE64.decode(&challenge.salt).unwrap(), b"0123456789abcdef");
        let (proof, expected_server_signature) =
            client_final("s3cret", "joe", CLIENT_NONCE, &challenge.server_first()).unwrap();
        let answer = Answer { proof: &proof, ..Answer::default() };
        assert_eq!(challenge.verify(&stored, &answer), Ok(expected_server_signature));
        // Echoing the nonce is fine; another nonce or channel binding is not.
        let echoed = Answer { nonce: Some(&challenge.nonce), ..answer };
        assert!(challenge.verify(&stored, &echoed).is_ok());
        let other = Answer { nonce: Some(CLIENT_NONCE), ..answer };
        assert!(matches!(challenge.verify(&stored, &other), Err(AuthError::Malformed(_))));
        let bound = Answer { channel_binding: Some("tls-unique"), ..answer };
        assert!(matches!(challenge.verify(&stored, &bound), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn a_wrong_password_or_a_replayed_proof_is_refused() {
        let stored = credential("s3cret");
        let challenge = Challenge::new("joe", CLIENT_NONCE, &stored).unwrap();
        let (wrong, _) =
            client_final("s3cret!", "joe", CLIENT_NONCE, &challenge.server_first()).unwrap();
        let answer = Answer { proof: &wrong, ..Answer::default() };
        assert_eq!(challenge.verify(&stored, &answer), Err(AuthError::BadSignature));
        // A proof for one challenge does not answer another (fresh server nonce).
        let (proof, _) =
            client_final("s3cret", "joe", CLIENT_NONCE, &challenge.server_first()).unwrap();
        let next = Challenge::new("joe", CLIENT_NONCE, &stored).unwrap();
        let replay = Answer { proof: &proof, ..Answer::default() };
        assert_eq!(next.verify(&stored, &replay), Err(AuthError::BadSignature));
        for bad in ["%%%", "AAAA"] {
            let answer = Answer { proof: bad, ..Answer::default() };
            assert!(matches!(challenge.verify(&stored, &answer), Err(AuthError::Malformed(_))));
        }
    }

    #[test]
    fn client_nonces_must_be_base64() {
        let stored = credential("x");
        for bad in ["", "not base64!", "egVDf3DMJh0"] {
            assert!(Challenge::new("joe", bad, &stored).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decoys_look_like_real_credentials_are_stable_and_verify_nothing() {
        let secret = [5u8; 32];
        let decoy = decoy(&secret, "nobody");
        assert_eq!(decoy, super::decoy(&secret, "nobody"));
        assert_ne!(decoy.salt, super::decoy(&secret, "somebody").salt);
        assert_eq!(decoy.salt.len(), SALT_LENGTH);
        assert_eq!((decoy.iterations, decoy.memory), (DEFAULT_ITERATIONS, DEFAULT_MEMORY));
        let challenge = Challenge::new("nobody", CLIENT_NONCE, &decoy).unwrap();
        let (proof, _) =
            client_final("", "nobody", CLIENT_NONCE, &challenge.server_first()).unwrap();
        let answer = Answer { proof: &proof, ..Answer::default() };
        assert!(challenge.verify(&decoy, &answer).is_err());
    }

    #[test]
    fn new_credentials_use_random_salts_and_the_default_costs() {
        let a = ScramCredential::new("pw");
        let b = ScramCredential::new("pw");
        assert_ne!(a.salt, b.salt);
        assert_ne!(a.stored_key, b.stored_key);
        assert_eq!((a.iterations, a.memory, a.salt.len()), (2, 19 * 1024, SALT_LENGTH));
    }
}
