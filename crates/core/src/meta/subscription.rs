//! `wamp.subscription.*` procedures.

use std::collections::HashMap;
use std::time::SystemTime;

use junction_wire::{Dict, SessionId, SubscriptionId, Value};

use super::args::Args;
use super::events::subscription_details;
use crate::broker::history::Query;
use crate::error::Error;
use crate::options::{MatchPolicy, SubscribeOptions};
use crate::realm::{Peer, Realm};

/// Answers `wamp.subscription.<name>`, or `None` if there is no such procedure.
pub(super) fn call(
    realm: &Realm,
    caller: &Peer,
    name: &str,
    args: &Args,
    now: SystemTime,
) -> Option<Result<Value, Error>> {
    let broker = &realm.broker;
    Some(match name {
        "list" => Ok(Value::Dict(by_policy(broker.list()))),
        "lookup" => lookup(realm, args),
        "match" => args
            .uri(0, "topic")
            .map(|topic| ids_or_null(broker.matching(&topic).iter().map(|i| i.get()))),
        "get" => subscription(args).and_then(|id| {
            broker
                .with(id, subscription_details)
                .map(Value::Dict)
                .ok_or(Error::NoSuchSubscription(id.get()))
        }),
        "list_subscribers" => {
            subscribers(realm, args).map(|s| Value::List(s.into_iter().map(Value::from).collect()))
        }
        "count_subscribers" => subscribers(realm, args).map(|s| Value::from(s.len())),
        "get_events" => get_events(realm, caller, args),
        "remove_subscriber" => remove_subscriber(realm, args, now),
        _ => return None,
    })
}

/// `wamp.subscription.get_events(subscription, **filters)`: the event history.
fn get_events(realm: &Realm, caller: &Peer, args: &Args) -> Result<Value, Error> {
    let id = subscription(args)?;
    let query = Query::parse(args.kwargs())?;
    realm.broker.history(id, caller, &query).map(Value::List)
}

/// `wamp.subscription.remove_subscriber(subscription, session, reason=?)`: revokes a
/// subscription from one subscriber.
fn remove_subscriber(realm: &Realm, args: &Args, now: SystemTime) -> Result<Value, Error> {
    let id = subscription(args)?;
    let raw = args.id(1, "session")?;
    let session = SessionId::new(raw).ok_or(Error::NoSuchSession(raw))?;
    let reason = args.kw_string("reason")?.unwrap_or("wamp.close.removed");
    let deleted = realm.broker.revoke(id, session, reason)?;
    realm.meta_unsubscribed(session, id, deleted, now);
    Ok(Value::Null)
}

fn lookup(realm: &Realm, args: &Args) -> Result<Value, Error> {
    let topic = args.uri(0, "topic")?;
    let policy = SubscribeOptions::parse(&args.dict(1, "options")?)
        .map_err(Error::into_argument)?
        .match_policy;
    Ok(realm.broker.lookup(&topic, policy).map(|id| id.get()).into())
}

fn subscription(args: &Args) -> Result<SubscriptionId, Error> {
    let raw = args.id(0, "subscription")?;
    SubscriptionId::new(raw).ok_or(Error::NoSuchSubscription(raw))
}

fn subscribers(realm: &Realm, args: &Args) -> Result<Vec<u64>, Error> {
    let id = subscription(args)?;
    let sessions =
        realm.broker.with(id, |s| s.subscribers()).ok_or(Error::NoSuchSubscription(id.get()))?;
    Ok(sessions.into_iter().map(|s| s.get()).collect())
}

/// A list of ids, or null when there are none (as `match` answers).
pub(super) fn ids_or_null(ids: impl Iterator<Item = u64>) -> Value {
    let list: Vec<Value> = ids.map(Value::from).collect();
    if list.is_empty() { Value::Null } else { Value::List(list) }
}

/// `{"exact": [...], "prefix": [...], "wildcard": [...]}`.
pub(super) fn by_policy(mut lists: HashMap<MatchPolicy, Vec<u64>>) -> Dict {
    [MatchPolicy::Exact, MatchPolicy::Prefix, MatchPolicy::Wildcard]
        .into_iter()
        .map(|p| {
            (
                p.name().into(),
                Value::List(
                    lists.remove(&p).unwrap_or_default().into_iter().map(Value::from).collect(),
                ),
            )
        })
        .collect()
}
