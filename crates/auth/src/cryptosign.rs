//! WAMP-Cryptosign: the router sends 32 random octets (hex); the client answers with its Ed25519
//! signature over them (hex; Autobahn appends the challenge itself, 96 octets in all).

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rand::Rng;

use crate::AuthError;

/// A challenge: 32 random octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge(pub [u8; 32]);

impl Challenge {
    /// A fresh random challenge.
    pub fn new() -> Self {
        Self(rand::rng().random())
    }

    /// The challenge as sent in CHALLENGE.Extra.challenge.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Verifies the client's hex signature with its public key.
    pub fn verify(&self, public_key: &[u8; 32], signature_hex: &str) -> Result<(), AuthError> {
        let bytes = hex::decode(signature_hex.trim())
            .map_err(|_| AuthError::Malformed("signature is not hex"))?;
        // 64 octets of signature, optionally followed by the 32 octets of the signed challenge.
        let (signature, echoed) = match bytes.len() {
            64 => (&bytes[..], None),
            96 => (&bytes[..64], Some(&bytes[64..])),
            _ => return Err(AuthError::Malformed("signature must be 64 or 96 octets")),
        };
        if echoed.is_some_and(|e| e != self.0) {
            return Err(AuthError::BadSignature);
        }
        let signature = Signature::from_slice(signature)
            .map_err(|_| AuthError::Malformed("bad signature encoding"))?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| AuthError::NoCredential)?;
        key.verify(&self.0, &signature).map_err(|_| AuthError::BadSignature)
    }
}

impl Default for Challenge {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses a hex Ed25519 public key (64 hex digits).
pub fn parse_public_key(hex_key: &str) -> Option<[u8; 32]> {
    hex::decode(hex_key.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn a_signature_by_the_authorized_key_verifies_in_both_encodings() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let public = signing.verifying_key().to_bytes();
        let challenge = Challenge::new();
        let signature = signing.sign(&challenge.0).to_bytes();
        assert_eq!(challenge.verify(&public, &hex::encode(signature)), Ok(()));
        let with_challenge = [signature.as_slice(), &challenge.0].concat();
        assert_eq!(challenge.verify(&public, &hex::encode(with_challenge)), Ok(()));
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key().to_bytes();
        assert_eq!(challenge.verify(&other, &hex::encode(signature)), Err(AuthError::BadSignature));
        assert_eq!(
            challenge.verify(&public, "00"),
            Err(AuthError::Malformed("signature must be 64 or 96 octets"))
        );
    }

    #[test]
    fn public_keys_parse_from_hex() {
        let key = "ddc2838ede4304c1082c503f0af4f0c5ea7dea9fe436127643364c0670b69b08";
        assert!(parse_public_key(key).is_some());
        assert!(parse_public_key("abc").is_none());
    }
}
