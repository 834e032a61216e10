//! Handles on the metrics that every message updates, registered once per message type.
//!
//! `metrics::counter!` with a label that is not a literal builds its key (a heap-allocated label
//! list), hashes it and looks it up in the recorder's registry on every call: about 2,500
//! instructions of a routed call's 34,000 went there (docs/benchmarks.md, "Instructions per
//! operation"). These handles are registered the first time each is used and kept for the life of
//! the process, so they belong to the recorder installed by then: `main` installs it before it
//! serves any connection. Registering on first use, not up front, keeps `/metrics` as it was (a
//! series appears once a message of its type was seen).

use std::sync::OnceLock;

use metrics::{Counter, Histogram};

use junction_wire::MessageType;

/// One slot per wire code; the highest code is YIELD's, 70.
const CODES: usize = 71;

/// The per-message metrics of every connection.
pub(crate) static MESSAGE_METRICS: MessageMetrics = MessageMetrics {
    received: [const { OnceLock::new() }; CODES],
    sent: [const { OnceLock::new() }; CODES],
    routing: OnceLock::new(),
};

pub(crate) struct MessageMetrics {
    /// `junction_messages_received_total{type}`, by wire code.
    received: [OnceLock<Counter>; CODES],
    /// `junction_messages_sent_total{type}`, by wire code.
    sent: [OnceLock<Counter>; CODES],
    /// `junction_routing_seconds`.
    routing: OnceLock<Histogram>,
}

impl MessageMetrics {
    /// Counts a message decoded from a client.
    pub(crate) fn received(&self, kind: MessageType) {
        let register =
            || metrics::counter!("junction_messages_received_total", "type" => kind.name());
        count(&self.received, kind, 1, register);
    }

    /// Counts `n` messages of one type written to a client.
    pub(crate) fn sent(&self, kind: MessageType, n: u64) {
        let register = || metrics::counter!("junction_messages_sent_total", "type" => kind.name());
        count(&self.sent, kind, n, register);
    }

    /// Records the time one received message took to handle.
    pub(crate) fn routing(&self, seconds: f64) {
        self.routing
            .get_or_init(|| metrics::histogram!("junction_routing_seconds"))
            .record(seconds);
    }
}

fn count(
    slots: &[OnceLock<Counter>; CODES],
    kind: MessageType,
    n: u64,
    register: impl Fn() -> Counter,
) {
    match usize::try_from(kind.code()).ok().and_then(|code| slots.get(code)) {
        Some(slot) => slot.get_or_init(register).increment(n),
        // Unreachable while every code is below `CODES`; still counted if one is added above.
        None => register().increment(n),
    }
}
