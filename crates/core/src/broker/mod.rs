//! The broker: subscriptions and the fan-out of publications to subscribers.
//!
//! One subscription id is shared by every subscriber of the same topic and match policy, as the
//! spec says. Publishing takes a read lock on the subscription table only, so publishers never
//! contend with each other; subscribe and unsubscribe take the write lock briefly. Retained
//! events and the event history sit behind their own locks, taken only when used.
//!
//! - [`mod@self`]: subscriptions, publication fan-out, black/white listing, revocation.
//! - `history`: the event history behind `wamp.subscription.get_events`.
//! - `retained`: the last event per topic, for `get_retained` (event retention).

pub(crate) mod history;
mod retained;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use junction_wire::message::{Event, Unsubscribed};
use junction_wire::{
    Dict, Payload, PublicationId, RequestId, SessionId, SubscriptionId, Uri, Value, dict,
};

use crate::error::{Error, remote_session};
use crate::ids;
use crate::limits::{self, Limits};
use crate::matcher::matches;
use crate::options::{MatchPolicy, PublishOptions};
use crate::outbox::{Outbound, Outbox, SharedMessage};
use crate::realm::{HistoryConfig, Peer, read, write};
use crate::session::supports_passthru;
use history::History;
use retained::Retained;

/// The realm's subscriptions, retained events and event history.
pub struct Broker {
    /// The realm's name, part of every subscription id.
    realm: String,
    table: RwLock<Table>,
    limits: Arc<Limits>,
    retained: Mutex<HashMap<Uri, Retained>>,
    history: History,
}

/// Hashed with foldhash, not SipHash: the maps are read on every publication, and the keys are
/// the router's own ids and URIs that passed its checks (foldhash is seeded at random too).
#[derive(Default)]
struct Table {
    /// Subscription per (topic, policy): the key that makes ids shared.
    by_key: foldhash::HashMap<(Uri, MatchPolicy), SubscriptionId>,
    /// Prefix and wildcard subscriptions, scanned on every publication.
    patterns: Vec<SubscriptionId>,
    subscriptions: foldhash::HashMap<SubscriptionId, Subscription>,
    /// What each session subscribed to, so a leaving session is removed in one step.
    by_session: foldhash::HashMap<SessionId, foldhash::HashSet<SubscriptionId>>,
}

/// A subscription and its subscribers.
#[derive(Debug)]
pub struct Subscription {
    /// The shared id.
    pub id: SubscriptionId,
    /// The topic or pattern.
    pub topic: Uri,
    /// How the topic is matched.
    pub policy: MatchPolicy,
    /// When the first subscriber created it.
    pub created: SystemTime,
    subscribers: HashMap<SessionId, Subscriber>,
}

/// A subscriber as the fan-out reads it: its queue is kept beside its session, so that
/// queuing an event does not read the session's description too (one cache line fewer per
/// subscriber and publication, which counts with thousands of subscribers).
struct Subscriber {
    outbox: Arc<dyn Outbox>,
    peer: Arc<Peer>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.peer.fmt(f)
    }
}

/// The outcome of a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// The (possibly shared) subscription id.
    pub id: SubscriptionId,
    /// Whether this SUBSCRIBE created the subscription.
    pub created: bool,
}

/// A publication, as the broker routes it.
pub(crate) struct Publication<'a> {
    /// The publishing session, or `None` for the router's own (meta) events.
    pub(crate) publisher: Option<&'a Peer>,
    pub(crate) topic: &'a Uri,
    pub(crate) options: &'a PublishOptions,
    /// Tell subscribers who published (the publisher asked, or the realm's policy says so).
    pub(crate) disclose: bool,
    /// The publisher's `ppt_*` options, forwarded in EVENT details.
    pub(crate) passthru: Dict,
    pub(crate) payload: Payload,
    pub(crate) now: SystemTime,
}

impl Broker {
    /// A broker keeping event history for the topics `history` names.
    pub(crate) fn new(realm: &Uri, history: Vec<HistoryConfig>, limits: Arc<Limits>) -> Self {
        Self {
            realm: realm.to_string(),
            table: RwLock::default(),
            limits,
            retained: Mutex::default(),
            history: History::new(history),
        }
    }

