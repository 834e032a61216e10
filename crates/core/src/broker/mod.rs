//! The broker: subscriptions and the fan-out of publications to subscribers.
//!
//! One subscription id is shared by every subscriber of the same topic and match policy, as the
//! spec says. Publishing takes a read lock on the subscription table only, so publishers never
//! contend with each other; subscribe and unsubscribe take the write lock briefly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use junction_wire::message::Event;
use junction_wire::{Dict, Payload, PublicationId, SessionId, SubscriptionId, Uri, Value};

use crate::error::Error;
use crate::ids;
use crate::matcher::matches;
use crate::options::{MatchPolicy, PublishOptions};
use crate::outbox::{Outbound, SharedMessage};
use crate::realm::{Peer, read, write};

/// The realm's subscriptions.
#[derive(Default)]
pub struct Broker {
    table: RwLock<Table>,
}

#[derive(Default)]
struct Table {
    /// Subscription per (topic, policy): the key that makes ids shared.
    by_key: HashMap<(Uri, MatchPolicy), SubscriptionId>,
    /// Prefix and wildcard subscriptions, scanned on every publication.
    patterns: Vec<SubscriptionId>,
    subscriptions: HashMap<SubscriptionId, Subscription>,
    /// What each session subscribed to, so a leaving session is removed in one step.
    by_session: HashMap<SessionId, HashSet<SubscriptionId>>,
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
    subscribers: HashMap<SessionId, Arc<Peer>>,
}

/// The outcome of a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// The (possibly shared) subscription id.
    pub id: SubscriptionId,
    /// Whether this SUBSCRIBE created the subscription.
    pub created: bool,
}

impl Broker {
    /// Adds `peer` to the subscription for `topic` under `policy`, creating it if needed.
    /// Subscribing twice returns the same subscription and delivers each event once.
    /// Returns `None` if the session is being detached.
    pub(crate) fn subscribe(
        &self,
        peer: &Arc<Peer>,
        topic: Uri,
        policy: MatchPolicy,
        now: SystemTime,
    ) -> Option<Subscribed> {
        let mut table = write(&self.table);
        // Checked under the lock that `remove_session` takes after clearing the flag, so a
        // session killed concurrently cannot leave a subscription behind.
        if !peer.is_attached() {
            return None;
        }
        let key = (topic, policy);
        let (id, created) = match table.by_key.get(&key) {
            Some(id) => (*id, false),
            None => {
                let id = ids::fresh(SubscriptionId::new, &table.subscriptions);
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
            subscription.subscribers.insert(peer.id(), Arc::clone(peer));
        }
        table.by_session.entry(peer.id()).or_default().insert(id);
        Some(Subscribed { id, created })
    }

    /// Removes `session` from subscription `id`. Returns whether the subscription was deleted
    /// because it has no subscribers left.
    pub(crate) fn unsubscribe(
        &self,
        session: SessionId,
        id: SubscriptionId,
    ) -> Result<bool, Error> {
        let mut table = write(&self.table);
        let held = table
            .by_session
            .get_mut(&session)
            .is_some_and(|ids| ids.remove(&id));
        if !held {
            return Err(Error::NoSuchSubscription(id.get()));
        }
        Ok(table.remove_subscriber(session, id))
    }

    /// Removes every subscription of a session that went away. Returns each subscription left
    /// and whether it was deleted, for the meta events.
    pub(crate) fn remove_session(&self, session: SessionId) -> Vec<(SubscriptionId, bool)> {
        let mut table = write(&self.table);
        let held = table.by_session.remove(&session).unwrap_or_default();
        held.into_iter()
            .map(|id| (id, table.remove_subscriber(session, id)))
            .collect()
    }

    /// Delivers a publication to every matching subscriber the options allow, encoding the
    /// EVENT at most once per subscription and serializer. Returns the publication id.
    /// `publisher` is `None` for the router's own (meta) events.
    pub(crate) fn publish(
        &self,
        publisher: Option<&Peer>,
        topic: &Uri,
        options: &PublishOptions,
        payload: Payload,
    ) -> PublicationId {
        let publication = ids::random(PublicationId::new);
        let table = read(&self.table);
        for subscription in table.matching(topic) {
            let mut recipients = subscription
                .subscribers
                .values()
                .filter(|p| options.allows(publisher, p))
                .peekable();
            if recipients.peek().is_none() {
                continue;
            }
            let mut details = Dict::new();
            if subscription.policy != MatchPolicy::Exact {
                details.insert("topic".into(), Value::from(topic.as_str()));
            }
            if let Some(info) = publisher.filter(|_| options.disclose_me).map(Peer::info) {
                details.insert("publisher".into(), Value::from(info.id.get()));
                details.insert("publisher_authid".into(), Value::from(info.authid.as_str()));
                details.insert(
                    "publisher_authrole".into(),
                    Value::from(info.authrole.as_str()),
                );
            }
            let event = Arc::new(SharedMessage::new(
                Event {
                    subscription: subscription.id,
                    publication,
                    details,
                    payload: payload.clone(),
                }
                .into(),
            ));
            for peer in recipients {
                peer.push(Outbound::Event(Arc::clone(&event)));
            }
        }
        publication
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
        read(&self.table)
            .by_key
            .get(&(topic.clone(), policy))
            .copied()
    }

    /// Every subscription a publication to `topic` would reach (`wamp.subscription.match`).
    pub(crate) fn matching(&self, topic: &Uri) -> Vec<SubscriptionId> {
        read(&self.table).matching(topic).map(|s| s.id).collect()
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
        let Some(subscription) = self.subscriptions.get_mut(&id) else {
            return false;
        };
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
    fn allows(&self, publisher: Option<&Peer>, subscriber: &Peer) -> bool {
        let s = subscriber.info();
        let id = s.id.get();
        if self.exclude_me && publisher.is_some_and(|p| p.id() == s.id) {
            return false;
        }
        let listed = |list: &Option<Vec<String>>, v: &str| {
            list.as_ref().is_none_or(|l| l.iter().any(|x| x == v))
        };
        !self.exclude.contains(&id)
            && !self.exclude_authid.contains(&s.authid)
            && !self.exclude_authrole.contains(&s.authrole)
            && self.eligible.as_ref().is_none_or(|l| l.contains(&id))
            && listed(&self.eligible_authid, &s.authid)
            && listed(&self.eligible_authrole, &s.authrole)
    }
}
