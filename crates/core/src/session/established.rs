//! An established session: dispatches the peer's requests to the broker, the dealer and the
//! meta API.

use std::sync::Arc;

use junction_wire::message::{self, Goodbye, Subscribed, Unregistered, Unsubscribed};
use junction_wire::{Dict, Message, MessageType, RequestId, Uri, Value, dict};

use super::{SessionInfo, State, Status, abort_message};
use crate::broker::Publication;
use crate::dealer::CancelMode;
use crate::error::Error;
use crate::limits;
use crate::options::{
    CallOptions, InvokePolicy, MatchPolicy, PublishOptions, RegisterOptions, SubscribeOptions,
};
use crate::outbox::{Outbound, Outbox};
use crate::realm::{Peer, Realm};
use crate::router::Router;
use crate::security::Permission;
use crate::time::Now;
use crate::{admin, meta};

/// A session attached to a realm.
pub struct Established {
    realm: Arc<Realm>,
    peer: Arc<Peer>,
}

impl Established {
    pub(super) fn new(realm: Arc<Realm>, peer: Arc<Peer>) -> Self {
        Self { realm, peer }
    }

    pub(super) fn info(&self) -> &SessionInfo {
        self.peer.info()
    }

    /// Leaves the realm, dropping every subscription, registration and call of the session.
    pub(super) fn detach(&self, now: Now) {
        self.realm.detach(&self.peer, now.wall);
        tracing::debug!(session = %self.peer.id(), realm = %self.realm.name(), "session detached");
    }

    pub(super) fn handle(
        self,
        router: &Router,
        outbox: &Arc<dyn Outbox>,
        now: Now,
        message: Message,
    ) -> (State, Status) {
        match message {
            Message::Goodbye(_) => {
                self.detach(now);
                let reply = Goodbye {
                    details: Dict::new(),
                    reason: Uri::from("wamp.close.goodbye_and_out"),
                };
                outbox.push(Outbound::message(reply));
                return (State::Closed, Status::Closed);
            }
            Message::Abort(_) => {
                self.detach(now);
                return (State::Closed, Status::Closed);
            }
            _ => {}
        }
        let request = request_of(&message);
        let request_zero = match &message {
            Message::Error(e) => e.request.get() == 0,
            _ => request.is_some_and(|(_, r)| r.get() == 0),
        };
        let result = if request_zero {
            Err(Error::ProtocolViolation("request ids are in [1, 2^53]; 0 is not one".into()))
        } else {
            self.dispatch(router, now, message)
        };
        match result {
            Ok(()) => (State::Established(self), Status::Open),
            Err(error @ Error::ProtocolViolation(_)) => {
                self.detach(now);
                outbox.push(Outbound::message(abort_message(&error)));
                (State::Closed, Status::Closed)
            }
            Err(error) => {
                if let Some((request_type, request)) = request {
                    self.peer.send(error_reply(request_type, request, &error));
                }
                (State::Established(self), Status::Open)
            }
        }
    }

