//! Ticket authentication: the client's AUTHENTICATE carries its ticket, which is either its
//! password (a static ticket) or a ticket the router issued (`bondy.ticket.issue`).
//!
//! An issued ticket is `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`
//! (no padding), keyed by a router secret. The signature only proves the router wrote the
//! claims; whether the ticket is still valid (not revoked, not expired) is the router's call.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::AuthError;
use crate::password::StoredPassword;

/// Verifies a presented ticket against the stored password.
pub fn verify(stored: &StoredPassword, ticket: &str) -> Result<(), AuthError> {
    if stored.matches(ticket) { Ok(()) } else { Err(AuthError::BadSignature) }
}

/// What an issued ticket asserts (Bondy's claims: local and client-local scopes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The ticket's unique id (what revocation names).
    pub id: String,
    /// The user the ticket authenticates.
    pub authid: String,
    /// The realm the ticket is valid on.
    pub realm: String,
    /// Who issued it (the issuing session's authid).
    pub issued_by: String,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; the ticket is refused from then on.
    pub expires_at: u64,
    /// For a client ticket: the client application's authid, whose own ticket vouched for
    /// this one (Bondy's `client_local` scope); `None` for a user's own ticket.
    pub client_id: Option<String>,
    /// The client's instance, as the client named it when asking.
    pub client_instance_id: Option<String>,
}

impl Claims {
    /// The claims as JSON (also what `bondy.ticket.verify` answers).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "authid": self.authid,
            "authrealm": self.realm,
            "issued_by": self.issued_by,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "scope": {
                "realm": self.realm,
                "client_id": self.client_id,
                "client_instance_id": self.client_instance_id,
            },
        })
    }

    /// Claims from their JSON form.
    pub fn from_json(value: &Value) -> Option<Self> {
        let s = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
        let n = |k: &str| value.get(k).and_then(Value::as_u64);
        let scope = |k: &str| value.get("scope")?.get(k)?.as_str().map(str::to_owned);
        Some(Self {
            id: s("id")?,
            authid: s("authid")?,
            realm: s("authrealm")?,
            issued_by: s("issued_by")?,
            issued_at: n("issued_at")?,
            expires_at: n("expires_at")?,
            client_id: scope("client_id"),
            client_instance_id: scope("client_instance_id"),
        })
    }

    /// Signs the claims into a ticket string.
    pub fn sign(&self, key: &[u8; 32]) -> String {
        let payload = B64.encode(self.to_json().to_string());
        let signature = B64.encode(mac(key, &payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The claims of a ticket this key signed; says nothing about expiry or revocation.
    pub fn open(key: &[u8; 32], ticket: &str) -> Result<Self, AuthError> {
        let (payload, signature) = ticket.split_once('.').ok_or(AuthError::BadSignature)?;
        let signature = B64.decode(signature).map_err(|_| AuthError::BadSignature)?;
        mac(key, payload).verify_slice(&signature).map_err(|_| AuthError::BadSignature)?;
        let json = B64.decode(payload).map_err(|_| AuthError::Malformed("ticket payload"))?;
        serde_json::from_slice(&json)
            .ok()
            .and_then(|v: Value| Self::from_json(&v))
            .ok_or(AuthError::Malformed("ticket claims"))
    }
}

fn mac(key: &[u8; 32], payload: &str) -> Hmac<Sha256> {
    let mut mac = crate::hmac_sha256(key);
    mac.update(payload.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            id: "t1".into(),
            authid: "joe".into(),
            realm: "com.example".into(),
            issued_by: "joe".into(),
            issued_at: 100,
            expires_at: 200,
            client_id: None,
            client_instance_id: None,
        }
    }

    #[test]
    fn a_signed_ticket_opens_to_its_claims() {
        let ticket = claims().sign(&[7; 32]);
        assert_eq!(Claims::open(&[7; 32], &ticket).unwrap(), claims());
    }

    #[test]
    fn a_client_ticket_keeps_its_client_in_the_scope() {
        let client = Claims {
            client_id: Some("webapp".into()),
            client_instance_id: Some("tab-1".into()),
            ..claims()
        };
        assert_eq!(Claims::open(&[7; 32], &client.sign(&[7; 32])).unwrap(), client);
        assert_eq!(client.to_json()["scope"]["client_id"], "webapp");
    }

    #[test]
    fn another_key_or_a_changed_payload_is_refused() {
        let ticket = claims().sign(&[7; 32]);
        assert!(Claims::open(&[8; 32], &ticket).is_err());
        let (_, signature) = ticket.split_once('.').unwrap();
        let forged = Claims { authid: "admin".into(), ..claims() }.sign(&[9; 32]);
        let (payload, _) = forged.split_once('.').unwrap();
        assert!(Claims::open(&[7; 32], &format!("{payload}.{signature}")).is_err());
        assert!(Claims::open(&[7; 32], "no-dot").is_err());
        assert!(Claims::open(&[7; 32], "").is_err());
    }
}
