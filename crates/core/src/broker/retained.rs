//! Event retention: the last event published with `retain: true`, per topic.

use junction_wire::{Dict, Payload, PublicationId};

use crate::options::PublishOptions;

/// A retained event: delivered to new subscribers that ask with `get_retained`, under the same
/// black/white lists it was published with.
pub(super) struct Retained {
    pub(super) publication: PublicationId,
    /// Publisher and passthru details, as the original EVENT carried them.
    pub(super) details: Dict,
    pub(super) payload: Payload,
    pub(super) options: PublishOptions,
}
