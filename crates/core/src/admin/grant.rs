//! `bondy.grant.create|revoke` and the grant listings.

use junction_wire::{Dict, Uri, Value, dict};

use super::{Admin, Args, strings_of};
use crate::error::Error;
use crate::options::MatchPolicy;
use crate::security::{Grant, Permission};

/// Answers `bondy.grant.<name>`, or `None` if there is no such procedure.
pub(super) fn call(admin: &Admin<'_>, name: &str, args: &Args) -> Option<Result<Value, Error>> {
    let create = match name {
        "create" => true,
        "revoke" => false,
        _ => return None,
    };
    Some((|| {
        let (realm, offset) = admin.target(args, 2)?;
        let grant = parse(args.dict(offset, "grant")?).map_err(|e| args.wrong(&e))?;
        let mut security = (*realm.security()).clone();
        if create {
            security.grants.push(grant);
        } else {
            let same_target = |g: &Grant| g.uri == grant.uri && g.policy == grant.policy;
            for existing in security.grants.iter_mut().filter(|g| same_target(g)) {
                existing.roles.retain(|r| {
                    !grant.roles.contains(r)
                        || grant.permissions.iter().any(|p| !existing.permissions.contains(p))
                });
            }
            for existing in security
                .grants
                .iter_mut()
                .filter(|g| same_target(g) && g.roles.iter().any(|r| grant.roles.contains(r)))
            {
                existing.permissions.retain(|p| !grant.permissions.contains(p));
            }
            security.grants.retain(|g| !g.permissions.is_empty() && !g.roles.is_empty());
        }
        admin.commit(&realm, security)?;
        Ok(Value::Null)
    })())
}

/// A grant from Bondy's input data: `{permissions, uri, match, roles}` (`resource` is accepted
/// for `uri`, `to` for `roles`).
fn parse(data: &Dict) -> Result<Grant, String> {
    let permissions = strings_of(data.get("permissions"), "permissions")?
        .iter()
        .flat_map(|p| match p.as_str() {
            "all" => Permission::ALL.map(Ok).to_vec(),
            name => vec![
                Permission::parse(name).ok_or_else(|| format!("unknown permission \"{name}\"")),
            ],
        })
        .collect::<Result<Vec<_>, _>>()?;
    let uri = data
        .get("uri")
        .or_else(|| data.get("resource"))
        .and_then(Value::as_str)
        .ok_or("uri is required")?;
    let policy = match data.get("match").and_then(Value::as_str) {
        None | Some("exact") => MatchPolicy::Exact,
        Some("prefix") => MatchPolicy::Prefix,
        Some("wildcard") => MatchPolicy::Wildcard,
        Some(other) => return Err(format!("unknown match policy \"{other}\"")),
    };
    let roles = strings_of(data.get("roles").or_else(|| data.get("to")), "roles")?;
    if permissions.is_empty() || roles.is_empty() {
        return Err("permissions and roles must not be empty".into());
    }
    Ok(Grant { permissions, uri: Uri::from(uri), policy, roles })
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
