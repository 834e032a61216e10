//! Limits that keep one client from taking more than its share. `None` means unlimited.
//! Every refusal is counted (`junction_limit_refusals_total`) and logged.

/// Router-wide limits, applied in every realm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Sessions on the whole router.
    pub max_sessions: Option<usize>,
    /// Sessions on one realm.
    pub max_sessions_per_realm: Option<usize>,
    /// Calls one session may have waiting for a result.
    pub max_pending_calls: Option<usize>,
    /// Subscriptions one session may hold.
    pub max_subscriptions: Option<usize>,
    /// Registrations one session may hold.
    pub max_registrations: Option<usize>,
    /// Encoded application payload (`Arguments` + `ArgumentsKw`) of one CALL, PUBLISH, YIELD or
    /// ERROR. Bigger payloads are refused with `wamp.error.payload_size_exceeded`.
    pub max_payload_size: Option<usize>,
}

/// Checks a payload's encoded size against `limit`.
pub(crate) fn check_payload(
    limit: Option<usize>,
    payload: &junction_wire::Payload,
) -> Result<(), crate::Error> {
    match limit {
        Some(max) if payload.encoded_len() > max => {
            metrics::counter!("junction_limit_refusals_total", "limit" => "payload size")
                .increment(1);
            Err(crate::Error::PayloadSizeExceeded(format!(
                "the payload of {} octets exceeds the limit of {max}",
                payload.encoded_len()
            )))
        }
        _ => Ok(()),
    }
}

/// Checks `current` against `limit`, counting and logging a refusal.
pub(crate) fn check(
    limit: Option<usize>,
    current: usize,
    what: &'static str,
) -> Result<(), crate::Error> {
    match limit {
        Some(max) if current >= max => {
            metrics::counter!("junction_limit_refusals_total", "limit" => what).increment(1);
            tracing::info!(limit = what, max, "refused: limit reached");
            Err(crate::Error::LimitExceeded(format!("limit reached: at most {max} {what}")))
        }
        _ => Ok(()),
    }
}
