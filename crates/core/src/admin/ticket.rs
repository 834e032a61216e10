//! `bondy.ticket.*`: tickets the router issues to an authenticated user, who then joins with
//! authmethod `ticket` and the ticket as its secret. Local scope only: a ticket is valid on the
//! realm it was issued in, for the user it was issued to.
//!
//! - `issue(; expiry_time_secs)`: a ticket for the caller itself, who must have authenticated
//!   neither with an issued ticket nor anonymously; expiry capped at the router's maximum (30 days).
//! - `revoke([realm,] ticket_id)`, `revoke_all([realm,] authid)`: the caller's own tickets, or
//!   any user's for a caller who may also call `bondy.user.update` there (a user administrator),
//!   a session of the admin realm, or the local operator.
//! - `verify([realm,] ticket)`: the claims of a valid ticket, else `authentication_failed`.
//!
//! Deleting a user, changing its password or deleting its realm revokes its tickets.

use junction_auth::ticket::Claims;
use junction_wire::{Uri, Value, dict};

use super::{Admin, Args};
use crate::error::Error;
use crate::options::MatchPolicy;
use crate::realm::Realm;
use crate::security::Permission;
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
    let claims = Claims {
        id: hex::encode(rand::random::<[u8; 16]>()),
        authid: caller.authid.clone(),
        realm: admin.home.name().to_string(),
        issued_by: caller.authid.clone(),
        issued_at: now,
        expires_at: now + expiry.min(MAX_EXPIRY.as_secs()),
    };
    let ticket = admin
        .router
        .tickets()
        .issue(admin.router.persistence(), claims, now)
        .map_err(Error::Internal)?;
    Ok(Value::from(ticket))
}

/// Whether the caller may revoke `authid`'s tickets in `realm`.
fn may_revoke(admin: &Admin<'_>, realm: &Realm, authid: &str) -> Result<(), Error> {
    let Some(caller) = admin.caller else { return Ok(()) };
    if (caller.authid == authid && &caller.realm == realm.name()) || admin.is_admin_realm() {
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
    Value::from(dict! {
        "id" => c.id.as_str(),
        "authid" => c.authid.as_str(),
        "authrealm" => c.realm.as_str(),
        "issued_by" => c.issued_by.as_str(),
        "issued_at" => c.issued_at,
        "expires_at" => c.expires_at,
        "scope" => dict! { "realm" => c.realm.as_str(), "client_id" => Value::Null,
            "client_instance_id" => Value::Null },
    })
}