    /// Adds `peer` to the subscription for `topic` under `policy`, creating it if needed.
    /// Subscribing twice returns the same subscription and delivers each event once. Returns
    /// `None` if the session is being detached.
    pub(crate) fn subscribe(
        &self,
        peer: &Arc<Peer>,
        topic: Uri,
        policy: MatchPolicy,
        now: SystemTime,
    ) -> Result<Option<Subscribed>, Error> {
        let mut table = write(&self.table);
        // Checked under the lock that `remove_session` takes after clearing the flag, so a
        // session killed concurrently cannot leave a subscription behind.
        if !peer.is_attached() {
            return Ok(None);
        }
        let key = (topic, policy);
        let held = table.by_session.get(&peer.id());
        let already =
            held.is_some_and(|ids| table.by_key.get(&key).is_some_and(|id| ids.contains(id)));
        if !already {
            limits::check(
                self.limits.max_subscriptions,
                held.map_or(0, |ids| ids.len()),
                "subscriptions per session",
            )?;
        }
        let (id, created) = match table.by_key.get(&key) {
            Some(id) => (*id, false),
            None => {
                let id = ids::keyed(
                    SubscriptionId::new,
                    &[&self.realm, "subscription", policy.name(), key.0.as_str()],
                    &table.subscriptions,
                );
                table.by_key.insert(key.clone(), id);
                if policy != MatchPolicy::Exact {
                    table.patterns.push(id);
                }
                let subscription = Subscription {
                    id,
                    topic: key.0,
                    policy,
                    created: now,
                    subscribers: HashMap::new(),
                };
                table.subscriptions.insert(id, subscription);
                (id, true)
            }
        };
        if let Some(subscription) = table.subscriptions.get_mut(&id) {
            let subscriber =
                Subscriber { outbox: Arc::clone(peer.outbox()), peer: Arc::clone(peer) };
            subscription.subscribers.insert(peer.id(), subscriber);
        }
        table.by_session.entry(peer.id()).or_default().insert(id);
        Ok(Some(Subscribed { id, created }))
    }

    /// Removes `session` from subscription `id`. Returns whether the subscription was deleted
    /// because it has no subscribers left.
    pub(crate) fn unsubscribe(
        &self,
        session: SessionId,
        id: SubscriptionId,
    ) -> Result<bool, Error> {
        let mut table = write(&self.table);
        let held = table.by_session.get_mut(&session).is_some_and(|ids| ids.remove(&id));
        if !held {
            return Err(Error::NoSuchSubscription(id.get()));
        }
        Ok(table.remove_subscriber(session, id))
    }

    /// The router withdraws `session` from subscription `id` (subscription revocation): the
    /// subscriber is told with UNSUBSCRIBED(0) if it announced `subscription_revocation`.
    /// Returns whether the subscription was deleted.
    pub(crate) fn revoke(
        &self,
        id: SubscriptionId,
        session: SessionId,
        reason: &str,
    ) -> Result<bool, Error> {
        let mut table = write(&self.table);
        let subscriber = table
            .subscriptions
            .get(&id)
            .and_then(|s| s.subscribers.get(&session).map(|s| Arc::clone(&s.peer)))
            .ok_or(Error::NoSuchSubscription(id.get()))?;
        if subscriber.is_remote() {
            return Err(remote_session(session));
        }
        if let Some(ids) = table.by_session.get_mut(&session) {
            ids.remove(&id);
        }
        let deleted = table.remove_subscriber(session, id);
        drop(table);
        if subscriber.info().has_feature("subscriber", "subscription_revocation") {
            let details = dict! { "subscription" => id.get(), "reason" => reason };
            subscriber.send(Unsubscribed { request: RequestId::MIN, details: Some(details) });
        }
        Ok(deleted)
    }

