//! Event history (spec, "Event History"): events published to configured topics are kept, in
//! the order the broker received them, for `wamp.subscription.get_events`.
//!
//! Events published with session-id black/white lists (`exclude`, `eligible`) are not stored,
//! as the spec asks; authid/authrole lists are stored and applied to whoever asks later.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use junction_wire::{Dict, Payload, PublicationId, SubscriptionId, Uri, Value, dict};

use crate::error::Error;
use crate::matcher::matches;
use crate::options::{MatchPolicy, PublishOptions};
use crate::realm::{HistoryConfig, Peer};

/// The realm's event history.
pub(crate) struct History {
    configs: Vec<HistoryConfig>,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    /// Reception order across topics.
    next_seq: u64,
    by_topic: HashMap<Uri, VecDeque<Stored>>,
}

struct Stored {
    seq: u64,
    timestamp: SystemTime,
    topic: Uri,
    publication: PublicationId,
    details: Dict,
    payload: Payload,
    options: PublishOptions,
}

/// The filters of `wamp.subscription.get_events` (its keyword arguments).
#[derive(Debug, Default)]
pub(crate) struct Query {
    reverse: bool,
    limit: Option<usize>,
    from_time: Option<SystemTime>,
    after_time: Option<SystemTime>,
    before_time: Option<SystemTime>,
    until_time: Option<SystemTime>,
    topic: Option<Uri>,
    from_publication: Option<u64>,
    after_publication: Option<u64>,
    before_publication: Option<u64>,
    until_publication: Option<u64>,
}

impl Query {
    /// Parses the keyword arguments, naming any that is malformed.
    pub(crate) fn parse(kwargs: &Dict) -> Result<Self, Error> {
        let wrong = |key: &str, what: &str| {
            Error::InvalidArgument(format!("get_events: {key} must be {what}"))
        };
        let time = |key: &str| -> Result<Option<SystemTime>, Error> {
            match kwargs.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Str(s)) => humantime::parse_rfc3339_weak(s)
                    .map(Some)
                    .map_err(|_| wrong(key, "an RFC 3339 timestamp")),
                Some(_) => Err(wrong(key, "an RFC 3339 timestamp")),
            }
        };
        let id = |key: &str| -> Result<Option<u64>, Error> {
            match kwargs.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| wrong(key, "a publication id")),
            }
        };
        let limit = match kwargs.get("limit") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64().filter(|n| *n > 0).ok_or_else(|| wrong("limit", "a positive integer"))?
                    as usize,
            ),
        };
        let reverse = match kwargs.get("reverse") {
            None | Some(Value::Null) => false,
            Some(v) => v.as_bool().ok_or_else(|| wrong("reverse", "a boolean"))?,
        };
        let topic = match kwargs.get("topic") {
            None | Some(Value::Null) => None,
            Some(Value::Str(s)) => Some(Uri::new(std::sync::Arc::clone(s))),
            Some(_) => return Err(wrong("topic", "a URI")),
        };
        Ok(Self {
            reverse,
            limit,
            from_time: time("from_time")?,
            after_time: time("after_time")?,
            before_time: time("before_time")?,
            until_time: time("until_time")?,
            topic,
            from_publication: id("from_publication")?,
            after_publication: id("after_publication")?,
            before_publication: id("before_publication")?,
            until_publication: id("until_publication")?,
        })
    }
}

impl History {
    pub(crate) fn new(configs: Vec<HistoryConfig>) -> Self {
        Self { configs, log: Mutex::default() }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        !self.configs.is_empty()
    }

