//! `bondy.realm.*`: create, get, list, update and delete realms; security status; grants.

use std::time::Duration;

use junction_wire::{Dict, Uri, UriRules, Value, dict};

use super::{Admin, Args, strings_of};
use crate::error::Error;
use crate::realm::{Inherits, Realm, RealmConfig};
use crate::security::{AUTHMETHODS, Security};

/// Answers `bondy.realm.<name>`, or `None` if there is no such procedure.
pub(super) fn call(admin: &Admin<'_>, name: &str, args: &Args) -> Option<Result<Value, Error>> {
    Some(match name {
        "create" => create(admin, args),
        "get" => managed(admin, args).map(|r| describe(&r)),
        "list" => Ok(Value::List(visible(admin).iter().map(|r| describe(r)).collect())),
        "update" => update(admin, args),
        "delete" => delete(admin, args),
        "security.enable" | "security.disable" => managed(admin, args).and_then(|realm| {
            set_enabled(admin, &realm, name == "security.enable").map(|()| Value::Null)
        }),
        "security.is_enabled" => managed(admin, args).map(|r| Value::Bool(r.security().enabled)),
        "security.status" => managed(admin, args)
            .map(|r| Value::from(if r.security().enabled { "enabled" } else { "disabled" })),
        "grants" => {
            managed(admin, args).map(|r| super::grant::list(&r.security().grants, |_| true))
        }
        _ => return None,
    })
}

/// The realm named by argument 1 (the caller's realm when absent).
fn managed(admin: &Admin<'_>, args: &Args) -> Result<std::sync::Arc<Realm>, Error> {
    admin.target(args, 1).map(|(realm, _)| realm)
}

/// Realms the caller may see: all of them from the admin realm, else its own.
fn visible(admin: &Admin<'_>) -> Vec<std::sync::Arc<Realm>> {
    if admin.is_admin_realm() {
        admin.router.realms()
    } else {
        vec![std::sync::Arc::clone(admin.home)]
    }
}

/// `bondy.realm.create({uri, description, authmethods, security_enabled, allow_anonymous,
/// allow_connections, is_prototype, prototype_uri})`: only from the admin realm. A realm with a
/// prototype inherits every inheritable setting the data does not set.
fn create(admin: &Admin<'_>, args: &Args) -> Result<Value, Error> {
    if !admin.is_admin_realm() {
        return Err(Error::NotAuthorized("realms are created from the admin realm".into()));
    }
    let data = args.dict(0, "realm")?;
    let uri =
        data.get("uri").and_then(Value::as_str).ok_or_else(|| args.wrong("uri is required"))?;
    let uri = Uri::from(uri);
    if !uri.is_valid(UriRules::Loose, false) {
        return Err(Error::InvalidUri { uri, reason: "not a valid realm URI" });
    }
    let (is_prototype, prototype_uri) = prototype_fields(data).map_err(|e| args.wrong(&e))?;
    let mut config = RealmConfig {
        disclose_caller: false,
        disclose_publisher: false,
        allow_anonymous: false,
        security: Security { enabled: true, ..Security::default() },
        is_prototype: is_prototype.unwrap_or(false),
        inherits: if prototype_uri.is_some() { Inherits::ALL } else { Inherits::default() },
        prototype_uri,
        ..RealmConfig::open(uri.as_str())
    };
    apply(&mut config, data).map_err(|e| args.wrong(&e))?;
    admin.check(&config)?;
    if !admin.router.create_realm(config).map_err(Error::Internal)? {
        return Err(Error::AlreadyExists(format!("realm \"{uri}\" already exists")));
    }
    let realm = admin.router.realm(&uri).ok_or_else(|| Error::Internal("realm vanished".into()))?;
    admin.announce(&realm, "bondy.realm.created", vec![Value::from(uri.as_str())]);
    Ok(describe(&realm))
}

/// `bondy.realm.update(uri, changes)`: the settings [`apply`] knows, live for every session
/// (of the realms inheriting from it too). `is_prototype` and `prototype_uri` are fixed when
/// the realm is created (Bondy); repeating their current values is accepted.
fn update(admin: &Admin<'_>, args: &Args) -> Result<Value, Error> {
    let (realm, offset) = admin.target(args, 2)?;
    let data = args.dict(offset, "changes")?;
    let mut config = realm.snapshot();
    let (is_prototype, prototype_uri) = prototype_fields(data).map_err(|e| args.wrong(&e))?;
    if is_prototype.is_some_and(|p| p != config.is_prototype) {
        return Err(Error::InvalidData(format!(
            "is_prototype of realm \"{}\" cannot change after it is created",
            realm.name()
        )));
    }
    if data.contains_key("prototype_uri") && prototype_uri != config.prototype_uri {
        return Err(Error::InvalidData(format!(
            "prototype_uri of realm \"{}\" cannot change after it is created",
            realm.name()
        )));
    }
    apply(&mut config, data).map_err(|e| args.wrong(&e))?;
    admin.commit_config(&realm, config)?;
    admin.announce(&realm, "bondy.realm.updated", vec![Value::from(realm.name().as_str())]);
    Ok(describe(&realm))
}

/// `is_prototype` and `prototype_uri` from the input data (`null` = absent).
fn prototype_fields(data: &Dict) -> Result<(Option<bool>, Option<Uri>), String> {
    let is_prototype = match data.get("is_prototype") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_bool().ok_or("is_prototype must be a boolean")?),
    };
    let prototype_uri = match data.get("prototype_uri") {
        None | Some(Value::Null) => None,
        Some(v) => Some(Uri::from(v.as_str().ok_or("prototype_uri must be a string")?)),
    };
    Ok((is_prototype, prototype_uri))
}

