//! WAMP-Cryptosign: the router sends 32 random octets (hex); the client answers with its Ed25519
//! signature over them (hex; Autobahn appends the signed message itself, 96 octets in all).
//!
//! With TLS channel binding the client signs the challenge XOR the connection's 32-octet channel
//! id instead, so that a signature cannot be replayed over another TLS connection.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rand::Rng;
use sha2::Digest;

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

    /// What the client signs: the challenge, XOR the channel id when channel binding is on.
    pub fn message(&self, channel_id: Option<&[u8; 32]>) -> [u8; 32] {
        let mut message = self.0;
        if let Some(id) = channel_id {
            message.iter_mut().zip(id).for_each(|(m, c)| *m ^= c);
        }
        message
    }

    /// Verifies the client's hex signature with its public key, over the challenge bound to
    /// `channel_id` when channel binding is on.
    pub fn verify(
        &self,
        public_key: &[u8; 32],
        signature_hex: &str,
        channel_id: Option<&[u8; 32]>,
    ) -> Result<(), AuthError> {
        let message = self.message(channel_id);
        let bytes = hex::decode(signature_hex.trim())
            .map_err(|_| AuthError::Malformed("signature is not hex"))?;
        // 64 octets of signature, optionally followed by the 32 octets of the signed message.
        let (signature, echoed) = match bytes.len() {
            64 => (&bytes[..], None),
            96 => (&bytes[..64], Some(&bytes[64..])),
            _ => return Err(AuthError::Malformed("signature must be 64 or 96 octets")),
        };
        if echoed.is_some_and(|e| e != message) {
            return Err(AuthError::BadSignature);
        }
        let signature = Signature::from_slice(signature)
            .map_err(|_| AuthError::Malformed("bad signature encoding"))?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| AuthError::NoCredential)?;
        key.verify(&message, &signature).map_err(|_| AuthError::BadSignature)
    }
}

impl Default for Challenge {
    fn default() -> Self {
        Self::new()
    }
}

/// The channel id of a `tls-unique` binding (the TLS Finished message, 12 octets in TLS 1.2):
/// its SHA-256, as Autobahn computes it (the spec asks for 32 octets and does not say how).
pub fn tls_unique_channel_id(finished: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(finished).into()
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
    fn the_tls_unique_channel_id_is_the_sha256_of_the_finished_message() {
        // hashlib.sha256(bytes([0x5a] * 12)).hexdigest()
        let expected = "bb134d483f1c01bd2a5db5cc1045c826c01e88e3f4e0fa2423ab4bf9196730e6";
        assert_eq!(hex::encode(tls_unique_channel_id(&[0x5a; 12])), expected);
    }

    #[test]
    fn a_signature_by_the_authorized_key_verifies_in_both_encodings() {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let public = signing.verifying_key().to_bytes();
        let challenge = Challenge::new();
        let signature = signing.sign(&challenge.0).to_bytes();
        assert_eq!(challenge.verify(&public, &hex::encode(signature), None), Ok(()));
        let with_challenge = [signature.as_slice(), &challenge.0].concat();
        assert_eq!(challenge.verify(&public, &hex::encode(with_challenge), None), Ok(()));
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key().to_bytes();
        assert_eq!(
            challenge.verify(&other, &hex::encode(signature), None),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            challenge.verify(&public, "00", None),
            Err(AuthError::Malformed("signature must be 64 or 96 octets"))
        );
    }

    /// The spec's test vectors (authentication_cryptosign.md): private key, channel id,
    /// challenge, and the signature followed by the signed message.
    const VECTORS: [(&str, Option<&str>, &str, &str); 6] = [
        (
            "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
            None,
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "b32675b221f08593213737bef8240e7c15228b07028e19595294678c90d11c0cae80a357331bfc5cc9fb71081464e6e75013517c2cf067ad566a6b7b728e5d03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ),
        (
            "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
            None,
            "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
            "d4209ad10d5aff6bfbc009d7e924795de138a63515efc7afc6b01b7fe5201372190374886a70207b042294af5bd64ce725cd8dceb344e6d11c09d1aaaf4d660fb26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
        ),
        (
            "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
            None,
            "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
            "7beb282184baadd08f166f16dd683b39cab53816ed81e6955def951cb2ddad1ec184e206746fd82bda075af03711d3d5658fc84a76196b0fa8d1ebc92ef9f30bb05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
        ),
        (
            "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
            Some("62e935ae755f3d48f80d4d59f6121358c435722a67e859cc0caa8b539027f2ff"),
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "9b6f41540c9b95b4b7b281c3042fa9c54cef43c842d62ea3fd6030fcb66e70b3e80d49d44c29d1635da9348d02ec93f3ed1ef227dfb59a07b580095c2b82f80f9d16ca518aa0c2b707f2b2a609edeca73bca8dd59817a633f35574ac6fd80d00",
        ),
        (
            "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
            Some("62e935ae755f3d48f80d4d59f6121358c435722a67e859cc0caa8b539027f2ff"),
            "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
            "305aaa3ac25e98f651427688b3fc43fe7d8a68a7ec1d7d61c61517c519bd4a427c3015599d83ca28b4c652333920223844ef0725eb5dc2febfd6af7677b73f01d0852a29b460fc92ec943242ac638a053bbacc200512b18b30d15083cbdc9282",
        ),
        (
            "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
            Some("62e935ae755f3d48f80d4d59f6121358c435722a67e859cc0caa8b539027f2ff"),
            "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
            "ee3c7644fd8070532bc1fde3d70d742267da545d8c8f03e63bda63f1ad4214f4d2c4bfdb4eb9526def42deeb7e31602a6ff99eba893e0a4ad4d45892ca75e608d2b75e24a189a7f78ca776ba36fc53f6c3e31c32f251f2c524f0a44202f2902d",
        ),
    ];

    fn bytes32(hex_text: &str) -> [u8; 32] {
        hex::decode(hex_text).unwrap().try_into().unwrap()
    }

    #[test]
    fn the_spec_test_vectors_verify_with_and_without_channel_binding() {
        for (private, channel_id, challenge, signature) in VECTORS {
            let signing = SigningKey::from_bytes(&bytes32(private));
            let public = signing.verifying_key().to_bytes();
            let challenge = Challenge(bytes32(challenge));
            let channel_id = channel_id.map(bytes32);
            // The signature this module would expect is the vector's.
            let message = challenge.message(channel_id.as_ref());
            let ours = [signing.sign(&message).to_bytes().as_slice(), &message].concat();
            assert_eq!(hex::encode(ours), signature);
            assert_eq!(challenge.verify(&public, signature, channel_id.as_ref()), Ok(()));
            // Bound to another channel (or to none), the same signature fails.
            let other = match channel_id {
                Some(_) => None,
                None => Some([0x5a; 32]),
            };
            assert_eq!(
                challenge.verify(&public, signature, other.as_ref()),
                Err(AuthError::BadSignature)
            );
        }
    }

    #[test]
    fn public_keys_parse_from_hex() {
        let key = "ddc2838ede4304c1082c503f0af4f0c5ea7dea9fe436127643364c0670b69b08";
        assert!(parse_public_key(key).is_some());
        assert!(parse_public_key("abc").is_none());
    }
}