    /// Keeps an event if its topic has history configured and it names no sessions.
    pub(crate) fn record(
        &self,
        topic: &Uri,
        publication: PublicationId,
        timestamp: SystemTime,
        details: &Dict,
        payload: &Payload,
        options: &PublishOptions,
    ) {
        let Some(limit) = self.limit_for(topic) else { return };
        if options.names_sessions() {
            return;
        }
        // Kept at the precision reported (milliseconds), so the time filters compare what the
        // client saw: `after_time` = an event's own timestamp excludes that event.
        let timestamp = truncate_to_millis(timestamp);
        let mut log = self.lock();
        let seq = log.next_seq;
        log.next_seq += 1;
        let events = log.by_topic.entry(topic.clone()).or_default();
        events.push_back(Stored {
            seq,
            timestamp,
            topic: topic.clone(),
            publication,
            details: details.clone(),
            payload: payload.clone(),
            options: options.clone(),
        });
        while events.len() > limit {
            events.pop_front();
        }
    }

    /// The events of a subscription that `requester` may see, filtered by `query`, as the
    /// spec's `Event` dictionaries with a `timestamp`.
    pub(crate) fn query(
        &self,
        subscription: SubscriptionId,
        pattern: &Uri,
        policy: MatchPolicy,
        requester: &Peer,
        query: &Query,
    ) -> Vec<Value> {
        let log = self.lock();
        let info = requester.info();
        let mut events: Vec<&Stored> = log
            .by_topic
            .iter()
            .filter(|(topic, _)| matches(policy, pattern.as_str(), topic.as_str()))
            .filter(|(topic, _)| query.topic.as_ref().is_none_or(|t| t == *topic))
            .flat_map(|(_, events)| events.iter())
            .filter(|e| e.options.allows_identity(&info.authid, &info.authrole))
            .collect();
        events.sort_by_key(|e| e.seq);
        let seq_of = |publication: Option<u64>| {
            publication
                .and_then(|p| events.iter().find(|e| e.publication.get() == p))
                .map(|e| e.seq)
        };
        let (from, after) = (seq_of(query.from_publication), seq_of(query.after_publication));
        let (before, until) = (seq_of(query.before_publication), seq_of(query.until_publication));
        let mut selected: Vec<&Stored> = events
            .iter()
            .copied()
            .filter(|e| from.is_none_or(|s| e.seq >= s) && after.is_none_or(|s| e.seq > s))
            .filter(|e| before.is_none_or(|s| e.seq < s) && until.is_none_or(|s| e.seq <= s))
            .filter(|e| query.from_time.is_none_or(|t| e.timestamp >= t))
            .filter(|e| query.after_time.is_none_or(|t| e.timestamp > t))
            .filter(|e| query.before_time.is_none_or(|t| e.timestamp < t))
            .filter(|e| query.until_time.is_none_or(|t| e.timestamp <= t))
            .collect();
        if query.reverse {
            selected.reverse();
        }
        selected.truncate(query.limit.unwrap_or(usize::MAX));
        selected.into_iter().map(|e| e.to_value(subscription, policy)).collect()
    }

    fn limit_for(&self, topic: &Uri) -> Option<usize> {
        self.configs
            .iter()
            .find(|c| matches(c.policy, c.topic.as_str(), topic.as_str()))
            .map(|c| c.limit)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn truncate_to_millis(t: SystemTime) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(since.as_millis() as u64)
}

impl Stored {
    fn to_value(&self, subscription: SubscriptionId, policy: MatchPolicy) -> Value {
        let mut details = self.details.clone();
        if policy != MatchPolicy::Exact {
            details.insert("topic".into(), Value::from(self.topic.as_str()));
        }
        let mut event = dict! {
            "timestamp" => crate::meta::timestamp(self.timestamp),
            "subscription" => subscription.get(),
            "publication" => self.publication.get(),
            "details" => details,
        };
        // A payload that cannot be decoded is left out rather than failing the whole query.
        if let Some(Ok(args)) = self.payload.args.as_ref().map(|a| a.to_value()) {
            event.insert("args".into(), args);
        }
        if let Some(Ok(kwargs)) = self.payload.kwargs.as_ref().map(|k| k.to_value()) {
            event.insert("kwargs".into(), kwargs);
        }
        Value::Dict(event)
    }
}
