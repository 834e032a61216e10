//! `bondy.source.add|delete|get|list|match`: which methods are allowed from which addresses,
//! for whom.

use junction_wire::{Value, dict};

use super::{Admin, Args, strings_of};
use crate::error::Error;
use crate::security::{AUTHMETHODS, Source};

/// Answers `bondy.source.<name>`, or `None` if there is no such procedure.
pub(super) fn call(admin: &Admin<'_>, name: &str, args: &Args) -> Option<Result<Value, Error>> {
    Some(match name {
        "list" => admin
            .target(args, 1)
            .map(|(realm, _)| Value::List(realm.security().sources.iter().map(describe).collect())),
        "add" => (|| {
            let (realm, offset) = admin.target(args, 2)?;
            let data = args.dict(offset, "source")?;
            let users =
                strings_of(data.get("usernames").or_else(|| data.get("users")), "usernames")
                    .map_err(|e| args.wrong(&e))?;
            let cidr = data
                .get("cidr")
                .and_then(Value::as_str)
                .ok_or_else(|| args.wrong("cidr is required"))?;
            let cidr = parse_cidr(cidr).map_err(|e| args.wrong(&e))?;
            let authmethods =
                strings_of(data.get("authmethods"), "authmethods").map_err(|e| args.wrong(&e))?;
            if let Some(m) =
                authmethods.iter().find(|m| *m != "anonymous" && !AUTHMETHODS.contains(&m.as_str()))
            {
                return Err(args.wrong(&format!("unknown authmethod \"{m}\"")));
            }
            let source = Source { users, cidr, authmethods };
            let described = describe(&source);
            let mut security = realm.snapshot().security;
            security.sources.retain(|s| !(s.users == source.users && s.cidr == source.cidr));
            security.sources.push(source);
            admin.commit(&realm, security)?;
            admin.announce(
                &realm,
                "bondy.source.added",
                vec![Value::from(realm.name().as_str()), described.clone()],
            );
            Ok(described)
        })(),
        "delete" => (|| {
            let (realm, offset) = admin.target(args, 3)?;
            let users = args.strings(offset, "usernames")?;
            let cidr = args.string(offset + 1, "cidr")?;
            let range = parse_cidr(cidr).map_err(|e| args.wrong(&e))?;
            let mut security = realm.snapshot().security;
            let before = security.sources.len();
            security.sources.retain(|s| !(s.users == users && s.cidr == range));
            if security.sources.len() == before {
                return Err(Error::NotFound(format!("no source for {users:?} from {cidr}")));
            }
            admin.commit(&realm, security)?;
            admin.announce(
                &realm,
                "bondy.source.deleted",
                vec![Value::from(realm.name().as_str()), Value::from(cidr)],
            );
            Ok(Value::Null)
        })(),
        "get" => (|| {
            let (realm, offset) = admin.target(args, 3)?;
            // One username (a source naming it) or the exact list of a source.
            let users = match args.list.get(offset) {
                Some(Value::Str(name)) => vec![name.to_string()],
                _ => args.strings(offset, "usernames")?,
            };
            let cidr = args.string(offset + 1, "cidr")?;
            let range = parse_cidr(cidr).map_err(|e| args.wrong(&e))?;
            let security = realm.security();
            let names = |s: &Source| match users.as_slice() {
                [one] => s.users.contains(one),
                all => s.users == all,
            };
            security
                .sources
                .iter()
                .find(|s| s.cidr == range && names(s))
                .map(describe)
                .ok_or_else(|| Error::NotFound(format!("no source for {users:?} from {cidr}")))
        })(),
        "match" => (|| {
            // Bondy's (realm), (realm, username), (realm, username, ip); no argument at all is
            // the caller's realm.
            let (realm, offset) = admin.target(args, args.list.len().max(1))?;
            let username = match args.list.get(offset) {
                Some(_) => Some(args.string(offset, "username")?),
                None => None,
            };
            let address = match args.list.get(offset + 1) {
                Some(_) => {
                    let ip = args.string(offset + 1, "ip")?;
                    let parsed = ip.parse::<std::net::IpAddr>();
                    Some(parsed.map_err(|_| args.wrong(&format!("\"{ip}\" is not an address")))?)
                }
                None => None,
            };
            let applies = |s: &Source| match username {
                // What the router applies to that user: sources naming it, and `all` unless
                // it is `anonymous` (anonymous sessions only match sources naming them).
                Some(name) => {
                    s.users.iter().any(|u| u == name || (u == "all" && name != "anonymous"))
                }
                None => s.users.iter().any(|u| u == "all"),
            };
            let security = realm.security();
            let found = security
                .sources
                .iter()
                .filter(|s| applies(s) && address.is_none_or(|a| s.cidr.contains(&a)))
                .map(describe);
            Ok(Value::List(found.collect()))
        })(),
        _ => return None,
    })
}

fn describe(source: &Source) -> Value {
    Value::Dict(dict! {
        "usernames" => Value::List(source.users.iter().map(|u| Value::from(u.as_str())).collect()),
        "cidr" => source.cidr.to_string(),
        "authmethods" => Value::List(source.authmethods.iter().map(|m| Value::from(m.as_str())).collect()),
    })
}

/// An address range, with host bits cleared so `127.0.0.1/8` and `127.0.0.0/8` are one range.
fn parse_cidr(cidr: &str) -> Result<ipnet::IpNet, String> {
    cidr.parse::<ipnet::IpNet>()
        .map(|range| range.trunc())
        .map_err(|_| format!("\"{cidr}\" is not an address range"))
}
