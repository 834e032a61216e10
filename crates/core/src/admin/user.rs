//! `bondy.user.*` and `bondy.group.*`: users (with their credentials and groups) and groups.

use junction_auth::cryptosign::parse_public_key;
use junction_auth::password::StoredPassword;
use junction_wire::{Dict, Value, dict};

use super::{Admin, Args, strings_of};
use crate::error::Error;
use crate::security::{Group, MAX_ALIASES, Security, User};

/// Answers `bondy.user.<name>`, or `None` if there is no such procedure.
pub(super) fn call(admin: &Admin<'_>, name: &str, args: &Args) -> Option<Result<Value, Error>> {
    Some(match name {
        "add" => add(admin, args),
        "get" => read_one(admin, args, |s, name| s.users.get(name).map(describe_user), "user"),
        "list" => admin
            .target(args, 1)
            .map(|(r, _)| Value::List(r.security().users.values().map(describe_user).collect())),
        "delete" => change(
            admin,
            args,
            2,
            "bondy.user.deleted",
            |s, args, offset| {
                let name = args.string(offset, "username")?;
                s.users.remove(name).map(|_| name.to_owned()).ok_or_else(|| no_user(name))
            },
            |_, _| None,
        )
        .and_then(|deleted| {
            let (realm, offset) = admin.target(args, 2)?;
            let name = Some(args.string(offset, "username")?);
            super::ticket::revoke_of(admin, realm.name().as_str(), name).map(|()| deleted)
        }),
        "update" => change(
            admin,
            args,
            3,
            "bondy.user.updated",
            |s, args, offset| {
                edit_user(s, args, offset, |user| {
                    apply_user(user, args.dict(offset + 1, "changes")?).map_err(|e| args.wrong(&e))
                })
            },
            |s, name| s.users.get(name).map(describe_user),
        )
        .inspect(|_| close_if_disabled(admin, args, 3)),
        "enable" | "disable" => change(
            admin,
            args,
            2,
            "bondy.user.updated",
            |s, args, offset| {
                edit_user(s, args, offset, |user| {
                    user.enabled = name_enables(args);
                    Ok(())
                })
            },
            |_, _| None,
        )
        .inspect(|_| close_if_disabled(admin, args, 2)),
        "is_enabled" => admin.target(args, 2).and_then(|(realm, offset)| {
            let name = args.string(offset, "username")?;
            let user = realm.security().users.get(name).map(|u| u.enabled);
            user.map(Value::from)
                .ok_or_else(|| Error::NoSuchPrincipal(format!("no user \"{name}\"")))
        }),
        "change_password" => change_password(admin, args),
        "add_group" | "add_groups" | "remove_group" | "remove_groups" => {
            membership(admin, args, name, "user", |s, name| {
                s.users.get_mut(name).map(|u| &mut u.groups).ok_or_else(|| no_user(name))
            })
        }
        "grants" => read_one(admin, args, grants_of_user, "user"),
        "add_alias" | "remove_alias" => change(
            admin,
            args,
            3,
            "bondy.user.updated",
            |s, args, offset| {
                let name = args.string(offset, "username")?;
                let alias = args.string(offset + 1, "alias")?;
                let user = s
                    .users
                    .get_mut(name)
                    .ok_or_else(|| Error::NoSuchPrincipal(format!("no user \"{name}\"")))?;
                if args.procedure.ends_with("remove_alias") {
                    user.aliases.retain(|a| a != alias);
                } else if !user.aliases.iter().any(|a| a == alias) {
                    if user.aliases.len() == MAX_ALIASES {
                        return Err(Error::PropertyRangeLimit(format!(
                            "user \"{name}\" has {MAX_ALIASES} aliases already, the most allowed"
                        )));
                    }
                    user.aliases.push(alias.to_owned());
                }
                Ok(name.to_owned())
            },
            |_, _| None,
        ),
        _ => return None,
    })
}