    /// What `session` holds.
    pub(crate) fn held_by(&self, session: SessionId) -> Vec<SubscriptionId> {
        read(&self.table)
            .by_session
            .get(&session)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Removes every subscription of a session that went away. Returns each subscription left
    /// and whether it was deleted, for the meta events.
    pub(crate) fn remove_session(&self, session: SessionId) -> Vec<(SubscriptionId, bool)> {
        let mut table = write(&self.table);
        let held = table.by_session.remove(&session).unwrap_or_default();
        held.into_iter().map(|id| (id, table.remove_subscriber(session, id))).collect()
    }

    /// Delivers a publication to every matching subscriber the options allow, encoding the
    /// EVENT at most once per subscription and serializer; keeps it as the topic's retained
    /// event and in the topic's history where asked. Returns the publication id.
    pub(crate) fn publish(&self, publication: Publication<'_>) -> PublicationId {
        let id = ids::random(PublicationId::new);
        let Publication { publisher, topic, options, disclose, passthru, payload, now } =
            publication;
        // A payload the router was not shown only goes to subscribers that can handle it.
        let passthru_used = !passthru.is_empty();
        let mut publisher_details = passthru;
        if let Some(info) = publisher.filter(|_| disclose).map(Peer::info) {
            publisher_details.insert("publisher".into(), Value::from(info.id.get()));
            let (authid, authrole) = (Arc::clone(&info.authid), Arc::clone(&info.authrole));
            publisher_details.insert("publisher_authid".into(), Value::from(authid));
            publisher_details.insert("publisher_authrole".into(), Value::from(authrole));
        }
        // Checked once here rather than per subscriber.
        let lists = options.has_lists();
        {
            let table = read(&self.table);
            for subscription in table.matching(topic) {
                // Publisher exclusion compares the map's key, so the subscriber's `Peer` is read
                // only to queue the event (and for the rare checks below).
                let excluded = publisher.filter(|_| options.exclude_me).map(Peer::id);
                // Built for the first recipient: a subscription nobody may receive gets none.
                let mut event: Option<Arc<SharedMessage>> = None;
                for (subscriber, Subscriber { outbox, peer }) in &subscription.subscribers {
                    if Some(*subscriber) == excluded
                        || (lists && !options.allows_by_lists(peer))
                        // The router's own events stay on this node (see `Realm::publish_meta`).
                        || (publisher.is_none() && peer.is_remote())
                        || (passthru_used && !supports_passthru(peer.info(), "subscriber"))
                    {
                        continue;
                    }
                    let event = event.get_or_insert_with(|| {
                        let event = Event {
                            subscription: subscription.id,
                            publication: id,
                            details: event_details(&publisher_details, subscription, topic),
                            payload: payload.clone(),
                        };
                        Arc::new(SharedMessage::new(event.into()))
                    });
                    outbox.push(Outbound::Event(Arc::clone(event)));
                }
            }
        }
        if options.retain {
            let retained = Retained {
                publication: id,
                details: publisher_details.clone(),
                payload: payload.clone(),
                options: options.clone(),
            };
            self.lock_retained().insert(topic.clone(), retained);
        }
        self.history.record(topic, id, now, &publisher_details, &payload, options);
        id
    }

    /// Delivers the retained events that match a new subscription to `peer` (event retention,
    /// `get_retained`), each with `retained: true`.
    pub(crate) fn deliver_retained(&self, peer: &Peer, id: SubscriptionId) {
        let Some((topic, policy)) = self.with(id, |s| (s.topic.clone(), s.policy)) else { return };
        let retained = self.lock_retained();
        for (published_to, event) in retained.iter() {
            if !matches(policy, topic.as_str(), published_to.as_str())
                || !event.options.allows(None, peer)
            {
                continue;
            }
            let mut details = event.details.clone();
            details.insert("retained".into(), Value::Bool(true));
            if policy != MatchPolicy::Exact {
                details.insert("topic".into(), Value::from(published_to.as_str()));
            }
            peer.send(Event {
                subscription: id,
                publication: event.publication,
                details,
                payload: event.payload.clone(),
            });
        }
    }

    /// The event history of subscription `id` for `requester` (`wamp.subscription.get_events`).
    pub(crate) fn history(
        &self,
        id: SubscriptionId,
        requester: &Peer,
        query: &history::Query,
    ) -> Result<Vec<Value>, Error> {
        let (topic, policy) = self
            .with(id, |s| (s.topic.clone(), s.policy))
            .ok_or(Error::NoSuchSubscription(id.get()))?;
        Ok(self.history.query(id, &topic, policy, requester, query))
    }

    /// Whether the realm keeps any event history (`event_history` is announced only then).
    pub fn keeps_history(&self) -> bool {
        self.history.is_enabled()
    }

    fn lock_retained(&self) -> std::sync::MutexGuard<'_, HashMap<Uri, Retained>> {
        self.retained.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The number of subscriptions (for tests and metrics).
    pub fn subscription_count(&self) -> usize {
        read(&self.table).subscriptions.len()
    }

    /// Subscription ids by match policy (`wamp.subscription.list`).
    pub(crate) fn list(&self) -> HashMap<MatchPolicy, Vec<u64>> {
        let table = read(&self.table);
        let mut lists: HashMap<MatchPolicy, Vec<u64>> = HashMap::new();
        for s in table.subscriptions.values() {
            lists.entry(s.policy).or_default().push(s.id.get());
        }
        lists
    }

    /// The subscription for exactly this topic and policy (`wamp.subscription.lookup`).
    pub(crate) fn lookup(&self, topic: &Uri, policy: MatchPolicy) -> Option<SubscriptionId> {
        read(&self.table).by_key.get(&(topic.clone(), policy)).copied()
    }

    /// Every subscription a publication to `topic` would reach (`wamp.subscription.match`).
    pub(crate) fn matching(&self, topic: &Uri) -> Vec<SubscriptionId> {
        read(&self.table).matching(topic).map(|s| s.id).collect()
    }

    /// Every subscription with its topic, policy and subscribers (to re-check grants).
    pub(crate) fn holders(&self) -> Vec<(SubscriptionId, Uri, MatchPolicy, Vec<Arc<Peer>>)> {
        let table = read(&self.table);
        table
            .subscriptions
            .values()
            .map(|s| {
                let peers = s.subscribers.values().map(|s| Arc::clone(&s.peer)).collect();
                (s.id, s.topic.clone(), s.policy, peers)
            })
            .collect()
    }

    /// Calls `f` with subscription `id`, if it exists.
    pub(crate) fn with<T>(
        &self,
        id: SubscriptionId,
        f: impl FnOnce(&Subscription) -> T,
    ) -> Option<T> {
        read(&self.table).subscriptions.get(&id).map(f)
    }
}

/// EVENT.Details: the publisher's (when disclosed) and passthru details, plus the actual topic
/// for pattern subscriptions.
fn event_details(publisher_details: &Dict, subscription: &Subscription, topic: &Uri) -> Dict {
    let mut details = publisher_details.clone();
    if subscription.policy != MatchPolicy::Exact {
        details.insert("topic".into(), Value::from(topic.as_str()));
    }
    details
}

impl Subscription {
    /// The subscribers' session ids.
    pub fn subscribers(&self) -> Vec<SessionId> {
        self.subscribers.keys().copied().collect()
    }
}

impl Table {
    /// The exact subscription for `topic`, then every pattern subscription that matches it.
    fn matching<'a>(&'a self, topic: &'a Uri) -> impl Iterator<Item = &'a Subscription> {
        let exact = self
            .by_key
            .get(&(topic.clone(), MatchPolicy::Exact))
            .and_then(|id| self.subscriptions.get(id));
        let patterns = self
            .patterns
            .iter()
            .filter_map(|id| self.subscriptions.get(id))
            .filter(move |s| matches(s.policy, s.topic.as_str(), topic.as_str()));
        exact.into_iter().chain(patterns)
    }

