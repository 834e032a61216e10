//! A realm: a routing and security domain. Sessions attach to exactly one realm and only ever
//! see that realm's sessions, subscriptions and registrations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use junction_wire::id::MAX_ID;
use junction_wire::message::Goodbye;
use junction_wire::{Dict, Message, RequestId, SessionId, Uri, UriRules, Value};

use crate::broker::{Broker, Publication};
use crate::cluster::ClusterLink;
use crate::dealer::Dealer;
use crate::limits::Limits;
use crate::meta::session::Testaments;
use crate::options::MatchPolicy;
use crate::outbox::{Outbound, Outbox};
use crate::security::{Permission, Security};
use crate::session::SessionInfo;
use crate::time::TimerWaker;

/// A realm's settings.
#[derive(Debug, Clone)]
pub struct RealmConfig {
    /// The realm's URI.
    pub name: Uri,
    /// What the realm is for (shown by the admin API).
    pub description: String,
    /// Whether clients may join without credentials (authmethod `anonymous`).
    pub allow_anonymous: bool,
    /// Which URI rules topics and procedures must satisfy.
    pub uri_rules: UriRules,
    /// Tell callees who calls (`caller`, `caller_authid`, `caller_authrole`), whether or not
    /// the caller asked with `disclose_me`.
    pub disclose_caller: bool,
    /// Tell subscribers who published, whether or not the publisher asked with `disclose_me`.
    pub disclose_publisher: bool,
    /// Users, groups and grants; disabled (everything allowed) unless configured.
    pub security: Security,
    /// Call timeout applied when a CALL sets none.
    pub default_call_timeout: Option<Duration>,
    /// Upper bound on any call's timeout.
    pub max_call_timeout: Option<Duration>,
    /// Topics whose events are kept for `wamp.subscription.get_events`.
    pub event_history: Vec<HistoryConfig>,
    /// Whether new sessions are admitted (Bondy's `allow_connections`); sessions already
    /// joined stay when it turns false. Unless [`Inherits::allow_connections`] says the
    /// prototype's value applies.
    pub allow_connections: bool,
    /// A prototype realm (Bondy's `is_prototype`): it accepts no sessions and only lends its
    /// settings, groups, grants and sources to realms that name it as `prototype_uri`. It
    /// cannot have users nor a prototype of its own.
    pub is_prototype: bool,
    /// The prototype this realm inherits from (one level only: it must be a prototype).
    pub prototype_uri: Option<Uri>,
    /// Which settings the realm leaves to its prototype (ignored without one).
    pub inherits: Inherits,
}

/// The settings a realm with a prototype takes from it because it does not set them itself
/// (Bondy: "properties which a realm inherits from a prototype when those properties have not
/// been assigned a value"). Groups, grants and sources are always merged; users never are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inherits {
    /// `security_enabled` comes from the prototype.
    pub security_enabled: bool,
    /// `authmethods` (besides anonymous, which stays the realm's own) come from the prototype.
    pub authmethods: bool,
    /// `allow_connections` comes from the prototype.
    pub allow_connections: bool,
}

impl Inherits {
    /// Every inheritable setting left to the prototype.
    pub const ALL: Inherits =
        Inherits { security_enabled: true, authmethods: true, allow_connections: true };
}

/// Why a realm's prototype settings are refused (Bondy's `bondy.error.invalid_data`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrototypeError {
    /// A prototype names a prototype itself: inheritance is one level deep.
    #[error("realm \"{0}\" is a prototype and cannot have a prototype itself")]
    PrototypeOfPrototype(Uri),
    /// A realm names itself as its prototype.
    #[error("realm \"{0}\" cannot be its own prototype")]
    OwnPrototype(Uri),
    /// The named prototype does not exist.
    #[error("realm \"{realm}\" names prototype \"{prototype}\", which does not exist")]
    NoSuchPrototype {
        /// The inheriting realm.
        realm: Uri,
        /// The missing prototype.
        prototype: Uri,
    },
    /// The named prototype is an ordinary realm.
    #[error("realm \"{realm}\" names \"{prototype}\" as prototype, which is not a prototype realm")]
    NotAPrototype {
        /// The inheriting realm.
        realm: Uri,
        /// The ordinary realm it names.
        prototype: Uri,
    },
    /// Users were given to a prototype (Bondy: users cannot be defined for a prototype).
    #[error(
        "realm \"{0}\" is a prototype and cannot have users; add them to the realms that inherit from it"
    )]
    PrototypeUsers(Uri),
}

