//! `bondy.grant.create|revoke` and the grant listings.

use junction_wire::{Dict, Uri, Value, dict};

use super::{Admin, Args, strings_of};
use crate::error::Error;
use crate::options::MatchPolicy;
use crate::security::{ANY_RESOURCE, Grant, Permission, Security};

/// Answers `bondy.grant.<name>`, or `None` if there is no such procedure.
pub(super) fn call(admin: &Admin<'_>, name: &str, args: &Args) -> Option<Result<Value, Error>> {
    let create = match name {
        "create" => true,
        "revoke" => false,
        _ => return None,
    };
    Some((|| {
        let (realm, offset) = admin.target(args, 2)?;
        let grants = parse(args.dict(offset, "grant")?).map_err(|e| args.wrong(&e))?;
        if create {
            known_roles(&realm.security(), &grants)?;
        }
        let mut security = realm.snapshot().security;
        for grant in grants {
            if create {
                security.grants.push(grant);
            } else {
                security.grants = revoke(std::mem::take(&mut security.grants), &grant);
            }
        }
        admin.commit(&realm, security)?;
        Ok(Value::Null)
    })())
}

/// Refuses grants to roles that name no user or group of the realm (its prototype's groups
/// included), as Bondy does: a typo would otherwise grant nothing, silently.
fn known_roles(security: &Security, grants: &[Grant]) -> Result<(), Error> {
    let mut unknown: Vec<&str> = grants
        .iter()
        .flat_map(|g| &g.roles)
        .map(String::as_str)
        .filter(|r| {
            !matches!(*r, "all" | "anonymous")
                && !security.users.contains_key(*r)
                && !security.groups.contains_key(*r)
        })
        .collect();
    unknown.dedup();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::UnknownRoles(format!(
            "no user or group named {}",
            unknown.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", ")
        )))
    }
}

/// `grants` without `revoked`'s permissions for `revoked`'s roles on its URI: a grant that also
/// names other roles keeps them with all its permissions; grants left empty disappear.
fn revoke(grants: Vec<Grant>, revoked: &Grant) -> Vec<Grant> {
    let mut kept = Vec::with_capacity(grants.len());
    for grant in grants {
        if grant.uri != revoked.uri || grant.policy != revoked.policy {
            kept.push(grant);
            continue;
        }
        let (affected, others): (Vec<String>, Vec<String>) =
            grant.roles.iter().cloned().partition(|r| revoked.roles.contains(r));
        let remaining: Vec<Permission> = grant
            .permissions
            .iter()
            .copied()
            .filter(|p| !revoked.permissions.contains(p))
            .collect();
        if !others.is_empty() {
            kept.push(Grant { roles: others, ..grant.clone() });
        }
        if !affected.is_empty() && !remaining.is_empty() {
            kept.push(Grant { roles: affected, permissions: remaining, ..grant });
        }
    }
    kept
}

/// Grants from Bondy's input data: `{permissions, uri, match, roles}`, or with
/// `resources: [{uri, match}, …]` for several URIs at once (`resource` is accepted for `uri`,
/// `to` for `roles`).
fn parse(data: &Dict) -> Result<Vec<Grant>, String> {
    let names = strings_of(data.get("permissions"), "permissions")?;
    let permissions = Permission::parse_names(names.iter().map(String::as_str))?;
    let roles = strings_of(data.get("roles").or_else(|| data.get("to")), "roles")?;
    if permissions.is_empty() || roles.is_empty() {
        return Err("permissions and roles must not be empty".into());
    }
    let resources = match data.get("resources") {
        Some(Value::List(items)) if !items.is_empty() => {
            items.iter().map(resource_of).collect::<Result<Vec<_>, _>>()?
        }
        Some(_) => return Err("resources must be a non-empty list of {uri, match}".into()),
        None => vec![resource_of(&Value::Dict(data.clone()))?],
    };
    Ok(resources
        .into_iter()
        .map(|(uri, policy)| Grant {
            permissions: permissions.clone(),
            uri,
            policy,
            roles: roles.clone(),
        })
        .collect())
}

/// A resource's URI and match policy: a `{uri, match}` dictionary, or `any` (as a string or
/// as the URI) for every URI.
fn resource_of(resource: &Value) -> Result<(Uri, MatchPolicy), String> {
    let data = match resource {
        Value::Str(any) if &**any == ANY_RESOURCE => {
            return Ok(Grant::resource(any, MatchPolicy::Exact));
        }
        Value::Dict(data) => data,
        _ => return Err("each of resources must be a {uri, match} dictionary or \"any\"".into()),
    };
    let uri = data
        .get("uri")
        .or_else(|| data.get("resource"))
        .and_then(Value::as_str)
        .ok_or("uri (or resources) is required")?;
    let policy = match data.get("match").and_then(Value::as_str) {
        None | Some("exact") => MatchPolicy::Exact,
        Some("prefix") => MatchPolicy::Prefix,
        Some("wildcard") => MatchPolicy::Wildcard,
        Some(other) => return Err(format!("unknown match policy \"{other}\"")),
    };
    Ok(Grant::resource(uri, policy))
}

/// The grants `keep` selects, as Bondy's `grant` dictionaries.
pub(super) fn list(grants: &[Grant], keep: impl Fn(&Grant) -> bool) -> Value {
    Value::List(
        grants
            .iter()
            .filter(|g| keep(g))
            .map(|g| {
                Value::Dict(dict! {
                    "permissions" => Value::List(g.permissions.iter().map(|p| Value::from(p.name())).collect()),
                    "uri" => g.uri.as_str(),
                    "match" => g.policy.name(),
                    "roles" => Value::List(g.roles.iter().map(|r| Value::from(r.as_str())).collect()),
                })
            })
            .collect(),
    )
}
