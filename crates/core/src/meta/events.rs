//! Meta events, published by the router into the realm where something happened. Order
//! guarantees (spec): `on_create` before `on_subscribe`/`on_register`, `on_unsubscribe`/
//! `on_unregister` before `on_delete`.

use std::time::SystemTime;

use junction_wire::{Dict, Payload, RegistrationId, SessionId, SubscriptionId, Uri, Value, dict};

use crate::broker::{Publication, Subscription};
use crate::dealer::Registration;
use crate::options::PublishOptions;
use crate::realm::{Peer, Realm};

impl Realm {
    /// Publishes an event of the router itself (meta and admin events) in this realm. It
    /// reaches local subscribers only: every cluster node announces what it sees itself.
    pub(crate) fn publish_meta(&self, topic: &str, args: Vec<Value>, now: SystemTime) {
        let options = PublishOptions { exclude_me: false, ..PublishOptions::default() };
        self.broker.publish(Publication {
            publisher: None,
            topic: &Uri::from(topic),
            options: &options,
            disclose: false,
            passthru: Dict::new(),
            payload: Payload::args(args),
            now,
        });
    }

    /// `wamp.session.on_join`, with the session's full description.
    pub(crate) fn meta_joined(&self, peer: &Peer, now: SystemTime) {
        self.publish_meta("wamp.session.on_join", vec![Value::Dict(peer.info().to_dict())], now);
    }

    /// `wamp.session.on_leave`: `[session, authid, authrole]`.
    pub(crate) fn meta_left(&self, peer: &Peer, now: SystemTime) {
        let info = peer.info();
        let args = vec![
            Value::from(info.id.get()),
            Value::from(std::sync::Arc::clone(&info.authid)),
            Value::from(std::sync::Arc::clone(&info.authrole)),
        ];
        self.publish_meta("wamp.session.on_leave", args, now);
    }

    /// `wamp.subscription.on_create` (when `created`) then `on_subscribe`.
    pub(crate) fn meta_subscribed(
        &self,
        session: SessionId,
        id: SubscriptionId,
        created: bool,
        now: SystemTime,
    ) {
        if let Some(cluster) = self.cluster() {
            cluster.subscribed(self, session, id);
        }
        if created && let Some(details) = self.broker.with(id, subscription_details) {
            self.publish_meta(
                "wamp.subscription.on_create",
                vec![Value::from(session.get()), Value::Dict(details)],
                now,
            );
        }
        self.publish_meta(
            "wamp.subscription.on_subscribe",
            vec![Value::from(session.get()), Value::from(id.get())],
            now,
        );
    }

    /// `wamp.subscription.on_unsubscribe` then, when the subscription is gone, `on_delete`.
    pub(crate) fn meta_unsubscribed(
        &self,
        session: SessionId,
        id: SubscriptionId,
        deleted: bool,
        now: SystemTime,
    ) {
        if let Some(cluster) = self.cluster() {
            cluster.unsubscribed(self, session, id);
        }
        let args = vec![Value::from(session.get()), Value::from(id.get())];
        self.publish_meta("wamp.subscription.on_unsubscribe", args.clone(), now);
        if deleted {
            self.publish_meta("wamp.subscription.on_delete", args, now);
        }
    }

    /// `wamp.registration.on_create` (when `created`) then `on_register`.
    pub(crate) fn meta_registered(
        &self,
        session: SessionId,
        id: RegistrationId,
        created: bool,
        now: SystemTime,
    ) {
        if let Some(cluster) = self.cluster() {
            cluster.registered(self, session, id);
        }
        if created && let Some(details) = self.dealer.with(id, registration_details) {
            self.publish_meta(
                "wamp.registration.on_create",
                vec![Value::from(session.get()), Value::Dict(details)],
                now,
            );
        }
        self.publish_meta(
            "wamp.registration.on_register",
            vec![Value::from(session.get()), Value::from(id.get())],
            now,
        );
    }

    /// `wamp.registration.on_unregister` then, when the registration is gone, `on_delete`.
    pub(crate) fn meta_unregistered(
        &self,
        session: SessionId,
        id: RegistrationId,
        deleted: bool,
        now: SystemTime,
    ) {
        if let Some(cluster) = self.cluster() {
            cluster.unregistered(self, session, id);
        }
        let args = vec![Value::from(session.get()), Value::from(id.get())];
        self.publish_meta("wamp.registration.on_unregister", args.clone(), now);
        if deleted {
            self.publish_meta("wamp.registration.on_delete", args, now);
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
