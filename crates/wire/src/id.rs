//! WAMP identifiers. The spec draws every ID from `[1, 2^53]` so that it survives a round trip
//! through an IEEE double (JSON); `0` only appears as the request of a revocation message.

/// The largest valid WAMP ID, `2^53`.
pub const MAX_ID: u64 = 1 << 53;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// The smallest value, 0 (only used by revocations).
            pub const MIN: Self = Self(0);
            /// The largest value, 2^53.
            pub const MAX: Self = Self(MAX_ID);

            /// Wraps `id` if it lies in `[0, 2^53]`.
            pub fn new(id: u64) -> Option<Self> {
                (id <= MAX_ID).then_some(Self(id))
            }

            /// The numeric value.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Identifies a session; global scope, drawn at random by the router.
    SessionId
);
id_type!(
    /// Identifies a request within one session and direction; starts at 1 and increments.
    RequestId
);
id_type!(
    /// Identifies a publication; global scope, drawn at random by the router.
    PublicationId
);
id_type!(
    /// Identifies a subscription; router scope, shared by every subscriber of one topic/match.
    SubscriptionId
);
id_type!(
    /// Identifies a registration; router scope, shared by every callee of one procedure/match.
    RegistrationId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_above_two_to_the_53_are_refused() {
        assert!(RequestId::new(MAX_ID).is_some());
        assert!(RequestId::new(MAX_ID + 1).is_none());
        assert_eq!(SessionId::new(0).map(SessionId::get), Some(0));
    }
}
