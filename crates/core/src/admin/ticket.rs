//! `bondy.ticket.*`: tickets the router issues to an authenticated user, who then joins with
//! authmethod `ticket` and the ticket as its secret. Local and client-local scopes: a ticket is
//! valid on the realm it was issued in, for the user it was issued to.
//!
//! - `issue(; expiry_time_secs, client_ticket, client_id, client_instance_id)`: a ticket for the
//!   caller itself, who must have authenticated neither with an issued ticket nor anonymously
//!   and hold `bondy.issue` on the scope's resource; expiry capped at the router's maximum (30
//!   days). With `client_ticket` (a client application's valid ticket of this realm) the ticket
//!   is a client ticket: issued by the client, named in its scope, expiring with it.
//! - `revoke([realm,] ticket_id)`, `revoke_all([realm,] authid)`: the caller's own tickets, or
//!   any user's for a caller who may also call `bondy.user.update` there (a user administrator),
//!   a session of the admin realm, or the local operator.
//! - `verify([realm,] ticket)`: the claims of a valid ticket, else `authentication_failed`.
//!
//! Deleting a user, changing its password or deleting its realm revokes its tickets.

use junction_auth::ticket::Claims;
use junction_wire::{Uri, Value};

use super::{Admin, Args};
use crate::error::Error;
use crate::options::MatchPolicy;
use crate::realm::Realm;
use crate::security::Permission;
use crate::session::SessionInfo;
use crate::tickets::{DEFAULT_EXPIRY, MAX_EXPIRY, unix};

/// Answers `bondy.ticket.<name>`, or `None` if there is no such procedure.
pub(super) fn call(admin: &Admin<'_>, name: &str, args: &Args) -> Option<Result<Value, Error>> {
    Some(match name {
        "issue" => issue(admin, args),
        "revoke" => admin.target(args, 2).and_then(|(realm, offset)| {
            let id = args.string(offset, "ticket id")?;
            let claims = admin
                .router
                .tickets()
                .get(realm.name().as_str(), id)
                .ok_or_else(|| Error::NotFound(format!("no ticket \"{id}\"")))?;
            may_revoke(admin, &realm, &claims.authid)?;
            revoke(admin, |c| c.id == id)
        }),
        "revoke_all" => admin.target(args, 2).and_then(|(realm, offset)| {
            let authid = args.string(offset, "authid")?;
            may_revoke(admin, &realm, authid)?;
            revoke(admin, |c| c.realm == realm.name().as_str() && c.authid == authid)
        }),
        "verify" => admin.target(args, 2).and_then(|(realm, offset)| {
            let ticket = args.string(offset, "ticket")?;
            let now = unix(admin.now.wall);
            admin
                .router
                .tickets()
                .validate(ticket, realm.name().as_str(), now)
                .map(|c| describe(&c))
                .ok_or_else(|| Error::AuthenticationFailed("the ticket is not valid".into()))
        }),
        _ => return None,
    })
}