    fn dispatch(&self, router: &Router, now: Now, message: Message) -> Result<(), Error> {
        let id = self.peer.id();
        match message {
            Message::Subscribe(m) => self.subscribe(now, m),
            Message::Unsubscribe(m) => {
                if let Some((topic, policy)) =
                    self.realm.broker.with(m.subscription, |s| (s.topic.clone(), s.policy))
                {
                    self.authorize(Permission::Unsubscribe, &topic, policy)?;
                }
                let deleted = self.realm.broker.unsubscribe(id, m.subscription)?;
                self.peer.send(Unsubscribed { request: m.request, details: None });
                self.realm.meta_unsubscribed(id, m.subscription, deleted, now.wall);
                Ok(())
            }
            Message::Publish(m) => self.publish(now, m),
            Message::Register(m) => self.register(now, m),
            Message::Unregister(m) => {
                if let Some((procedure, policy)) =
                    self.realm.dealer.with(m.registration, |r| (r.procedure.clone(), r.policy))
                {
                    self.authorize(Permission::Unregister, &procedure, policy)?;
                }
                let deleted = self.realm.dealer.unregister(id, m.registration)?;
                self.peer.send(Unregistered { request: m.request, details: None });
                self.realm.meta_unregistered(id, m.registration, deleted, now.wall);
                Ok(())
            }
            Message::Call(m) => self.call(router, now, m),
            Message::Cancel(m) => {
                let mode = CancelMode::parse(&m.options)?;
                self.realm.dealer.cancel(&self.peer, m.request, mode, |procedure| {
                    self.authorize(Permission::Cancel, procedure, MatchPolicy::Exact)
                });
                Ok(())
            }
            Message::Yield(m) => {
                if !self.passthru(&m.options, "callee")?.is_empty() {
                    self.realm.dealer.check_caller_passthru(&self.peer, m.request)?;
                }
                if let Err(error) =
                    limits::check_payload(self.realm.limits().max_payload_size, &m.payload)
                {
                    // The caller learns why its result never comes; YIELD has no error reply.
                    return self
                        .realm
                        .dealer
                        .invocation_error(&self.peer, invocation_error(m.request, &error));
                }
                let m = match self.relay_answer(m.into()) {
                    Some(Message::Yield(m)) => m,
                    _ => return Ok(()),
                };
                self.realm.dealer.yield_result(&self.peer, m)
            }
            Message::Error(m) if m.request_type == MessageType::Invocation => {
                let m = match self.relay_answer(m.into()) {
                    Some(Message::Error(m)) => m,
                    _ => return Ok(()),
                };
                self.realm.dealer.invocation_error(&self.peer, m)
            }
            other => Err(Error::ProtocolViolation(format!(
                "{} is not a message a client may send on an established session",
                describe(&other)
            ))),
        }
    }

    /// An answer to an invocation: `None` if it answered a call of another cluster node (and
    /// went back there), else the answer for the local dealer.
    fn relay_answer(&self, answer: Message) -> Option<Message> {
        match self.realm.cluster() {
            Some(cluster) if cluster.relay_answer(&self.peer, &answer) => None,
            _ => Some(answer),
        }
    }

    fn subscribe(&self, now: Now, m: message::Subscribe) -> Result<(), Error> {
        let options = SubscribeOptions::parse(&m.options)?;
        self.check_uri(&m.topic, options.match_policy, false)?;
        self.authorize(Permission::Subscribe, &m.topic, options.match_policy)?;
        let broker = &self.realm.broker;
        // `None`: the session was killed meanwhile; its GOODBYE is on the way.
        if let Some(subscribed) =
            broker.subscribe(&self.peer, m.topic, options.match_policy, now.wall)?
        {
            self.peer.send(Subscribed { request: m.request, subscription: subscribed.id });
            self.realm.meta_subscribed(self.peer.id(), subscribed.id, subscribed.created, now.wall);
            if options.get_retained {
                broker.deliver_retained(&self.peer, subscribed.id);
            }
        }
        Ok(())
    }

    fn publish(&self, now: Now, m: message::Publish) -> Result<(), Error> {
        let options = PublishOptions::parse(&m.options)?;
        if let Err(error) = limits::check_payload(self.realm.limits().max_payload_size, &m.payload)
        {
            return if options.acknowledge { Err(error) } else { Ok(()) };
        }
        let passthru = self.passthru(&m.options, "publisher")?;
        if let Err(error) = self.check_uri(&m.topic, MatchPolicy::Exact, true) {
            // The spec answers a failed PUBLISH only when it asked for acknowledgement.
            return if options.acknowledge { Err(error) } else { Ok(()) };
        }
        let granted_disclosure = match self.peer.authorize_disclosing(
            &self.realm,
            Permission::Publish,
            Permission::DisclosePublisher,
            &m.topic,
        ) {
            Ok(granted) => granted,
            Err(error) => return if options.acknowledge { Err(error) } else { Ok(()) },
        };
        let publication = self.realm.broker.publish(Publication {
            publisher: Some(&self.peer),
            topic: &m.topic,
            options: &options,
            disclose: options.disclose_me
                || granted_disclosure
                || self.realm.config().disclose_publisher,
            passthru,
            payload: m.payload,
            now: now.wall,
        });
        if options.acknowledge {
            self.peer.send(message::Published { request: m.request, publication });
        }
        Ok(())
    }

