//! `wamp.registration.*` procedures.

use std::time::SystemTime;

use junction_wire::{RegistrationId, SessionId, Value};

use super::args::Args;
use super::events::registration_details;
use super::subscription::by_policy;
use crate::error::Error;
use crate::options::RegisterOptions;
use crate::realm::Realm;

/// Answers `wamp.registration.<name>`, or `None` if there is no such procedure.
pub(super) fn call(
    realm: &Realm,
    name: &str,
    args: &Args,
    now: SystemTime,
) -> Option<Result<Value, Error>> {
    let dealer = &realm.dealer;
    Some(match name {
        "list" => Ok(Value::Dict(by_policy(dealer.list()))),
        "lookup" => lookup(realm, args),
        "match" => {
            args.uri(0, "procedure").map(|uri| dealer.best_match(&uri).map(|id| id.get()).into())
        }
        "get" => registration(args).and_then(|id| {
            dealer
                .with(id, registration_details)
                .map(Value::Dict)
                .ok_or(Error::NoSuchRegistration(id.get()))
        }),
        "list_callees" => {
            callees(realm, args).map(|c| Value::List(c.into_iter().map(Value::from).collect()))
        }
        "count_callees" => callees(realm, args).map(|c| Value::from(c.len())),
        "remove_callee" => remove_callee(realm, args, now),
        _ => return None,
    })
}

/// `wamp.registration.remove_callee(registration, session, reason=?)`: revokes a registration
/// from one callee.
fn remove_callee(realm: &Realm, args: &Args, now: SystemTime) -> Result<Value, Error> {
    let id = registration(args)?;
    let raw = args.id(1, "session")?;
    let session = SessionId::new(raw).ok_or(Error::NoSuchSession(raw))?;
    let reason = args.kw_string("reason")?.unwrap_or("wamp.close.removed");
    let deleted = realm.dealer.revoke(id, session, reason)?;
    realm.meta_unregistered(session, id, deleted, now);
    Ok(Value::Null)
}

fn lookup(realm: &Realm, args: &Args) -> Result<Value, Error> {
    let procedure = args.uri(0, "procedure")?;
    let policy = RegisterOptions::parse(&args.dict(1, "options")?)
        .map_err(Error::into_argument)?
        .match_policy;
    Ok(realm.dealer.lookup(&procedure, policy).map(|id| id.get()).into())
}

fn registration(args: &Args) -> Result<RegistrationId, Error> {
    let raw = args.id(0, "registration")?;
    RegistrationId::new(raw).ok_or(Error::NoSuchRegistration(raw))
}

fn callees(realm: &Realm, args: &Args) -> Result<Vec<u64>, Error> {
    let id = registration(args)?;
    let sessions =
        realm.dealer.with(id, |r| r.callees()).ok_or(Error::NoSuchRegistration(id.get()))?;
    Ok(sessions.into_iter().map(|s| s.get()).collect())
}
