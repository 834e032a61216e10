//! The core's errors, and the one place they become `wamp.error.*` URIs.

use junction_wire::{Dict, Payload, Uri, Value};

/// Why the router refused a request. Each variant maps to one WAMP error URI ([`Error::uri`]);
/// the `Display` text is the human-readable message sent along with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URI is malformed, or lies in the reserved `wamp.` namespace.
    #[error("invalid URI \"{uri}\": {reason}")]
    InvalidUri {
        /// The offending URI.
        uri: Uri,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No registration matches a called procedure.
    #[error("no callee registered for procedure \"{0}\"")]
    NoSuchProcedure(Uri),
    /// The procedure is already registered (and shared registration does not apply); the
    /// message says why.
    #[error("{0}")]
    ProcedureAlreadyExists(String),
    /// UNREGISTER of a registration the session does not hold.
    #[error("no registration {0}")]
    NoSuchRegistration(u64),
    /// UNSUBSCRIBE of a subscription the session does not hold.
    #[error("no subscription {0}")]
    NoSuchSubscription(u64),
    /// The call ended because its callee left (or it was canceled).
    #[error("{0}")]
    Canceled(String),
    /// The call ran out of time (CALL.Options.timeout or the realm's default).
    #[error("{0}")]
    Timeout(String),
    /// Every callee of the procedure is busy (concurrency limit) or said it is unavailable.
    #[error("{0}")]
    NoAvailableCallee(String),
    /// A peer needed for the request did not announce a feature it requires.
    #[error("{0}")]
    FeatureNotSupported(String),
    /// The session lacks the permission; the message names it and the URI.
    #[error("{0}")]
    NotAuthorized(String),
    /// The credentials presented in AUTHENTICATE were not accepted.
    #[error("{0}")]
    AuthenticationFailed(String),
    /// Admin API: the thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// Admin API: the thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Admin API: `bondy.user.is_enabled` names a user that does not exist (Bondy's error).
    #[error("{0}")]
    NoSuchPrincipal(String),
    /// Admin API: a realm with users is deleted without `force`.
    #[error("{0}")]
    ActiveUsers(String),
    /// Admin API: the old password given to `change_password` is wrong.
    #[error("{0}")]
    BadSignature(String),
    /// Admin API: users or groups name groups that do not exist.
    #[error("no such groups: {0}")]
    NoSuchGroups(String),
    /// Admin API: a grant names roles that are neither users, groups, `all` nor `anonymous`.
    #[error("{0}")]
    UnknownRoles(String),
    /// Admin API: a property holds the most values it may (a user's aliases).
    #[error("{0}")]
    PropertyRangeLimit(String),
    /// The router failed (e.g. its store could not be written); the request had no effect.
    #[error("internal error: {0}")]
    Internal(String),
    /// An application payload is larger than the router accepts.
    #[error("{0}")]
    PayloadSizeExceeded(String),
    /// A configured limit (sessions, pending calls, subscriptions, registrations) is reached.
    #[error("{0}")]
    LimitExceeded(String),
    /// A request carries an option or argument the router cannot accept.
    #[error("{0}")]
    InvalidArgument(String),
    /// A meta procedure was asked about a session that does not exist.
    #[error("no session {0} on this realm")]
    NoSuchSession(u64),
    /// A peer broke the protocol; the session is aborted.
    #[error("{0}")]
    ProtocolViolation(String),
    /// HELLO named a prototype realm, which only lends its settings to other realms.
    #[error(
        "realm \"{0}\" is a prototype realm: it accepts no sessions; join a realm that inherits from it"
    )]
    RealmIsPrototype(Uri),
    /// HELLO named a realm whose `allow_connections` is false.
    #[error(
        "realm \"{0}\" does not allow connections now (allow_connections is false); sessions already joined stay"
    )]
    ConnectionsNotAllowed(Uri),
    /// Admin API: the data breaks a rule that spans values or realms (prototypes).
    #[error("{0}")]
    InvalidData(String),
    /// HELLO named a realm this router does not have.
    #[error("no realm \"{0}\" exists on this router")]
    NoSuchRealm(Uri),
    /// None of the authentication methods offered in HELLO is allowed on the realm.
    #[error("{0}")]
    NoMatchingAuthMethod(String),
}