fn issue(admin: &Admin<'_>, args: &Args) -> Result<Value, Error> {
    let caller = admin
        .caller
        .ok_or_else(|| Error::NotAuthorized("a ticket is issued to a session's user".into()))?;
    // Bondy's rule: not from a session that joined with a ticket or anonymously (a password
    // given as a static ticket counts as a password).
    if caller.ticket_id.is_some() || caller.authmethod == "anonymous" {
        return Err(Error::NotAuthorized(
            "bondy.ticket.issue needs a session authenticated otherwise than with an issued \
             ticket or anonymously"
                .into(),
        ));
    }
    if let Some(realm) = args.list.first().and_then(Value::as_str)
        && realm != admin.home.name().as_str()
    {
        return Err(Error::NotAuthorized(format!(
            "tickets are issued for the caller's realm only, not \"{realm}\""
        )));
    }
    let expiry = match args.kwargs.get("expiry_time_secs") {
        None | Some(Value::Null) => DEFAULT_EXPIRY.as_secs(),
        Some(v) => v
            .as_u64()
            .filter(|s| *s > 0)
            .ok_or_else(|| args.wrong("expiry_time_secs must be a positive integer"))?,
    };
    let now = unix(admin.now.wall);
    let realm = admin.home.name().as_str();
    let text = |name: &str| match args.kwargs.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            v.as_str().map(Some).ok_or_else(|| args.wrong(&format!("{name} must be a string")))
        }
    };
    // A client ticket: the client application's own ticket (of this realm) vouches for it.
    let client = match text("client_ticket")? {
        None => None,
        Some(ticket) => {
            Some(admin.router.tickets().validate(ticket, realm, now).ok_or_else(|| {
                Error::AuthenticationFailed(
                    "client_ticket is not a valid ticket of this realm".into(),
                )
            })?)
        }
    };
    if let Some(id) = text("client_id")?
        && client.as_ref().is_none_or(|c| c.authid != id)
    {
        return Err(args.wrong("client_id must be the authid of the client_ticket's user"));
    }
    let scope = if client.is_some() { SCOPE_CLIENT_LOCAL } else { SCOPE_LOCAL };
    may_issue(admin, caller, scope)?;
    let claims = Claims {
        id: hex::encode(rand::random::<[u8; 16]>()),
        authid: caller.authid.to_string(),
        realm: realm.to_owned(),
        issued_by: client.as_ref().map_or(&*caller.authid, |c| &c.authid).to_owned(),
        issued_at: now,
        // Never beyond the client's own ticket, whose authority it carries.
        expires_at: (now + expiry.min(MAX_EXPIRY.as_secs()))
            .min(client.as_ref().map_or(u64::MAX, |c| c.expires_at)),
        client_instance_id: client.as_ref().and(text("client_instance_id")?).map(str::to_owned),
        client_id: client.map(|c| c.authid),
    };
    let ticket = admin
        .router
        .tickets()
        .issue(admin.router.persistence(), claims, now)
        .map_err(Error::Internal)?;
    Ok(Value::from(ticket))
}

/// The resources `bondy.issue` is granted on, one per ticket scope (Bondy's names).
const SCOPE_LOCAL: &str = "bondy.ticket.scope.local";
const SCOPE_CLIENT_LOCAL: &str = "bondy.ticket.scope.client_local";

/// Whether the caller holds `bondy.issue` on the scope's resource (on a realm with security).
fn may_issue(admin: &Admin<'_>, caller: &SessionInfo, scope: &str) -> Result<(), Error> {
    let security = admin.home.security();
    let principals = security.principals(&caller.authid, caller.authmethod == "anonymous");
    security.authorize(&principals, Permission::Issue, &Uri::from(scope), MatchPolicy::Exact)
}

/// Whether the caller may revoke `authid`'s tickets in `realm`.
fn may_revoke(admin: &Admin<'_>, realm: &Realm, authid: &str) -> Result<(), Error> {
    let Some(caller) = admin.caller else { return Ok(()) };
    if (&*caller.authid == authid && &caller.realm == realm.name()) || admin.is_admin_realm() {
        return Ok(());
    }
    let security = realm.security();
    let principals = security.principals(&caller.authid, caller.authmethod == "anonymous");
    let update = Uri::from("bondy.user.update");
    security.authorize(&principals, Permission::Call, &update, MatchPolicy::Exact).map_err(|_| {
        Error::NotAuthorized(format!(
            "revoking the tickets of another user needs the right to call {update}"
        ))
    })
}

/// Revokes the tickets of `authid` (every user's when `None`) in `realm`: Bondy revokes them
/// when a user is deleted or its credentials change, and so when its realm is deleted.
pub(super) fn revoke_of(admin: &Admin<'_>, realm: &str, authid: Option<&str>) -> Result<(), Error> {
    revoke(admin, |c| c.realm == realm && authid.is_none_or(|a| c.authid == a)).map(drop)
}

fn revoke(admin: &Admin<'_>, which: impl Fn(&Claims) -> bool) -> Result<Value, Error> {
    admin.router.tickets().revoke(admin.router.persistence(), which).map_err(Error::Internal)?;
    Ok(Value::Null)
}

/// Bondy's claims of a ticket.
fn describe(c: &Claims) -> Value {
    Value::Dict(junction_wire::json::to_dict(&c.to_json()))
}