    fn remove_subscriber(&mut self, session: SessionId, id: SubscriptionId) -> bool {
        let Some(subscription) = self.subscriptions.get_mut(&id) else { return false };
        subscription.subscribers.remove(&session);
        if !subscription.subscribers.is_empty() {
            return false;
        }
        if let Some(gone) = self.subscriptions.remove(&id) {
            self.by_key.remove(&(gone.topic, gone.policy));
            self.patterns.retain(|p| *p != id);
        }
        true
    }
}

impl PublishOptions {
    /// Whether `subscriber` may receive a publication from `publisher` under these options
    /// (publisher exclusion, then black- and whitelists, all conditions combined).
    pub(crate) fn allows(&self, publisher: Option<&Peer>, subscriber: &Peer) -> bool {
        self.allows_publisher(publisher, subscriber) && self.allows_by_lists(subscriber)
    }

    /// Publisher exclusion alone: all of [`Self::allows`] when [`Self::has_lists`] is false.
    pub(crate) fn allows_publisher(&self, publisher: Option<&Peer>, subscriber: &Peer) -> bool {
        !(self.exclude_me && publisher.is_some_and(|p| p.id() == subscriber.id()))
    }

    /// Whether any black- or whitelist is set. Most publications set none, and then the lists
    /// need not be consulted once per subscriber.
    pub(crate) fn has_lists(&self) -> bool {
        !self.exclude.is_empty()
            || !self.exclude_authid.is_empty()
            || !self.exclude_authrole.is_empty()
            || self.eligible.is_some()
            || self.eligible_authid.is_some()
            || self.eligible_authrole.is_some()
    }

    /// The black- and whitelists, by session id and identity.
    fn allows_by_lists(&self, subscriber: &Peer) -> bool {
        let s = subscriber.info();
        let id = s.id.get();
        !self.exclude.contains(&id)
            && self.eligible.as_ref().is_none_or(|l| l.contains(&id))
            && self.allows_identity(&s.authid, &s.authrole)
    }

    /// The part of the black/white lists that depends on stable identity (authid, authrole):
    /// what the event history can still apply later.
    pub(crate) fn allows_identity(&self, authid: &str, authrole: &str) -> bool {
        let listed = |list: &Option<Vec<String>>, v: &str| {
            list.as_ref().is_none_or(|l| l.iter().any(|x| x == v))
        };
        !self.exclude_authid.iter().any(|a| a == authid)
            && !self.exclude_authrole.iter().any(|r| r == authrole)
            && listed(&self.eligible_authid, authid)
            && listed(&self.eligible_authrole, authrole)
    }

    /// Whether the lists name sessions, which makes the event unfit for the history (spec).
    pub(crate) fn names_sessions(&self) -> bool {
        !self.exclude.is_empty() || self.eligible.is_some()
    }
}