/// `bondy.realm.delete(uri)`: closes the realm's sessions with `wamp.close.close_realm`.
fn delete(admin: &Admin<'_>, args: &Args) -> Result<Value, Error> {
    let (realm, _) = admin.target(args, 1)?;
    if !admin.is_admin_realm() || Some(realm.name()) == admin.router.config().admin_realm.as_ref() {
        return Err(Error::NotAuthorized(
            "realms are deleted from the admin realm, which cannot delete itself".into(),
        ));
    }
    let dependents = admin.router.dependents(realm.name());
    if !dependents.is_empty() {
        let names: Vec<&str> = dependents.iter().map(|r| r.name().as_str()).collect();
        return Err(Error::InvalidData(format!(
            "realm \"{}\" is the prototype of [{}]; delete those realms first",
            realm.name(),
            names.join(", ")
        )));
    }
    let force = args.kwargs.get("force").and_then(Value::as_bool).unwrap_or(false);
    let users = realm.security().users.len();
    if users > 0 && !force {
        return Err(Error::ActiveUsers(format!(
            "realm \"{}\" has {users} users; delete them first, or pass force=true",
            realm.name()
        )));
    }
    admin.router.remove_realm(realm.name(), admin.now.wall).map_err(Error::Internal)?;
    super::ticket::revoke_of(admin, realm.name().as_str(), None)?;
    admin.announce(admin.home, "bondy.realm.deleted", vec![Value::from(realm.name().as_str())]);
    Ok(Value::Null)
}

fn set_enabled(admin: &Admin<'_>, realm: &Realm, enabled: bool) -> Result<(), Error> {
    let mut config = realm.snapshot();
    config.security.enabled = enabled;
    config.inherits.security_enabled = false;
    admin.commit_config(realm, config)?;
    admin.announce(realm, "bondy.realm.updated", vec![Value::from(realm.name().as_str())]);
    Ok(())
}

/// Applies the fields Junction understands from Bondy's realm input data. `authmethods` says
/// whether anonymous sessions are admitted (by listing `anonymous`) unless `allow_anonymous`
/// says so explicitly.
fn apply(config: &mut RealmConfig, data: &Dict) -> Result<(), String> {
    let flag = |key: &str| -> Result<Option<bool>, String> {
        data.get(key).map(|v| v.as_bool().ok_or(format!("{key} must be a boolean"))).transpose()
    };
    let millis = |key: &str| -> Result<Option<Option<Duration>>, String> {
        data.get(key)
            .map(|v| {
                let ms =
                    v.as_u64().ok_or(format!("{key} must be a whole number of milliseconds"))?;
                Ok((ms > 0).then(|| Duration::from_millis(ms)))
            })
            .transpose()
    };
    if let Some(v) = data.get("description") {
        config.description = v.as_str().ok_or("description must be a string")?.to_owned();
    }
    if let Some(v) = data.get("authmethods") {
        let methods = strings_of(Some(v), "authmethods")?;
        if let Some(m) =
            methods.iter().find(|m| *m != "anonymous" && !AUTHMETHODS.contains(&m.as_str()))
        {
            return Err(format!("unknown authmethod \"{m}\""));
        }
        config.allow_anonymous = methods.iter().any(|m| m == "anonymous");
        config.security.authmethods = methods.into_iter().filter(|m| m != "anonymous").collect();
        config.inherits.authmethods = false;
    }
    if let Some(v) = flag("allow_anonymous")? {
        config.allow_anonymous = v;
    }
    if let Some(v) = flag("security_enabled")? {
        config.security.enabled = v;
        config.inherits.security_enabled = false;
    }
    if let Some(v) = flag("allow_connections")? {
        config.allow_connections = v;
        config.inherits.allow_connections = false;
    }
    if let Some(v) = flag("disclose_caller")? {
        config.disclose_caller = v;
    }
    if let Some(v) = flag("disclose_publisher")? {
        config.disclose_publisher = v;
    }
    if let Some(v) = millis("default_call_timeout_ms")? {
        config.default_call_timeout = v;
    }
    if let Some(v) = millis("max_call_timeout_ms")? {
        config.max_call_timeout = v;
    }
    Ok(())
}

/// Bondy's `realm` type, as far as Junction has it: the settings as they apply (inherited
/// ones included), with the realm's own user and group counts.
fn describe(realm: &Realm) -> Value {
    let security = realm.security();
    let config = realm.config();
    let mut authmethods: Vec<Value> =
        security.authmethods.iter().map(|m| Value::from(m.as_str())).collect();
    if config.allow_anonymous {
        authmethods.insert(0, Value::from("anonymous"));
    }
    let mut described = dict! {
        "uri" => realm.name().as_str(),
        "description" => config.description.as_str(),
        "authmethods" => Value::List(authmethods),
        "security_enabled" => security.enabled,
        "security_status" => if security.enabled { "enabled" } else { "disabled" },
        "is_prototype" => config.is_prototype,
        "allow_connections" => realm.allow_connections(),
        "users" => config.security.users.len(),
        "groups" => config.security.groups.len(),
        "disclose_caller" => config.disclose_caller,
        "disclose_publisher" => config.disclose_publisher,
        "default_call_timeout_ms" => config.default_call_timeout.map_or(0, |d| d.as_millis() as u64),
        "max_call_timeout_ms" => config.max_call_timeout.map_or(0, |d| d.as_millis() as u64),
    };
    if let Some(prototype) = &config.prototype_uri {
        described.insert("prototype_uri".into(), Value::from(prototype.as_str()));
    }
    Value::Dict(described)
}
