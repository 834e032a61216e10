//! Meta events, published by the router into the realm where something happened. Order
//! guarantees (spec): `on_create` before `on_subscribe`/`on_register`, `on_unsubscribe`/
//! `on_unregister` before `on_delete`.

use junction_wire::{Dict, Payload, RegistrationId, SessionId, SubscriptionId, Uri, Value, dict};

use crate::broker::Subscription;
use crate::dealer::Registration;
use crate::options::PublishOptions;
use crate::realm::{Peer, Realm};

impl Realm {
    /// Publishes a meta event with positional arguments.
    fn publish_meta(&self, topic: &str, args: Vec<Value>) {
        let options = PublishOptions {
            exclude_me: false,
            ..PublishOptions::default()
        };
        self.broker
            .publish(None, &Uri::from(topic), &options, Payload::args(args));
    }

    /// `wamp.session.on_join`, with the session's full description.
    pub(crate) fn meta_joined(&self, peer: &Peer) {
        self.publish_meta(
            "wamp.session.on_join",
            vec![Value::Dict(peer.info().to_dict())],
        );
    }

    /// `wamp.session.on_leave`: `[session, authid, authrole]`.
    pub(crate) fn meta_left(&self, peer: &Peer) {
        let info = peer.info();
        let args = vec![
            Value::from(info.id.get()),
            Value::from(info.authid.as_str()),
            Value::from(info.authrole.as_str()),
        ];
        self.publish_meta("wamp.session.on_leave", args);
    }

    /// `wamp.subscription.on_create` (when `created`) then `on_subscribe`.
    pub(crate) fn meta_subscribed(&self, session: SessionId, id: SubscriptionId, created: bool) {
        if created && let Some(details) = self.broker.with(id, subscription_details) {
            self.publish_meta(
                "wamp.subscription.on_create",
                vec![Value::from(session.get()), Value::Dict(details)],
            );
        }
        self.publish_meta(
            "wamp.subscription.on_subscribe",
            vec![Value::from(session.get()), Value::from(id.get())],
        );
    }

    /// `wamp.subscription.on_unsubscribe` then, when the subscription is gone, `on_delete`.
    pub(crate) fn meta_unsubscribed(&self, session: SessionId, id: SubscriptionId, deleted: bool) {
        let args = vec![Value::from(session.get()), Value::from(id.get())];
        self.publish_meta("wamp.subscription.on_unsubscribe", args.clone());
        if deleted {
            self.publish_meta("wamp.subscription.on_delete", args);
        }
    }

    /// `wamp.registration.on_create` (when `created`) then `on_register`.
    pub(crate) fn meta_registered(&self, session: SessionId, id: RegistrationId, created: bool) {
        if created && let Some(details) = self.dealer.with(id, registration_details) {
            self.publish_meta(
                "wamp.registration.on_create",
                vec![Value::from(session.get()), Value::Dict(details)],
            );
        }
        self.publish_meta(
            "wamp.registration.on_register",
            vec![Value::from(session.get()), Value::from(id.get())],
        );
    }

    /// `wamp.registration.on_unregister` then, when the registration is gone, `on_delete`.
    pub(crate) fn meta_unregistered(&self, session: SessionId, id: RegistrationId, deleted: bool) {
        let args = vec![Value::from(session.get()), Value::from(id.get())];
        self.publish_meta("wamp.registration.on_unregister", args.clone());
        if deleted {
            self.publish_meta("wamp.registration.on_delete", args);
        }
    }
}

/// `SubscriptionDetails` of the spec.
pub(crate) fn subscription_details(s: &Subscription) -> Dict {
    dict! {
        "id" => s.id.get(),
        "created" => super::timestamp(s.created),
        "uri" => s.topic.as_str(),
        "match" => s.policy.name(),
    }
}

/// `RegistrationDetails` of the spec.
pub(crate) fn registration_details(r: &Registration) -> Dict {
    dict! {
        "id" => r.id.get(),
        "created" => super::timestamp(r.created),
        "uri" => r.procedure.as_str(),
        "match" => r.policy.name(),
        "invoke" => r.invoke.name(),
    }
}