/// Answers `bondy.group.<name>`, or `None` if there is no such procedure.
pub(super) fn call_group(
    admin: &Admin<'_>,
    name: &str,
    args: &Args,
) -> Option<Result<Value, Error>> {
    Some(match name {
        "add" => add_group(admin, args),
        "get" => read_one(admin, args, |s, name| s.groups.get(name).map(describe_group), "group"),
        "list" => admin
            .target(args, 1)
            .map(|(r, _)| Value::List(r.security().groups.values().map(describe_group).collect())),
        "delete" => change(
            admin,
            args,
            2,
            "bondy.group.deleted",
            |s, args, offset| {
                let name = args.string(offset, "name")?;
                s.groups.remove(name).ok_or_else(|| no_group(name))?;
                // Members and subgroups lose the membership instead of pointing at nothing.
                s.users.values_mut().for_each(|u| u.groups.retain(|g| g != name));
                s.groups.values_mut().for_each(|g| g.groups.retain(|p| p != name));
                Ok(name.to_owned())
            },
            |_, _| None,
        ),
        "update" => change(
            admin,
            args,
            3,
            "bondy.group.updated",
            |s, args, offset| {
                let name = args.string(offset, "name")?;
                let group = s.groups.get_mut(name).ok_or_else(|| no_group(name))?;
                if let Some(groups) = args.dict(offset + 1, "changes")?.get("groups") {
                    group.groups =
                        strings_of(Some(groups), "groups").map_err(|e| args.wrong(&e))?;
                }
                Ok(name.to_owned())
            },
            |s, name| s.groups.get(name).map(describe_group),
        ),
        "add_group" | "add_groups" | "remove_group" | "remove_groups" => {
            membership(admin, args, name, "group", |s, name| {
                s.groups.get_mut(name).map(|g| &mut g.groups).ok_or_else(|| no_group(name))
            })
        }
        "grants" => read_one(
            admin,
            args,
            |s, name| {
                s.groups
                    .contains_key(name)
                    .then(|| super::grant::list(&s.grants, |g| g.roles.iter().any(|r| r == name)))
            },
            "group",
        ),
        _ => return None,
    })
}

/// Applies `edit` to the user the argument at `offset` names; returns the username.
fn edit_user(
    security: &mut Security,
    args: &Args,
    offset: usize,
    edit: impl FnOnce(&mut User) -> Result<(), Error>,
) -> Result<String, Error> {
    let name = args.string(offset, "username")?;
    edit(security.users.get_mut(name).ok_or_else(|| no_user(name))?)?;
    Ok(name.to_owned())
}

fn no_user(name: &str) -> Error {
    Error::NotFound(format!("no user \"{name}\""))
}

fn no_group(name: &str) -> Error {
    Error::NotFound(format!("no group \"{name}\""))
}

/// Reads one user or group (argument 1 after the optional realm) through `read`.
fn read_one(
    admin: &Admin<'_>,
    args: &Args,
    read: impl Fn(&Security, &str) -> Option<Value>,
    kind: &str,
) -> Result<Value, Error> {
    let (realm, offset) = admin.target(args, 2)?;
    let name = args.string(offset, "name")?;
    read(&realm.security(), name).ok_or_else(|| Error::NotFound(format!("no {kind} \"{name}\"")))
}

/// Applies a change to a copy of the realm's security, commits it and announces `event` with
/// `[realm, name]`, where `name` is what the change returns. Returns what `result` describes of
/// the changed security (Bondy returns the updated user or group).
fn change(
    admin: &Admin<'_>,
    args: &Args,
    arity: usize,
    event: &str,
    apply: impl FnOnce(&mut Security, &Args, usize) -> Result<String, Error>,
    result: impl FnOnce(&Security, &str) -> Option<Value>,
) -> Result<Value, Error> {
    let (realm, offset) = admin.target(args, arity)?;
    let mut security = realm.snapshot().security;
    let name = apply(&mut security, args, offset)?;
    let described = result(&security, &name).unwrap_or(Value::Null);
    admin.commit(&realm, security)?;
    admin.announce(
        &realm,
        event,
        vec![Value::from(realm.name().as_str()), Value::from(name.as_str())],
    );
    Ok(described)
}

/// `bondy.user.add(realm?, {username, password, authorized_keys, groups})`.
fn add(admin: &Admin<'_>, args: &Args) -> Result<Value, Error> {
    let (realm, offset) = admin.target(args, 2)?;
    let data = args.dict(offset, "user")?;
    let name = data
        .get("username")
        .and_then(Value::as_str)
        .ok_or_else(|| args.wrong("username is required"))?;
    let mut security = realm.snapshot().security;
    if security.user_named(name).is_some() {
        return Err(Error::AlreadyExists(format!("user \"{name}\" already exists")));
    }
    let mut user = User::named(name);
    apply_user(&mut user, data).map_err(|e| args.wrong(&e))?;
    let described = describe_user(&user);
    security.users.insert(name.to_owned(), user);
    admin.commit(&realm, security)?;
    admin.announce(
        &realm,
        "bondy.user.added",
        vec![Value::from(realm.name().as_str()), Value::from(name)],
    );
    Ok(described)
}