    fn register(&self, now: Now, m: message::Register) -> Result<(), Error> {
        let options = RegisterOptions::parse(&m.options)?;
        self.check_uri(&m.procedure, options.match_policy, true)?;
        self.authorize(Permission::Register, &m.procedure, options.match_policy)?;
        let dealer = &self.realm.dealer;
        if options.force_reregister {
            self.take_over(&m.procedure, options.match_policy, now);
        }
        if let Some(cluster) = self.realm.cluster()
            && options.invoke == InvokePolicy::Single
            && dealer.lookup(&m.procedure, options.match_policy).is_none()
        {
            cluster.claim(&self.realm, &m.procedure, options.match_policy, self.peer.id())?;
        }
        // `None`: the session was killed meanwhile; its GOODBYE is on the way.
        if let Some(registered) = dealer.register(&self.peer, m.procedure, &options, now.wall)? {
            self.peer.send(message::Registered { request: m.request, registration: registered.id });
            self.realm.meta_registered(self.peer.id(), registered.id, registered.created, now.wall);
        }
        Ok(())
    }

    /// `force_reregister`: revokes every other callee of the procedure so this session can
    /// register it.
    fn take_over(&self, procedure: &Uri, policy: MatchPolicy, now: Now) {
        let dealer = &self.realm.dealer;
        let Some(existing) = dealer.lookup(procedure, policy) else { return };
        let others = dealer.with(existing, |r| r.callees()).unwrap_or_default();
        for callee in others.into_iter().filter(|c| *c != self.peer.id()) {
            if let Ok(deleted) = dealer.revoke(existing, callee, "wamp.close.force_reregister") {
                self.realm.meta_unregistered(callee, existing, deleted, now.wall);
            }
        }
    }

    fn call(&self, router: &Router, now: Now, m: message::Call) -> Result<(), Error> {
        let mut options = CallOptions::parse(&m.options)?;
        if options.progress
            && !self.peer.info().has_feature("caller", "progressive_call_invocations")
        {
            return Err(Error::ProtocolViolation(
                "CALL.Options.progress needs progressive_call_invocations announced for the caller role".into(),
            ));
        }
        limits::check_payload(self.realm.limits().max_payload_size, &m.payload)?;
        self.passthru(&m.options, "caller")?;
        self.check_uri(&m.procedure, MatchPolicy::Exact, false)?;
        // A caller granted `wamp.disclose_caller` is disclosed as if it had asked.
        options.disclose_me |= self.peer.authorize_disclosing(
            &self.realm,
            Permission::Call,
            Permission::DiscloseCaller,
            &m.procedure,
        )?;
        let routed_by_router = if m.procedure.is_reserved() {
            meta::call(&self.realm, &self.peer, &m.procedure, &m.payload, now)
        } else {
            admin::call(router, &self.realm, Some(self.peer.info()), &m.procedure, &m.payload, now)
        };
        if m.procedure.is_reserved() || routed_by_router.is_some() {
            let payload =
                routed_by_router.ok_or_else(|| Error::NoSuchProcedure(m.procedure.clone()))??;
            self.peer.send(message::Result { request: m.request, details: Dict::new(), payload });
            return Ok(());
        }
        self.realm.dealer.call(&self.peer, m, &options, &self.realm.config(), now.monotonic)
    }

