//! The admin API: Bondy's `bondy.*` procedures for realms, users, groups and grants, with the
//! same names, arguments and results.
//!
//! - Who may call: sessions of a realm with security enabled, under that realm's grants
//!   (`wamp.call` on the procedure). On realms without security the admin API is refused: an
//!   open realm must not let anonymous clients manage it.
//! - Which realm is managed: the realm is an optional first argument (Bondy's rule). Without it,
//!   the caller's own realm; with it, that realm, which only sessions of the admin realm
//!   (`admin_realm` in the configuration) may name when it is not their own.
//! - Changes are written through the router's persistence (durable before the call is
//!   answered), then swapped into the live realm, so they apply at once.
//! - Events: `bondy.realm.created|updated|deleted`, `bondy.user.added|updated|deleted|
//!   credentials_changed`, `bondy.group.added|updated|deleted`, published in the managed realm
//!   and the admin realm.
//! - Tickets: `bondy.ticket.issue|revoke|revoke_all|verify` (see `ticket`).
//! - TLS: `bondy.cert_manager.rotate_all|rotate_listener` (see `cert_manager`).

mod cert_manager;
mod grant;
mod realm;
mod source;
mod ticket;
mod user;

use std::sync::Arc;

use junction_wire::{Dict, Payload, Uri, Value};

use crate::error::Error;
use crate::realm::Realm;
use crate::router::Router;
use crate::security::Security;
use crate::session::SessionInfo;
use crate::time::Now;

/// Answers a `bondy.*` call, or `None` if `procedure` is not an admin procedure.
pub(crate) fn call(
    router: &Router,
    home: &Arc<Realm>,
    caller: Option<&SessionInfo>,
    procedure: &Uri,
    payload: &Payload,
    now: Now,
) -> Option<Result<Payload, Error>> {
    let name = procedure.as_str().strip_prefix("bondy.")?;
    let bad = |e: junction_wire::DecodeError| Error::InvalidArgument(format!("{procedure}: {e}"));
    let args = match (payload.args_list(), payload.kwargs_dict()) {
        (Ok(list), Ok(kwargs)) => Args { procedure: procedure.to_string(), list, kwargs },
        (Err(e), _) | (_, Err(e)) => return Some(Err(bad(e))),
    };
    if !home.security().enabled {
        return Some(Err(Error::NotAuthorized(format!(
            "the admin API needs security on realm \"{}\"; {procedure} is refused on open realms",
            home.name()
        ))));
    }
    let admin = Admin { router, home, caller, now };
    let result = if let Some(rest) = name.strip_prefix("realm.") {
        realm::call(&admin, rest, &args)?
    } else if let Some(rest) = name.strip_prefix("user.") {
        user::call(&admin, rest, &args)?
    } else if let Some(rest) = name.strip_prefix("group.") {
        user::call_group(&admin, rest, &args)?
    } else if let Some(rest) = name.strip_prefix("grant.") {
        grant::call(&admin, rest, &args)?
    } else if let Some(rest) = name.strip_prefix("source.") {
        source::call(&admin, rest, &args)?
    } else if let Some(rest) = name.strip_prefix("ticket.") {
        ticket::call(&admin, rest, &args)?
    } else if let Some(rest) = name.strip_prefix("cert_manager.") {
        cert_manager::call(&admin, rest, &args)?
    } else {
        return None;
    };
    Some(result.map(|value| match value {
        Value::Null => Payload::default(),
        value => Payload::args(vec![value]),
    }))
}

/// The context of one admin call.
struct Admin<'a> {
    router: &'a Router,
    home: &'a Arc<Realm>,
    /// The calling session; `None` for the local operator (the CLI).
    caller: Option<&'a SessionInfo>,
    now: Now,
}