/// `bondy.group.add(realm?, {name, groups})`.
fn add_group(admin: &Admin<'_>, args: &Args) -> Result<Value, Error> {
    let (realm, offset) = admin.target(args, 2)?;
    let data = args.dict(offset, "group")?;
    let name =
        data.get("name").and_then(Value::as_str).ok_or_else(|| args.wrong("name is required"))?;
    let groups = strings_of(data.get("groups"), "groups").map_err(|e| args.wrong(&e))?;
    let mut security = realm.snapshot().security;
    if security.groups.contains_key(name) {
        return Err(Error::AlreadyExists(format!("group \"{name}\" already exists")));
    }
    let group = Group { name: name.to_owned(), groups };
    let described = describe_group(&group);
    security.groups.insert(name.to_owned(), group);
    admin.commit(&realm, security)?;
    admin.announce(
        &realm,
        "bondy.group.added",
        vec![Value::from(realm.name().as_str()), Value::from(name)],
    );
    Ok(described)
}

/// `bondy.user.change_password(realm?, username, new_password, old_password?)`. With three
/// arguments the first is a realm when a realm of that name exists.
fn change_password(admin: &Admin<'_>, args: &Args) -> Result<Value, Error> {
    let first_is_realm = args.list.len() == 4
        || (args.list.len() == 3
            && args
                .string(0, "realm")
                .ok()
                .is_some_and(|r| admin.router.realm(&r.into()).is_some()));
    let (realm, offset) = if first_is_realm {
        admin.target(args, args.list.len())?
    } else {
        (std::sync::Arc::clone(admin.home), 0)
    };
    let name = args.string(offset, "username")?;
    let new = args.string(offset + 1, "new_password")?;
    let old = args.list.get(offset + 2).and_then(Value::as_str);
    let mut security = realm.snapshot().security;
    let user = security.users.get_mut(name).ok_or_else(|| no_user(name))?;
    if let (Some(old), Some(stored)) = (old, &user.password)
        && !stored.matches(old)
    {
        return Err(Error::BadSignature("the old password does not match".into()));
    }
    user.password = Some(StoredPassword::new_with(new, has_unsalted_cra(user)));
    admin.commit(&realm, security)?;
    super::ticket::revoke_of(admin, realm.name().as_str(), Some(name))?;
    admin.announce(
        &realm,
        "bondy.user.credentials_changed",
        vec![Value::from(realm.name().as_str()), Value::from(name)],
    );
    Ok(Value::Null)
}

/// `add_group(s)` / `remove_group(s)` for a user or a group: `(realm?, name, group | [groups])`.
fn membership(
    admin: &Admin<'_>,
    args: &Args,
    procedure: &str,
    kind: &str,
    groups_of: impl for<'s> FnOnce(&'s mut Security, &str) -> Result<&'s mut Vec<String>, Error>,
) -> Result<Value, Error> {
    let (realm, offset) = admin.target(args, 3)?;
    let name = args.string(offset, "name")?;
    let changed: Vec<String> = if procedure.ends_with('s') {
        args.strings(offset + 1, "groups")?
    } else {
        vec![args.string(offset + 1, "group")?.to_owned()]
    };
    let mut security = realm.snapshot().security;
    let groups = groups_of(&mut security, name)?;
    if procedure.starts_with("add") {
        groups.extend(changed.into_iter().filter(|g| !groups.contains(g)).collect::<Vec<_>>());
    } else {
        groups.retain(|g| !changed.contains(g));
    }
    admin.commit(&realm, security)?;
    admin.announce(
        &realm,
        &format!("bondy.{kind}.updated"),
        vec![Value::from(realm.name().as_str()), Value::from(name)],
    );
    Ok(Value::Null)
}

/// Whether the procedure is `bondy.user.enable` (otherwise `disable`).
fn name_enables(args: &Args) -> bool {
    args.procedure.ends_with(".enable")
}

