//! `wamp.session.*` procedures: counting, listing, describing and killing sessions, and
//! testaments.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use junction_wire::message::Goodbye;
use junction_wire::{Payload, SessionId, Uri, UriRules, Value, dict};

use super::args::Args;
use crate::error::Error;
use crate::options::PublishOptions;
use crate::realm::{Peer, Realm};

/// Answers `wamp.session.<name>`, or `None` if there is no such procedure.
pub(super) fn call(
    realm: &Realm,
    caller: &Arc<Peer>,
    name: &str,
    args: &Args,
    now: SystemTime,
) -> Option<Result<Value, Error>> {
    let ids = |peers: Vec<Arc<Peer>>| {
        Value::List(peers.iter().map(|p| Value::from(p.id().get())).collect())
    };
    Some(match name {
        "count" => filtered(realm, args).map(|s| Value::from(s.len())),
        "list" => filtered(realm, args).map(ids),
        "get" => session(realm, args).map(|peer| Value::Dict(peer.describe())),
        "kill" => kill_one(realm, caller, args, now),
        "kill_by_authid" => {
            let authid = args.string(0, "authid");
            authid.and_then(|a| kill(realm, caller, args, now, |p| *p.info().authid == *a)).map(ids)
        }
        "kill_by_authrole" => {
            let role = args.string(0, "authrole");
            role.and_then(|r| kill(realm, caller, args, now, |p| *p.info().authrole == *r))
                .map(|k| Value::from(k.len()))
        }
        "kill_all" => kill(realm, caller, args, now, |_| true).map(|k| Value::from(k.len())),
        "add_testament" => add_testament(caller, args),
        "flush_testaments" => scope(args).map(|scope| {
            caller.testaments().flush(scope);
            Value::Null
        }),
        _ => return None,
    })
}

/// Sessions whose authrole is in the optional filter (argument 1).
fn filtered(realm: &Realm, args: &Args) -> Result<Vec<Arc<Peer>>, Error> {
    let roles = args.strings(0, "filter_authroles")?;
    let sessions = realm.sessions().into_iter();
    Ok(match roles {
        Some(roles) => {
            sessions.filter(|p| roles.iter().any(|r| **r == *p.info().authrole)).collect()
        }
        None => sessions.collect(),
    })
}

fn session(realm: &Realm, args: &Args) -> Result<Arc<Peer>, Error> {
    let raw = args.id(0, "session")?;
    SessionId::new(raw).and_then(|id| realm.session(id)).ok_or(Error::NoSuchSession(raw))
}

/// The GOODBYE a killed session receives: `reason` (default `wamp.close.killed`) and an
/// optional `message`, both keyword arguments.
fn goodbye(args: &Args) -> Result<Goodbye, Error> {
    let reason = Uri::from(args.kw_string("reason")?.unwrap_or("wamp.close.killed"));
    if !reason.is_valid(UriRules::Loose, false) {
        return Err(Error::InvalidUri {
            uri: reason,
            reason: "the kill reason must be a valid URI",
        });
    }
    let details = match args.kw_string("message")? {
        Some(message) => dict! { "message" => message },
        None => dict! {},
    };
    Ok(Goodbye { details, reason })
}

fn kill_one(realm: &Realm, caller: &Peer, args: &Args, now: SystemTime) -> Result<Value, Error> {
    let target = session(realm, args)?;
    if target.id() == caller.id() {
        // The spec: "no *other* session with that ID exists".
        return Err(Error::NoSuchSession(target.id().get()));
    }
    realm.kill(&target, goodbye(args)?, now);
    Ok(Value::Null)
}

/// Kills every session but the caller for which `selects` holds; returns them.
fn kill(
    realm: &Realm,
    caller: &Peer,
    args: &Args,
    now: SystemTime,
    selects: impl Fn(&Peer) -> bool,
) -> Result<Vec<Arc<Peer>>, Error> {
    let goodbye = goodbye(args)?;
    let victims: Vec<_> =
        realm.sessions().into_iter().filter(|p| p.id() != caller.id() && selects(p)).collect();
    for victim in &victims {
        realm.kill(victim, goodbye.clone(), now);
    }
    Ok(victims)
}

/// When a testament is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// When the session is detached from the realm.
    Detached,
    /// When the session is destroyed (right after `Detached`: Junction has no session resumption).
    Destroyed,
}

fn scope(args: &Args) -> Result<Scope, Error> {
    match args.kw_string("scope")? {
        None | Some("destroyed") => Ok(Scope::Destroyed),
        Some("detached") => Ok(Scope::Detached),
        Some(other) => Err(Error::InvalidArgument(format!(
            "testament scope must be \"detached\" or \"destroyed\", not \"{other}\""
        ))),
    }
}

fn add_testament(caller: &Peer, args: &Args) -> Result<Value, Error> {
    let topic = args.uri(0, "topic")?;
    if !topic.is_valid(UriRules::Loose, false) || topic.is_reserved() {
        return Err(Error::InvalidUri {
            uri: topic,
            reason: "not a topic a session may publish to",
        });
    }
    let payload = Payload::from_values(args.list(1, "args")?, args.dict(2, "kwargs")?);
    let options =
        PublishOptions::parse(&args.kw_dict("publish_options")?).map_err(Error::into_argument)?;
    let scope = scope(args)?;
    caller.testaments().add(scope, Testament { topic, payload, options });
    Ok(Value::Null)
}

/// An event to publish when its session goes away.
#[derive(Debug, Clone)]
pub(crate) struct Testament {
    pub(crate) topic: Uri,
    pub(crate) payload: Payload,
    pub(crate) options: PublishOptions,
}

/// A session's testaments, in the order they were added, per scope.
#[derive(Debug, Default)]
pub(crate) struct Testaments(Mutex<(Vec<Testament>, Vec<Testament>)>);

impl Testaments {
    fn add(&self, scope: Scope, testament: Testament) {
        let mut buckets = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match scope {
            Scope::Detached => buckets.0.push(testament),
            Scope::Destroyed => buckets.1.push(testament),
        }
    }

    fn flush(&self, scope: Scope) {
        let mut buckets = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match scope {
            Scope::Detached => buckets.0.clear(),
            Scope::Destroyed => buckets.1.clear(),
        }
    }

    /// Takes every testament: `detached` ones first, then `destroyed` ones, as the spec asks of
    /// a router without session resumption.
    pub(crate) fn take(&self) -> Vec<Testament> {
        let mut buckets = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (detached, destroyed) = std::mem::take(&mut *buckets);
        detached.into_iter().chain(destroyed).collect()
    }
}
