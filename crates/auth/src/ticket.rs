//! Ticket authentication: the client's AUTHENTICATE carries its ticket (here: its password).

use crate::AuthError;
use crate::password::StoredPassword;

/// Verifies a presented ticket against the stored password.
pub fn verify(stored: &StoredPassword, ticket: &str) -> Result<(), AuthError> {
    if stored.matches(ticket) { Ok(()) } else { Err(AuthError::BadSignature) }
}