    pub(super) fn undeliverable(&self, message: &Message, why: &Error) {
        match message {
            Message::Invocation(invocation) => {
                let failure = error_reply(MessageType::Invocation, invocation.request, why);
                let _ = self.realm.dealer.invocation_error(&self.peer, failure);
            }
            Message::Result(result) => {
                self.peer.send(error_reply(MessageType::Call, result.request, why))
            }
            Message::Error(error) if !error.payload.is_empty() => {
                self.peer.send(error_reply(error.request_type, error.request, why));
            }
            _ => {}
        }
    }

    /// Checks a permission under the realm's current grants.
    fn authorize(
        &self,
        permission: Permission,
        uri: &Uri,
        policy: MatchPolicy,
    ) -> Result<(), Error> {
        self.peer.authorize(&self.realm, permission, uri, policy)
    }

    /// The payload passthru options (`ppt_*`) of a request, checked: using them needs
    /// `ppt_scheme` and the feature announced for `role` in HELLO (spec: else a protocol error).
    fn passthru(&self, options: &Dict, role: &str) -> Result<Dict, Error> {
        if options.is_empty() {
            return Ok(Dict::new());
        }
        let ppt: Dict = options
            .iter()
            .filter(|(k, _)| k.starts_with("ppt_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if ppt.is_empty() {
            return Ok(ppt);
        }
        if ppt.get("ppt_scheme").and_then(Value::as_str).is_none() {
            return Err(Error::ProtocolViolation(
                "payload passthru options need a ppt_scheme string".into(),
            ));
        }
        if !supports_passthru(self.peer.info(), role) {
            return Err(Error::ProtocolViolation(format!(
                "payload passthru used without announcing payload_passthru_mode for the {role} role"
            )));
        }
        Ok(ppt)
    }

    /// Checks a URI against the realm's rules; `own_namespace` refuses the router's reserved
    /// `wamp.` namespace (clients may subscribe to or call into it, never publish or register).
    fn check_uri(&self, uri: &Uri, policy: MatchPolicy, own_namespace: bool) -> Result<(), Error> {
        let patterns = policy != MatchPolicy::Exact;
        if !uri.is_valid(self.realm.config().uri_rules, patterns) {
            let reason = if patterns { "not a valid URI pattern" } else { "not a valid URI" };
            return Err(Error::InvalidUri { uri: uri.clone(), reason });
        }
        if own_namespace && uri.is_reserved() {
            return Err(Error::InvalidUri {
                uri: uri.clone(),
                reason: "the wamp. namespace is reserved for the router",
            });
        }
        Ok(())
    }
}

/// The request type and id an ERROR reply to `message` would name.
fn request_of(message: &Message) -> Option<(MessageType, RequestId)> {
    let request = match message {
        Message::Subscribe(m) => m.request,
        Message::Unsubscribe(m) => m.request,
        Message::Publish(m) => m.request,
        Message::Register(m) => m.request,
        Message::Unregister(m) => m.request,
        Message::Call(m) => m.request,
        Message::Cancel(m) => m.request,
        Message::Yield(m) => m.request,
        _ => return None,
    };
    Some((message.message_type(), request))
}

fn error_reply(request_type: MessageType, request: RequestId, error: &Error) -> message::Error {
    message::Error {
        request_type,
        request,
        details: dict! {},
        error: Uri::from(error.uri()),
        payload: error.payload(),
    }
}

/// Whether a session announced payload passthru mode for `role` (Autobahn calls it
/// `payload_transparency`).
pub(crate) fn supports_passthru(info: &SessionInfo, role: &str) -> bool {
    info.has_feature(role, "payload_passthru_mode")
        || info.has_feature(role, "payload_transparency")
}

/// The ERROR a callee would have sent for invocation `request`.
fn invocation_error(request: RequestId, error: &Error) -> message::Error {
    error_reply(MessageType::Invocation, request, error)
}

fn describe(message: &Message) -> String {
    match message {
        Message::Error(m) => format!("ERROR for {}", m.request_type.name()),
        other => other.message_type().name().to_owned(),
    }
}
