//! Publish & subscribe: PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, UNSUBSCRIBE, UNSUBSCRIBED, EVENT.

use super::{
    DecodeError, Element, Elements, Fields, acknowledgement_message, id_pair_message, message_kind,
    push_payload, request_options_uri_message,
};
use crate::id::{PublicationId, RequestId, SubscriptionId};
use crate::payload::Payload;
use crate::uri::Uri;
use crate::value::Dict;

/// `[PUBLISH, Request|id, Options|dict, Topic|uri(, Arguments(, ArgumentsKw))]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// The publisher's request id.
    pub request: RequestId,
    /// `acknowledge`, `exclude_me`, black/white lists, …
    pub options: Dict,
    /// The topic published to.
    pub topic: Uri,
    /// The event payload.
    pub payload: Payload,
}

/// `[PUBLISHED, PUBLISH.Request|id, Publication|id]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The PUBLISH request acknowledged.
    pub request: RequestId,
    /// The publication's id.
    pub publication: PublicationId,
}

/// `[SUBSCRIBE, Request|id, Options|dict, Topic|uri]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    /// The subscriber's request id.
    pub request: RequestId,
    /// `match` and other options.
    pub options: Dict,
    /// The topic (or pattern) subscribed to.
    pub topic: Uri,
}

/// `[SUBSCRIBED, SUBSCRIBE.Request|id, Subscription|id]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribed {
    /// The SUBSCRIBE request answered.
    pub request: RequestId,
    /// The subscription, shared by every subscriber of the same topic and match policy.
    pub subscription: SubscriptionId,
}

/// `[UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsubscribe {
    /// The subscriber's request id.
    pub request: RequestId,
    /// The subscription to leave.
    pub subscription: SubscriptionId,
}

/// `[UNSUBSCRIBED, UNSUBSCRIBE.Request|id]`, or with request `0` and details when the router
/// revokes a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsubscribed {
    /// The UNSUBSCRIBE request answered, or 0 for a revocation.
    pub request: RequestId,
    /// Revocation details (`subscription`, `reason`).
    pub details: Option<Dict>,
}

/// `[EVENT, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id, Details|dict(, Arguments(, ArgumentsKw))]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The subscription the event is delivered for.
    pub subscription: SubscriptionId,
    /// The publication's id.
    pub publication: PublicationId,
    /// `topic`, `publisher`, …
    pub details: Dict,
    /// The publisher's payload.
    pub payload: Payload,
}

message_kind!(Publish, Published, Subscribe, Subscribed, Unsubscribe, Unsubscribed, Event);
id_pair_message!(Published, request: RequestId = "PUBLISH.Request", publication: PublicationId = "Publication");
id_pair_message!(Subscribed, request: RequestId = "SUBSCRIBE.Request", subscription: SubscriptionId = "Subscription");
id_pair_message!(Unsubscribe, request: RequestId = "Request", subscription: SubscriptionId = "SUBSCRIBED.Subscription");
acknowledgement_message!(Unsubscribed, "UNSUBSCRIBE.Request");
request_options_uri_message!(Publish, topic = "Topic", payload);
request_options_uri_message!(Subscribe, topic = "Topic");

impl Event {
    pub(crate) fn parse(f: &mut Fields<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            subscription: f.id("SUBSCRIBED.Subscription", SubscriptionId::new)?,
            publication: f.id("PUBLISHED.Publication", PublicationId::new)?,
            details: f.dict("Details")?,
            payload: f.payload()?,
        })
    }
    pub(crate) fn push_elements<'a>(&'a self, out: &mut Elements<'a>) {
        out.extend([
            Element::UInt(self.subscription.get()),
            Element::UInt(self.publication.get()),
            Element::Dict(&self.details),
        ]);
        push_payload(out, &self.payload);
    }
}