/// Which topics keep an event history, and how much of it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryConfig {
    /// The topic, or a pattern under `policy`.
    pub topic: Uri,
    /// How `topic` matches published topics.
    pub policy: MatchPolicy,
    /// How many events are kept per topic (the oldest go first).
    pub limit: usize,
}

impl RealmConfig {
    /// A realm open to anonymous clients, with loose URI rules, disclosing callers and
    /// publishers (the default realm's settings).
    pub fn open(name: &str) -> Self {
        Self {
            name: Uri::from(name),
            description: String::new(),
            allow_anonymous: true,
            uri_rules: UriRules::Loose,
            disclose_caller: true,
            disclose_publisher: true,
            security: Security::default(),
            default_call_timeout: None,
            max_call_timeout: None,
            event_history: Vec::new(),
            allow_connections: true,
            is_prototype: false,
            prototype_uri: None,
            inherits: Inherits::default(),
        }
    }

    /// Checks Bondy's prototype rules for this realm, given the realm its `prototype_uri`
    /// names (`None` if there is none of that name): one level of inheritance, irreflexive,
    /// only from prototype realms, and no users in a prototype.
    pub fn check_prototype(&self, prototype: Option<&RealmConfig>) -> Result<(), PrototypeError> {
        if self.is_prototype && !self.security.users.is_empty() {
            return Err(PrototypeError::PrototypeUsers(self.name.clone()));
        }
        let Some(uri) = &self.prototype_uri else { return Ok(()) };
        if self.is_prototype {
            return Err(PrototypeError::PrototypeOfPrototype(self.name.clone()));
        }
        if uri == &self.name {
            return Err(PrototypeError::OwnPrototype(self.name.clone()));
        }
        match prototype {
            None => Err(PrototypeError::NoSuchPrototype {
                realm: self.name.clone(),
                prototype: uri.clone(),
            }),
            Some(p) if !p.is_prototype => Err(PrototypeError::NotAPrototype {
                realm: self.name.clone(),
                prototype: uri.clone(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// The security this realm enforces: its own, merged with `prototype`'s when it has one
    /// (see [`Security::inherit`]).
    pub fn effective_security(&self, prototype: Option<&RealmConfig>) -> Security {
        match prototype.filter(|_| self.prototype_uri.is_some()) {
            Some(p) => self.security.inherit(&p.security, self.inherits),
            None => self.security.clone(),
        }
    }

    /// Whether the realm admits new sessions: never for a prototype; otherwise its own
    /// `allow_connections`, or its prototype's when it leaves that setting to it.
    pub fn admits_sessions(&self, prototype: Option<&RealmConfig>) -> bool {
        if self.is_prototype {
            return false;
        }
        match prototype.filter(|_| self.prototype_uri.is_some() && self.inherits.allow_connections)
        {
            Some(p) => p.allow_connections,
            None => self.allow_connections,
        }
    }

    /// The timeout a call gets: the one it asked for (0 = none) or the realm's default, bounded
    /// by the realm's maximum.
    pub(crate) fn call_timeout(&self, requested_ms: u64) -> Option<Duration> {
        let requested = (requested_ms > 0).then(|| Duration::from_millis(requested_ms));
        match (requested.or(self.default_call_timeout), self.max_call_timeout) {
            (Some(t), Some(max)) => Some(t.min(max)),
            (None, Some(max)) => Some(max),
            (t, None) => t,
        }
    }
}

/// Where a router's cluster layer is installed, shared by its realms.
pub(crate) type ClusterSlot = Arc<std::sync::OnceLock<Arc<dyn ClusterLink>>>;

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
    /// Whether the session joined anonymously (and gets the grants to `anonymous`).
    anonymous: bool,
    /// A session of another cluster node, mirrored here (see [`crate::cluster`]).
    remote: bool,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("session", &self.info.id).finish_non_exhaustive()
    }
}

impl Peer {
    pub(crate) fn new(info: SessionInfo, outbox: Arc<dyn Outbox>, anonymous: bool) -> Self {
        Self {
            info,
            outbox,
            last_request: AtomicU64::new(0),
            attached: AtomicBool::new(true),
            testaments: Testaments::default(),
            anonymous,
            remote: false,
        }
    }

    /// A session of another cluster node; its grants are checked on its own node.
    pub(crate) fn remote(info: SessionInfo, outbox: Arc<dyn Outbox>) -> Self {
        Self { remote: true, ..Self::new(info, outbox, false) }
    }

    /// Whether the session lives on another cluster node.
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The session's description.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The session as the meta API describes it: [`SessionInfo::to_dict`] plus live counters
    /// (`dropped_events`: events the router dropped because the session read too slowly).
    pub fn describe(&self) -> Dict {
        let mut d = self.info.to_dict();
        d.insert("dropped_events".into(), Value::from(self.outbox.dropped_events()));
        d
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.info.id
    }

    /// Queues a message for the session.
    pub fn send(&self, message: impl Into<Message>) {
        self.outbox.push(Outbound::message(message));
    }

    /// Queues any outbound item for the session.
    pub fn push(&self, item: Outbound) {
        self.outbox.push(item);
    }

    /// The session's outbound queue.
    pub(crate) fn outbox(&self) -> &Arc<dyn Outbox> {
        &self.outbox
    }

    /// The next router-to-client request id (wraps after 2^53 as the spec says).
    pub fn next_request_id(&self) -> RequestId {
        let n = self.last_request.fetch_add(1, Ordering::Relaxed) % MAX_ID + 1;
        RequestId::new(n).unwrap_or(RequestId::MAX)
    }

    pub(crate) fn testaments(&self) -> &Testaments {
        &self.testaments
    }

    /// Checks that the session may do `permission` on `uri` under the realm's current grants
    /// and the user's current groups, so both kinds of change apply to live sessions.
    pub(crate) fn authorize(
        &self,
        realm: &Realm,
        permission: Permission,
        uri: &Uri,
        policy: MatchPolicy,
    ) -> Result<(), crate::Error> {
        let security = realm.security();
        if !security.enabled {
            return Ok(());
        }
        let principals = security.principals(&self.info.authid, self.anonymous);
        security.authorize(&principals, permission, uri, policy)
    }

    /// Checks `action` on `uri` like [`Peer::authorize`], and tells whether the `disclosure`
    /// permission (`wamp.disclose_caller` or `wamp.disclose_publisher`) on it is granted too:
    /// never on realms without security.
    pub(crate) fn authorize_disclosing(
        &self,
        realm: &Realm,
        action: Permission,
        disclosure: Permission,
        uri: &Uri,
    ) -> Result<bool, crate::Error> {
        let security = realm.security();
        if !security.enabled {
            return Ok(false);
        }
        let principals = security.principals(&self.info.authid, self.anonymous);
        security.authorize(&principals, action, uri, MatchPolicy::Exact)?;
        Ok(security.grants(&principals, disclosure, uri, MatchPolicy::Exact))
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
    name: Uri,
    /// The settings; replaced whole by `bondy.realm.update`.
    config: RwLock<Arc<RealmConfig>>,
    /// Attached sessions. Read on every meta query and written on join/leave only.
    pub(crate) sessions: RwLock<HashMap<SessionId, Arc<Peer>>>,
    /// How many of `sessions` are this node's own.
    local_sessions: AtomicUsize,
    pub(crate) broker: Broker,
    pub(crate) dealer: Dealer,
    limits: Arc<Limits>,
    /// What the realm enforces now: its own settings merged with its prototype's; replaced
    /// whole when either changes, so checks never see half of a change.
    effective: RwLock<Arc<Effective>>,
    /// The cluster layer, when the router is one node of a cluster.
    cluster: ClusterSlot,
}

/// A realm's settings as they apply: computed from its own and its prototype's.
#[derive(Debug)]
struct Effective {
    /// Users (own), groups, grants and sources (merged) that every check reads.
    security: Arc<Security>,
    /// Whether HELLO may open a session here.
    admits_sessions: bool,
    /// The prototype's settings the snapshot was computed from; kept so that a change to the
    /// realm's own settings merges with the same prototype.
    prototype: Option<Arc<RealmConfig>>,
}

impl Effective {
    fn compute(config: &RealmConfig, prototype: Option<Arc<RealmConfig>>) -> Self {
        Self {
            security: Arc::new(config.effective_security(prototype.as_deref())),
            admits_sessions: config.admits_sessions(prototype.as_deref()),
            prototype,
        }
    }
}

impl Realm {
    /// An empty realm; `timers` wakes the driver when a call deadline appears.
    pub(crate) fn new(
        config: RealmConfig,
        timers: Arc<TimerWaker>,
        limits: Arc<Limits>,
        cluster: ClusterSlot,
    ) -> Self {
        let broker = Broker::new(&config.name, config.event_history.clone(), Arc::clone(&limits));
        let dealer = Dealer::new(&config.name, timers, Arc::clone(&limits));
        // The prototype is attached by the router once every realm exists.
        let effective = RwLock::new(Arc::new(Effective::compute(&config, None)));
        Self {
            name: config.name.clone(),
            config: RwLock::new(Arc::new(config)),
            sessions: RwLock::default(),
            local_sessions: AtomicUsize::new(0),
            broker,
            dealer,
            limits,
            effective,
            cluster,
        }
    }

    /// The cluster layer, if the router is part of a cluster.
    pub(crate) fn cluster(&self) -> Option<&dyn ClusterLink> {
        self.cluster.get().map(|link| link.as_ref())
    }

    /// The users, groups, grants and sources every check uses now: the realm's own merged
    /// with its prototype's (for its own only, see [`Realm::snapshot`]).
    pub fn security(&self) -> Arc<Security> {
        Arc::clone(&read(&self.effective).security)
    }

    /// Whether a new session may join now (not a prototype, `allow_connections` true).
    pub fn admits_sessions(&self) -> bool {
        read(&self.effective).admits_sessions
    }

    /// The settings of the prototype the realm inherits from, as merged now.
    pub fn prototype(&self) -> Option<Arc<RealmConfig>> {
        read(&self.effective).prototype.clone()
    }

    /// The realm's `allow_connections` as the admin API shows it: its own, or its prototype's
    /// when it leaves that setting to it (a prototype shows its own value, which it lends;
    /// it admits no sessions whatever the value).
    pub fn allow_connections(&self) -> bool {
        let config = self.config();
        match self.prototype().filter(|_| config.inherits.allow_connections) {
            Some(p) => p.allow_connections,
            None => config.allow_connections,
        }
    }

    /// The realm's own settings, users, groups and grants, without what it inherits (what
    /// gets stored and what the admin API changes).
    pub fn snapshot(&self) -> RealmConfig {
        (*self.config()).clone()
    }

    /// Replaces the realm's own users, groups and grants; checks made afterwards use the new
    /// ones (merged with the prototype's).
    pub fn set_security(&self, security: Security) {
        self.set_config(RealmConfig { security, ..self.snapshot() });
    }

    /// Merges the realm's settings with `prototype`'s from now on (the router calls this
    /// when the realm is created or loaded and whenever its prototype changes).
    pub(crate) fn set_prototype(&self, prototype: Option<Arc<RealmConfig>>) {
        let config = self.config();
        *write(&self.effective) = Arc::new(Effective::compute(&config, prototype));
    }

    /// The limits that apply here.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The realm's current own settings (its `security` field lacks what the realm inherits:
    /// checks use [`Realm::security`]).
    pub fn config(&self) -> Arc<RealmConfig> {
        Arc::clone(&read(&self.config))
    }

    /// Replaces the settings (description, anonymous access, disclosure, call timeouts,
    /// `allow_connections`) and the own security; sessions see the new ones at their next
    /// request, merged with the same prototype as before. The name and the event history
    /// configuration stay as they were.
    pub fn set_config(&self, config: RealmConfig) {
        let config = RealmConfig {
            name: self.name.clone(),
            event_history: self.config().event_history.clone(),
            ..config
        };
        let mut effective = write(&self.effective);
        let prototype = effective.prototype.clone();
        *effective = Arc::new(Effective::compute(&config, prototype));
        *write(&self.config) = Arc::new(config);
    }

    /// Withdraws the subscriptions and registrations the current grants no longer allow (after
    /// a security change), telling the holders as subscription and registration revocation do
    /// and announcing it in the meta API.
    pub(crate) fn enforce_grants(&self, now: SystemTime) {
        const REASON: &str = "wamp.error.not_authorized";
        if !self.security().enabled {
            return;
        }
        // Remote sessions are held to their grants by their own node.
        for (id, topic, policy, peers) in self.broker.holders() {
            for peer in peers.into_iter().filter(|p| !p.remote) {
                if peer.authorize(self, Permission::Subscribe, &topic, policy).is_err()
                    && let Ok(deleted) = self.broker.revoke(id, peer.id(), REASON)
                {
                    self.meta_unsubscribed(peer.id(), id, deleted, now);
                }
            }
        }
        for (id, procedure, policy, peers) in self.dealer.holders() {
            for peer in peers.into_iter().filter(|p| !p.remote) {
                if peer.authorize(self, Permission::Register, &procedure, policy).is_err()
                    && let Ok(deleted) = self.dealer.revoke(id, peer.id(), REASON)
                {
                    self.meta_unregistered(peer.id(), id, deleted, now);
                }
            }
        }
    }

    /// The realm's URI.
    pub fn name(&self) -> &Uri {
        &self.name
    }

    /// How many sessions of this node are attached (sessions of other cluster nodes that
    /// are mirrored here do not count against this node's limits).
    pub fn session_count(&self) -> usize {
        self.local_sessions.load(Ordering::Relaxed)
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
    pub(crate) fn attach(&self, peer: Arc<Peer>, now: SystemTime) {
        write(&self.sessions).insert(peer.id(), Arc::clone(&peer));
        if !peer.remote {
            self.local_sessions.fetch_add(1, Ordering::Relaxed);
            metrics::gauge!("junction_sessions", "realm" => self.name().to_string()).increment(1.0);
            if let Some(cluster) = self.cluster() {
                cluster.joined(self, &peer);
            }
        }
        self.meta_joined(&peer, now);
    }

    /// Removes a session and everything it held, then publishes its testaments and the meta
    /// events of its departure. Does nothing if the session already left (killed sessions are
    /// detached by their killer, and again by their own connection when it closes).
    pub(crate) fn detach(&self, peer: &Peer, now: SystemTime) {
        if !peer.attached.swap(false, Ordering::SeqCst) {
            return;
        }
        let id = peer.id();
        write(&self.sessions).remove(&id);
        if !peer.remote {
            self.local_sessions.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("junction_sessions", "realm" => self.name().to_string()).decrement(1.0);
        }
        for (subscription, deleted) in self.broker.remove_session(id) {
            self.meta_unsubscribed(id, subscription, deleted, now);
        }
        for (registration, deleted) in self.dealer.remove_session(id) {
            self.meta_unregistered(id, registration, deleted, now);
        }
        for testament in peer.testaments.take() {
            self.broker.publish(Publication {
                publisher: Some(peer),
                topic: &testament.topic,
                disclose: testament.options.disclose_me || self.config().disclose_publisher,
                options: &testament.options,
                passthru: Dict::new(),
                payload: testament.payload,
                now,
            });
        }
        self.meta_left(peer, now);
        if !peer.remote
            && let Some(cluster) = self.cluster()
        {
            cluster.left(self, id);
        }
    }

    /// Ends a session on the router's initiative: detaches it at once, and tells its
    /// connection to send `goodbye` and close.
    pub(crate) fn kill(&self, peer: &Peer, goodbye: Goodbye, now: SystemTime) {
        self.detach(peer, now);
        peer.push(Outbound::close(goodbye));
    }

    /// Closes every session of this node attached here with `reason` (realm removal,
    /// shutdown); other cluster nodes close their own.
    pub fn close_all(&self, reason: &str, message: &str, now: SystemTime) {
        let goodbye = Goodbye {
            details: junction_wire::dict! { "message" => message },
            reason: Uri::from(reason),
        };
        for peer in self.sessions().into_iter().filter(|p| !p.remote) {
            self.kill(&peer, goodbye.clone(), now);
        }
    }
}

/// Reads a lock, recovering from poisoning: a panic elsewhere must not take routing down, and
/// every critical section here leaves the tables consistent between statements.
pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes a lock, recovering from poisoning (see [`read`]).
pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