impl Admin<'_> {
    /// Whether the caller's realm is the admin realm.
    fn is_admin_realm(&self) -> bool {
        self.router.config().admin_realm.as_ref() == Some(self.home.name())
    }

    /// The realm to manage: the first argument when the call has `arity` arguments (Bondy's
    /// optional realm), else the caller's realm. Returns the realm and the remaining arguments'
    /// offset.
    fn target(&self, args: &Args, arity: usize) -> Result<(Arc<Realm>, usize), Error> {
        if args.list.len() < arity {
            return Ok((Arc::clone(self.home), 0));
        }
        let uri = Uri::from(args.string(0, "realm uri")?);
        if &uri != self.home.name() && !self.is_admin_realm() {
            return Err(Error::NotAuthorized(format!(
                "only sessions of the admin realm may manage realm \"{uri}\" from realm \"{}\"",
                self.home.name()
            )));
        }
        let realm = self
            .router
            .realm(&uri)
            .ok_or_else(|| Error::NotFound(format!("no realm \"{uri}\"")))?;
        Ok((realm, 1))
    }

    /// Validates new users, groups and grants, makes them durable, then swaps them in.
    fn commit(&self, realm: &Realm, security: Security) -> Result<(), Error> {
        self.commit_config(
            realm,
            crate::realm::RealmConfig { security, ..(*realm.config()).clone() },
        )
    }

    /// Validates a realm's new settings and security, makes them durable, then swaps them in,
    /// for the realm and for the realms that inherit from it.
    fn commit_config(&self, realm: &Realm, config: crate::realm::RealmConfig) -> Result<(), Error> {
        self.check(&config)?;
        self.router.persist_config(&config).map_err(Error::Internal)?;
        realm.set_config(config);
        realm.enforce_grants(self.now.wall);
        self.router.propagate(realm, self.now.wall);
        Ok(())
    }

    /// Checks a realm's settings before they are stored: the prototype rules, then its users,
    /// groups and grants as merged with its prototype's (a user may be in a group the
    /// prototype defines).
    fn check(&self, config: &crate::realm::RealmConfig) -> Result<(), Error> {
        let prototype = self.router.prototype_of(config);
        config
            .check_prototype(prototype.as_deref())
            .map_err(|e| Error::InvalidData(e.to_string()))?;
        config.effective_security(prototype.as_deref()).validate().map_err(|e| match e {
            crate::security::SecurityError::NoSuchGroups(groups) => {
                Error::NoSuchGroups(groups.join(", "))
            }
            e @ crate::security::SecurityError::NameTaken(_) => Error::AlreadyExists(e.to_string()),
            e @ crate::security::SecurityError::TooManyAliases(_) => {
                Error::PropertyRangeLimit(e.to_string())
            }
            other => Error::InvalidArgument(other.to_string()),
        })
    }

    /// Publishes an admin event in the managed realm and in the admin realm.
    fn announce(&self, realm: &Realm, topic: &str, args: Vec<Value>) {
        realm.publish_meta(topic, args.clone(), self.now.wall);
        let admin = self.router.config().admin_realm.as_ref().filter(|a| *a != realm.name());
        if let Some(admin) = admin.and_then(|a| self.router.realm(a)) {
            admin.publish_meta(topic, args, self.now.wall);
        }
    }
}

/// Decoded arguments of an admin call.
struct Args {
    procedure: String,
    list: Vec<Value>,
    kwargs: Dict,
}

impl Args {
    fn wrong(&self, what: &str) -> Error {
        Error::InvalidArgument(format!("{}: {what}", self.procedure))
    }

    fn string(&self, i: usize, name: &str) -> Result<&str, Error> {
        self.list
            .get(i)
            .and_then(Value::as_str)
            .ok_or_else(|| self.wrong(&format!("argument {} ({name}) must be a string", i + 1)))
    }

    fn dict(&self, i: usize, name: &str) -> Result<&Dict, Error> {
        self.list
            .get(i)
            .and_then(Value::as_dict)
            .ok_or_else(|| self.wrong(&format!("argument {} ({name}) must be a dictionary", i + 1)))
    }

    fn strings(&self, i: usize, name: &str) -> Result<Vec<String>, Error> {
        strings_of(self.list.get(i), name).map_err(|e| self.wrong(&e))
    }
}

/// A list of strings from a value (absent = empty).
fn strings_of(value: Option<&Value>, name: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::List(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{name} must be a list of strings")),
        Some(_) => Err(format!("{name} must be a list of strings")),
    }
}
