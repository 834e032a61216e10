//! An established session: dispatches the peer's requests to the broker, the dealer and the
//! meta API.

use std::sync::Arc;
use std::time::SystemTime;

use junction_wire::message::{self, Goodbye, Subscribed, Unregistered, Unsubscribed};
use junction_wire::{Dict, Message, MessageType, RequestId, Uri, dict};

use super::{SessionInfo, State, Status, abort_message};
use crate::dealer::CancelMode;
use crate::error::Error;
use crate::meta;
use crate::options::{CallOptions, MatchPolicy, PublishOptions, RegisterOptions, SubscribeOptions};
use crate::outbox::{Outbound, Outbox};
use crate::realm::{Peer, Realm};

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
    pub(super) fn detach(&self) {
        self.realm.detach(&self.peer);
        tracing::debug!(session = %self.peer.id(), realm = %self.realm.name(), "session detached");
    }

    pub(super) fn handle(
        self,
        outbox: &Arc<dyn Outbox>,
        now: SystemTime,
        message: Message,
    ) -> (State, Status) {
        match message {
            Message::Goodbye(_) => {
                self.detach();
                let reply = Goodbye {
                    details: Dict::new(),
                    reason: Uri::from("wamp.close.goodbye_and_out"),
                };
                outbox.push(Outbound::Message(reply.into()));
                return (State::Closed, Status::Closed);
            }
            Message::Abort(_) => {
                self.detach();
                return (State::Closed, Status::Closed);
            }
            _ => {}
        }
        let request = request_of(&message);
        match self.dispatch(now, message) {
            Ok(()) => (State::Established(self), Status::Open),
            Err(error @ Error::ProtocolViolation(_)) => {
                self.detach();
                outbox.push(Outbound::Message(abort_message(&error)));
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

    fn dispatch(&self, now: SystemTime, message: Message) -> Result<(), Error> {
        match message {
            Message::Subscribe(m) => self.subscribe(now, m),
            Message::Unsubscribe(m) => {
                let deleted = self
                    .realm
                    .broker
                    .unsubscribe(self.peer.id(), m.subscription)?;
                self.peer.send(Unsubscribed {
                    request: m.request,
                    details: None,
                });
                self.realm
                    .meta_unsubscribed(self.peer.id(), m.subscription, deleted);
                Ok(())
            }
            Message::Publish(m) => self.publish(m),
            Message::Register(m) => self.register(now, m),
            Message::Unregister(m) => {
                let deleted = self
                    .realm
                    .dealer
                    .unregister(self.peer.id(), m.registration)?;
                self.peer.send(Unregistered {
                    request: m.request,
                    details: None,
                });
                self.realm
                    .meta_unregistered(self.peer.id(), m.registration, deleted);
                Ok(())
            }
            Message::Call(m) => self.call(m),
            Message::Cancel(m) => {
                let mode = CancelMode::parse(&m.options)?;
                self.realm.dealer.cancel(&self.peer, m.request, mode);
                Ok(())
            }
            Message::Yield(m) => self.realm.dealer.yield_result(&self.peer, m),
            Message::Error(m) if m.request_type == MessageType::Invocation => {
                self.realm.dealer.invocation_error(&self.peer, m)
            }
            other => Err(Error::ProtocolViolation(format!(
                "{} is not a message a client may send on an established session",
                describe(&other)
            ))),
        }
    }

    fn subscribe(&self, now: SystemTime, m: message::Subscribe) -> Result<(), Error> {
        let options = SubscribeOptions::parse(&m.options)?;
        self.check_uri(&m.topic, options.match_policy, false)?;
        // `None`: the session was killed meanwhile; its GOODBYE is on the way.
        if let Some(subscribed) =
            self.realm
                .broker
                .subscribe(&self.peer, m.topic, options.match_policy, now)
        {
            self.peer.send(Subscribed {
                request: m.request,
                subscription: subscribed.id,
            });
            self.realm
                .meta_subscribed(self.peer.id(), subscribed.id, subscribed.created);
        }
        Ok(())
    }

    fn publish(&self, m: message::Publish) -> Result<(), Error> {
        let options = PublishOptions::parse(&m.options)?;
        if let Err(error) = self.check_uri(&m.topic, MatchPolicy::Exact, true) {
            // The spec answers a failed PUBLISH only when it asked for acknowledgement.
            return if options.acknowledge {
                Err(error)
            } else {
                Ok(())
            };
        }
        let publication =
            self.realm
                .broker
                .publish(Some(&self.peer), &m.topic, &options, m.payload);
        if options.acknowledge {
            self.peer.send(message::Published {
                request: m.request,
                publication,
            });
        }
        Ok(())
    }

    fn register(&self, now: SystemTime, m: message::Register) -> Result<(), Error> {
        let options = RegisterOptions::parse(&m.options)?;
        self.check_uri(&m.procedure, options.match_policy, true)?;
        // `None`: the session was killed meanwhile; its GOODBYE is on the way.
        if let Some(registered) =
            self.realm
                .dealer
                .register(&self.peer, m.procedure, &options, now)?
        {
            self.peer.send(message::Registered {
                request: m.request,
                registration: registered.id,
            });
            self.realm
                .meta_registered(self.peer.id(), registered.id, registered.created);
        }
        Ok(())
    }

    fn call(&self, m: message::Call) -> Result<(), Error> {
        let options = CallOptions::parse(&m.options)?;
        self.check_uri(&m.procedure, MatchPolicy::Exact, false)?;
        if m.procedure.is_reserved() {
            let payload = meta::call(&self.realm, &self.peer, &m.procedure, &m.payload)
                .ok_or_else(|| Error::NoSuchProcedure(m.procedure.clone()))??;
            self.peer.send(message::Result {
                request: m.request,
                details: Dict::new(),
                payload,
            });
            return Ok(());
        }
        self.realm.dealer.call(&self.peer, m, &options)
    }

    /// Checks a URI against the realm's rules; `own_namespace` refuses the router's reserved
    /// `wamp.` namespace (clients may subscribe to or call into it, never publish or register).
    fn check_uri(&self, uri: &Uri, policy: MatchPolicy, own_namespace: bool) -> Result<(), Error> {
        let patterns = policy != MatchPolicy::Exact;
        if !uri.is_valid(self.realm.config().uri_rules, patterns) {
            let reason = if patterns {
                "not a valid URI pattern"
            } else {
                "not a valid URI"
            };
            return Err(Error::InvalidUri {
                uri: uri.clone(),
                reason,
            });
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

fn describe(message: &Message) -> String {
    match message {
        Message::Error(m) => format!("ERROR for {}", m.request_type.name()),
        other => other.message_type().name().to_owned(),
    }
}