impl Error {
    /// The WAMP error URI for this error.
    pub fn uri(&self) -> &'static str {
        match self {
            Error::InvalidUri { .. } => "wamp.error.invalid_uri",
            Error::NoSuchProcedure(_) => "wamp.error.no_such_procedure",
            Error::ProcedureAlreadyExists(_) => "wamp.error.procedure_already_exists",
            Error::NoSuchRegistration(_) => "wamp.error.no_such_registration",
            Error::NoSuchSubscription(_) => "wamp.error.no_such_subscription",
            Error::Canceled(_) => "wamp.error.canceled",
            Error::Timeout(_) => "wamp.error.timeout",
            Error::NoAvailableCallee(_) => "wamp.error.no_available_callee",
            Error::FeatureNotSupported(_) => "wamp.error.feature_not_supported",
            Error::InvalidArgument(_) => "wamp.error.invalid_argument",
            // The spec has no URI for resource limits; "not authorized to have more" is the
            // closest, and the message says which limit.
            Error::LimitExceeded(_) => "wamp.error.not_authorized",
            Error::PayloadSizeExceeded(_) => "wamp.error.payload_size_exceeded",
            Error::NotAuthorized(_) => "wamp.error.not_authorized",
            Error::AlreadyExists(_) => "bondy.error.already_exists",
            Error::NotFound(_) => "bondy.error.not_found",
            Error::NoSuchPrincipal(_) => "wamp.error.no_such_principal",
            Error::NoSuchGroups(_) => "bondy.error.no_such_groups",
            Error::PropertyRangeLimit(_) => "bondy.error.property_range_limit",
            Error::UnknownRoles(_) => "bondy.error.unknown_roles",
            Error::ActiveUsers(_) => "bondy.error.active_users",
            Error::BadSignature(_) => "bondy.error.bad_signature",
            Error::Internal(_) => "bondy.error.internal_error",
            Error::AuthenticationFailed(_) => "wamp.error.authentication_failed",
            Error::NoSuchSession(_) => "wamp.error.no_such_session",
            Error::ProtocolViolation(_) => "wamp.error.protocol_violation",
            Error::NoSuchRealm(_) => "wamp.error.no_such_realm",
            // Bondy's documentation names no reason for these; a prototype is not a realm a
            // client can join, and a closed realm refuses the client.
            Error::RealmIsPrototype(_) => "wamp.error.no_such_realm",
            Error::ConnectionsNotAllowed(_) => "wamp.error.not_authorized",
            Error::InvalidData(_) => "bondy.error.invalid_data",
            Error::NoMatchingAuthMethod(_) => "wamp.error.no_matching_auth_method",
        }
    }

    /// The same complaint about an argument of a call rather than an option of a message:
    /// options passed as meta API arguments are the caller's data, not a protocol breach.
    pub(crate) fn into_argument(self) -> Error {
        match self {
            Error::ProtocolViolation(message) => Error::InvalidArgument(message),
            other => other,
        }
    }

    /// The payload of an ERROR reply: the message as the single positional argument, as
    /// Autobahn and Crossbar expect.
    pub fn payload(&self) -> Payload {
        Payload::args(vec![Value::from(self.to_string())])
    }

    /// The details of an ABORT or GOODBYE: `{"message": …}`.
    pub fn details(&self) -> Dict {
        junction_wire::dict! { "message" => self.to_string() }
    }
}

/// The refusal to revoke what a session of another cluster node holds: only its own node
/// routes to it, so only that node can take it away.
pub(crate) fn remote_session(session: junction_wire::SessionId) -> Error {
    Error::InvalidArgument(format!(
        "session {session} is on another cluster node: revoke it through a session of that node"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_a_wamp_error_uri_and_a_message() {
        let uri = Uri::from("com.x");
        let all = [
            Error::InvalidUri { uri: uri.clone(), reason: "r" },
            Error::NoSuchProcedure(uri.clone()),
            Error::ProcedureAlreadyExists("p".into()),
            Error::NoSuchRegistration(1),
            Error::NoSuchSubscription(1),
            Error::Canceled("c".into()),
            Error::InvalidArgument("a".into()),
            Error::Timeout("t".into()),
            Error::LimitExceeded("l".into()),
            Error::PayloadSizeExceeded("p".into()),
            Error::NotAuthorized("n".into()),
            Error::AlreadyExists("a".into()),
            Error::NotFound("n".into()),
            Error::NoSuchPrincipal("n".into()),
            Error::NoSuchGroups("g".into()),
            Error::PropertyRangeLimit("p".into()),
            Error::UnknownRoles("r".into()),
            Error::Internal("i".into()),
            Error::AuthenticationFailed("a".into()),
            Error::NoAvailableCallee("n".into()),
            Error::FeatureNotSupported("f".into()),
            Error::NoSuchSession(1),
            Error::ProtocolViolation("p".into()),
            Error::NoSuchRealm(uri.clone()),
            Error::RealmIsPrototype(uri.clone()),
            Error::ConnectionsNotAllowed(uri.clone()),
            Error::InvalidData("d".into()),
            Error::NoMatchingAuthMethod("m".into()),
        ];
        for e in all {
            assert!(
                e.uri().starts_with("wamp.error.") || e.uri().starts_with("bondy.error."),
                "{e:?}"
            );
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            Error::NoSuchRealm(Uri::from("nope")).to_string(),
            "no realm \"nope\" exists on this router"
        );
    }
}
