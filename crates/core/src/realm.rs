//! A realm: a routing and security domain. Sessions attach to exactly one realm and only ever
//! see that realm's sessions, subscriptions and registrations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use junction_wire::id::MAX_ID;
use junction_wire::message::Goodbye;
use junction_wire::{Message, RequestId, SessionId, Uri, UriRules};

use crate::broker::Broker;
use crate::dealer::Dealer;
use crate::meta::session::Testaments;
use crate::outbox::{Outbound, Outbox};
use crate::session::SessionInfo;

/// A realm's settings.
#[derive(Debug, Clone)]
pub struct RealmConfig {
    /// The realm's URI.
    pub name: Uri,
    /// Whether clients may join without credentials (authmethod `anonymous`).
    pub allow_anonymous: bool,
    /// Which URI rules topics and procedures must satisfy.
    pub uri_rules: UriRules,
}

impl RealmConfig {
    /// A realm open to anonymous clients, with loose URI rules.
    pub fn open(name: &str) -> Self {
        Self {
            name: Uri::from(name),
            allow_anonymous: true,
            uri_rules: UriRules::Loose,
        }
    }
}

/// An attached session as the realm sees it: who it is, and where its messages go.
pub struct Peer {
    info: SessionInfo,
    outbox: Arc<dyn Outbox>,
    /// The last request id the router used towards this session (INVOCATION, …): per the spec,
    /// router-to-client request ids also start at 1 and increase by 1.
    last_request: AtomicU64,
    /// Cleared once when the session leaves the realm (by itself, or killed by another
    /// session), so it leaves exactly once and cannot subscribe or register afterwards.
    attached: AtomicBool,
    /// Events to publish when the session goes away.
    testaments: Testaments,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("session", &self.info.id)
            .finish_non_exhaustive()
    }
}

impl Peer {
    pub(crate) fn new(info: SessionInfo, outbox: Arc<dyn Outbox>) -> Self {
        Self {
            info,
            outbox,
            last_request: AtomicU64::new(0),
            attached: AtomicBool::new(true),
            testaments: Testaments::default(),
        }
    }

    /// The session's description.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.info.id
    }

    /// Queues a message for the session.
    pub(crate) fn send(&self, message: impl Into<Message>) {
        self.outbox.push(Outbound::Message(message.into()));
    }

    /// Queues any outbound item for the session.
    pub(crate) fn push(&self, item: Outbound) {
        self.outbox.push(item);
    }

    /// The next router-to-client request id (wraps after 2^53 as the spec says).
    pub(crate) fn next_request_id(&self) -> RequestId {
        let n = self.last_request.fetch_add(1, Ordering::Relaxed) % MAX_ID + 1;
        RequestId::new(n).unwrap_or(RequestId::MAX)
    }

    pub(crate) fn testaments(&self) -> &Testaments {
        &self.testaments
    }

    /// Whether the session is still attached to its realm.
    pub(crate) fn is_attached(&self) -> bool {
        self.attached.load(Ordering::SeqCst)
    }

    /// Whether the router has already issued request id `id` to this session.
    pub(crate) fn has_issued(&self, id: RequestId) -> bool {
        id.get() <= self.last_request.load(Ordering::Relaxed)
    }
}

/// A realm and everything attached to it.
pub struct Realm {
    config: RealmConfig,
    /// Attached sessions. Read on every meta query and written on join/leave only.
    sessions: RwLock<HashMap<SessionId, Arc<Peer>>>,
    pub(crate) broker: Broker,
    pub(crate) dealer: Dealer,
}

impl Realm {
    /// An empty realm.
    pub fn new(config: RealmConfig) -> Self {
        Self {
            config,
            sessions: RwLock::default(),
            broker: Broker::default(),
            dealer: Dealer::default(),
        }
    }

    /// The realm's settings.
    pub fn config(&self) -> &RealmConfig {
        &self.config
    }

    /// The realm's URI.
    pub fn name(&self) -> &Uri {
        &self.config.name
    }

    /// How many sessions are attached.
    pub fn session_count(&self) -> usize {
        read(&self.sessions).len()
    }

    /// The attached sessions.
    pub fn sessions(&self) -> Vec<Arc<Peer>> {
        read(&self.sessions).values().cloned().collect()
    }

    /// The attached session `id`, if any.
    pub fn session(&self, id: SessionId) -> Option<Arc<Peer>> {
        read(&self.sessions).get(&id).cloned()
    }

    /// Attaches a session that was just welcomed, and announces it (`wamp.session.on_join`).
    pub(crate) fn attach(&self, peer: Arc<Peer>) {
        write(&self.sessions).insert(peer.id(), Arc::clone(&peer));
        self.meta_joined(&peer);
    }

    /// Removes a session and everything it held, then publishes its testaments and the meta
    /// events of its departure. Does nothing if the session already left (killed sessions are
    /// detached by their killer, and again by their own connection when it closes).
    pub(crate) fn detach(&self, peer: &Peer) {
        if !peer.attached.swap(false, Ordering::SeqCst) {
            return;
        }
        let id = peer.id();
        write(&self.sessions).remove(&id);
        for (subscription, deleted) in self.broker.remove_session(id) {
            self.meta_unsubscribed(id, subscription, deleted);
        }
        for (registration, deleted) in self.dealer.remove_session(id) {
            self.meta_unregistered(id, registration, deleted);
        }
        for testament in peer.testaments.take() {
            self.broker.publish(
                Some(peer),
                &testament.topic,
                &testament.options,
                testament.payload,
            );
        }
        self.meta_left(peer);
    }

    /// Ends a session on the router's initiative: detaches it at once, and tells its
    /// connection to send `goodbye` and close.
    pub(crate) fn kill(&self, peer: &Peer, goodbye: Goodbye) {
        self.detach(peer);
        peer.push(Outbound::Close(goodbye));
    }

    /// Closes every attached session with `reason` (realm removal, shutdown).
    pub fn close_all(&self, reason: &str, message: &str) {
        let goodbye = Goodbye {
            details: junction_wire::dict! { "message" => message },
            reason: Uri::from(reason),
        };
        for peer in self.sessions() {
            self.kill(&peer, goodbye.clone());
        }
    }
}

/// Reads a lock, recovering from poisoning: a panic elsewhere must not take routing down, and
/// every critical section here leaves the tables consistent between statements.
pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes a lock, recovering from poisoning (see [`read`]).
pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