/// After a change to a user (argument `arity - 1`, after the optional realm): if the user is
/// now disabled, closes its sessions with GOODBYE `wamp.close.killed`, except the caller's own
/// (a disabled user cannot join again; the caller still gets its result).
fn close_if_disabled(admin: &Admin<'_>, args: &Args, arity: usize) {
    let Ok((realm, offset)) = admin.target(args, arity) else { return };
    let Ok(name) = args.string(offset, "username") else { return };
    if realm.security().users.get(name).is_none_or(|u| u.enabled) {
        return;
    }
    let goodbye = junction_wire::message::Goodbye {
        details: dict! { "message" => format!("user \"{name}\" was disabled") },
        reason: "wamp.close.killed".into(),
    };
    let caller = admin.caller.map(|c| c.id);
    for peer in realm.sessions() {
        let info = peer.info();
        if &*info.authid == name && info.authmethod != "anonymous" && Some(info.id) != caller {
            realm.kill(&peer, goodbye.clone(), admin.now.wall);
        }
    }
}

/// Applies `password`, `authorized_keys`, `groups`, `enabled`, `aliases` and `meta` from
/// Bondy's user input data, and
/// Junction's `wampcra_unsalted` (whether the user gets unsalted WAMP-CRA challenges).
fn apply_user(user: &mut User, data: &Dict) -> Result<(), String> {
    let unsalted = match data.get("wampcra_unsalted") {
        None | Some(Value::Null) => None,
        Some(flag) => Some(flag.as_bool().ok_or("wampcra_unsalted must be a boolean")?),
    };
    if let Some(password) = data.get("password") {
        let password = password.as_str().ok_or("password must be a string")?;
        // Without the flag, a new password keeps the user's choice.
        let unsalted = unsalted.unwrap_or_else(|| has_unsalted_cra(user));
        user.password = Some(StoredPassword::new_with(password, unsalted));
    } else if unsalted == Some(false) {
        if let Some(stored) = &mut user.password {
            stored.unsalted_cra = None;
        }
    } else if unsalted == Some(true) && !has_unsalted_cra(user) {
        // The unsalted key is derived from the password, which the router does not keep.
        return Err("wampcra_unsalted: true needs the password in the same call".into());
    }
    if let Some(keys) = data.get("authorized_keys") {
        user.authorized_keys = strings_of(Some(keys), "authorized_keys")?
            .iter()
            .map(|k| {
                parse_public_key(k)
                    .ok_or_else(|| format!("\"{k}\" is not a hex Ed25519 public key"))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(groups) = data.get("groups") {
        user.groups = strings_of(Some(groups), "groups")?;
    }
    if let Some(enabled) = data.get("enabled") {
        user.enabled = enabled.as_bool().ok_or("enabled must be a boolean")?;
    }
    if let Some(aliases) = data.get("aliases") {
        user.aliases = strings_of(Some(aliases), "aliases")?;
    }
    match data.get("meta") {
        None => {}
        Some(Value::Dict(meta)) => user.meta = meta.clone(),
        Some(Value::Null) => user.meta = Dict::new(),
        Some(_) => return Err("meta must be a dictionary".into()),
    }
    Ok(())
}

/// Bondy's `user` type (credentials shown only as whether they exist, and public keys).
fn describe_user(user: &User) -> Value {
    Value::Dict(dict! {
        "type" => "user",
        "username" => user.authid.as_str(),
        "groups" => Value::List(user.groups.iter().map(|g| Value::from(g.as_str())).collect()),
        "enabled" => user.enabled,
        "has_password" => user.password.is_some(),
        "wampcra_unsalted" => has_unsalted_cra(user),
        "has_authorized_keys" => !user.authorized_keys.is_empty(),
        "authorized_keys" => Value::List(user.authorized_keys.iter().map(|k| Value::from(hex::encode(k))).collect()),
        "aliases" => Value::List(user.aliases.iter().map(|a| Value::from(a.as_str())).collect()),
        "meta" => user.meta.clone(),
    })
}

/// Whether the user opted in to unsalted WAMP-CRA (and has the key for it).
fn has_unsalted_cra(user: &User) -> bool {
    user.password.as_ref().is_some_and(|p| p.unsalted_cra.is_some())
}

fn describe_group(group: &Group) -> Value {
    Value::Dict(dict! {
        "type" => "group",
        "name" => group.name.as_str(),
        "groups" => Value::List(group.groups.iter().map(|g| Value::from(g.as_str())).collect()),
        "meta" => Dict::new(),
    })
}

/// The grants that reach a user: to its authid, its groups (nested), or `all`.
fn grants_of_user(security: &Security, name: &str) -> Option<Value> {
    security.users.get(name)?;
    let principals = security.principals(name, false);
    Some(super::grant::list(&security.grants, |g| g.roles.iter().any(|r| principals.contains(r))))
}
