//! The seam between the routing core and a cluster layer (the `junction-cluster` crate). The
//! core stays synchronous and knows no network: it tells the [`ClusterLink`] what its *local*
//! sessions do, and the cluster layer mirrors other nodes' sessions into each realm as remote
//! [`Peer`]s (see [`Realm::attach_remote`]), whose outboxes forward to the node that holds
//! them. Broker, dealer and meta API then work over local and remote peers alike.
//!
//! Without a link (a single node) none of this runs.

use std::sync::Arc;
use std::time::SystemTime;

use junction_wire::message::Goodbye;
use junction_wire::{Message, RegistrationId, SessionId, SubscriptionId, Uri};

use crate::error::Error;
use crate::options::{MatchPolicy, RegisterOptions};
use crate::outbox::{Outbound, Outbox, SharedMessage};
use crate::realm::{Peer, Realm, read};
use crate::session::SessionInfo;

/// What the core tells a cluster layer about local sessions, and the one thing it asks.
/// Called while routing, sometimes with a routing-table lock held: must not block, except
/// [`ClusterLink::claim`], which is called with no lock held.
pub trait ClusterLink: Send + Sync {
    /// A local session joined `realm`.
    fn joined(&self, realm: &Realm, peer: &Peer);
    /// A local session left `realm`.
    fn left(&self, realm: &Realm, session: SessionId);
    /// A local session subscribed (subscription ids are the same on every node).
    fn subscribed(&self, realm: &Realm, session: SessionId, subscription: SubscriptionId);
    /// A local session's subscription ended.
    fn unsubscribed(&self, realm: &Realm, session: SessionId, subscription: SubscriptionId);
    /// A local session registered (registration ids are the same on every node).
    fn registered(&self, realm: &Realm, session: SessionId, registration: RegistrationId);
    /// A local session's registration ended.
    fn unregistered(&self, realm: &Realm, session: SessionId, registration: RegistrationId);
    /// Before a local session registers `procedure` with the `single` invocation policy:
    /// claims it cluster-wide, or fails with `wamp.error.procedure_already_exists`.
    fn claim(
        &self,
        realm: &Realm,
        procedure: &Uri,
        policy: MatchPolicy,
        session: SessionId,
    ) -> Result<(), Error>;
    /// A local callee's YIELD or ERROR: returns true if it answers an invocation that came
    /// from another node (and was sent back there), false if the local dealer owns it.
    fn relay_answer(&self, callee: &Peer, message: &Message) -> bool;
}

/// A hash that is the same on every node (and build), for keys derived from URIs.
pub fn stable_hash(parts: &[&str]) -> u64 {
    crate::ids::stable_hash(parts)
}

impl Realm {
    /// Mirrors a session of another node: attaches it as a remote peer whose messages go to
    /// `outbox`, and announces it locally (`wamp.session.on_join`). Returns `None` if a
    /// session of that id is attached already.
    pub fn attach_remote(
        &self,
        info: SessionInfo,
        outbox: Arc<dyn Outbox>,
        now: SystemTime,
    ) -> Option<Arc<Peer>> {
        if self.session(info.id).is_some() {
            return None;
        }
        let peer = Arc::new(Peer::remote(info, outbox));
        self.attach(Arc::clone(&peer), now);
        Some(peer)
    }

    /// Mirrors a subscription of a remote session.
    pub fn subscribe_remote(
        &self,
        peer: &Arc<Peer>,
        topic: Uri,
        policy: MatchPolicy,
        now: SystemTime,
    ) -> Result<(), Error> {
        if let Some(subscribed) = self.broker.subscribe(peer, topic, policy, now)? {
            self.meta_subscribed(peer.id(), subscribed.id, subscribed.created, now);
        }
        Ok(())
    }

    /// Ends a mirrored subscription.
    pub fn unsubscribe_remote(&self, session: SessionId, id: SubscriptionId, now: SystemTime) {
        if let Ok(deleted) = self.broker.unsubscribe(session, id) {
            self.meta_unsubscribed(session, id, deleted, now);
        }
    }

    /// Mirrors a registration of a remote session.
    pub fn register_remote(
        &self,
        peer: &Arc<Peer>,
        procedure: Uri,
        options: &RegisterOptions,
        now: SystemTime,
    ) -> Result<(), Error> {
        // A node writes its records again after an outage: what is mirrored already stays.
        let held = self.dealer.lookup(&procedure, options.match_policy);
        if held.is_some_and(|id| self.dealer.held_by(peer.id()).contains(&id)) {
            return Ok(());
        }
        if let Some(registered) = self.dealer.register(peer, procedure, options, now)? {
            self.meta_registered(peer.id(), registered.id, registered.created, now);
        }
        Ok(())
    }

    /// Ends a mirrored registration.
    pub fn unregister_remote(&self, session: SessionId, id: RegistrationId, now: SystemTime) {
        if let Ok(deleted) = self.dealer.unregister(session, id) {
            self.meta_unregistered(session, id, deleted, now);
        }
    }

    /// Removes a mirrored session that left its node (or whose node is gone): its
    /// subscriptions and registrations go, calls waiting on it fail, `on_leave` is announced.
    pub fn detach_remote(&self, session: SessionId, now: SystemTime) {
        if let Some(peer) = self.session(session).filter(|p| p.is_remote()) {
            self.detach(&peer, now);
        }
    }

    /// Queues an event from another node for the local sessions among `sessions`, under one
    /// look-up of the realm's session table.
    pub fn deliver_local(&self, sessions: &[SessionId], event: Arc<SharedMessage>) {
        let attached = read(&self.sessions);
        for peer in sessions.iter().filter_map(|id| attached.get(id)).filter(|p| !p.is_remote()) {
            peer.push(Outbound::Event(Arc::clone(&event)));
        }
    }

    /// Ends a local session on another node's request (`wamp.session.kill` there).
    pub fn kill_local(&self, session: SessionId, goodbye: Goodbye, now: SystemTime) {
        if let Some(peer) = self.session(session).filter(|p| !p.is_remote()) {
            self.kill(&peer, goodbye, now);
        }
    }

    /// Hands the dealer a remote callee's answer (YIELD or ERROR) to an invocation this node
    /// sent it, as if the callee were local.
    pub fn answer_remote(&self, callee: SessionId, answer: Message) {
        let Some(peer) = self.session(callee).filter(|p| p.is_remote()) else { return };
        let outcome = match answer {
            Message::Yield(m) => self.dealer.yield_result(&peer, m),
            Message::Error(m) => self.dealer.invocation_error(&peer, m),
            _ => Ok(()),
        };
        if let Err(error) = outcome {
            tracing::debug!(%error, session = %callee, "answer from a remote callee dropped");
        }
    }

    /// The subscriptions and registrations a session holds.
    pub fn held_by(&self, session: SessionId) -> (Vec<SubscriptionId>, Vec<RegistrationId>) {
        (self.broker.held_by(session), self.dealer.held_by(session))
    }

    /// The topic and match policy of subscription `id`.
    pub fn subscription_key(&self, id: SubscriptionId) -> Option<(Uri, MatchPolicy)> {
        self.broker.with(id, |s| (s.topic.clone(), s.policy))
    }

    /// The procedure and options of registration `id`.
    pub fn registration_key(&self, id: RegistrationId) -> Option<(Uri, RegisterOptions)> {
        self.dealer.with(id, |r| {
            let options = RegisterOptions {
                match_policy: r.policy,
                invoke: r.invoke,
                concurrency: r.concurrency,
                disclose_caller: r.disclose_caller,
                force_reregister: false,
            };
            (r.procedure.clone(), options)
        })
    }
}
