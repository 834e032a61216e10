//! Authorization: does any grant give this session this permission on this URI?

use std::collections::BTreeSet;

use junction_wire::Uri;

use super::{Grant, Security};
use crate::error::Error;
use crate::matcher::matches;
use crate::options::MatchPolicy;

/// An action a grant can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Permission {
    /// REGISTER.
    Register,
    /// UNREGISTER.
    Unregister,
    /// CALL (meta and admin procedures included).
    Call,
    /// CANCEL.
    Cancel,
    /// SUBSCRIBE.
    Subscribe,
    /// UNSUBSCRIBE.
    Unsubscribe,
    /// PUBLISH.
    Publish,
    /// Not an action but a disclosure: the holder's calls to the procedure tell the callee who
    /// calls (INVOCATION.Details `caller`, `caller_authid`, `caller_authrole`), as if CALL had
    /// `disclose_me`.
    DiscloseCaller,
    /// The holder's publications to the topic tell subscribers who published (EVENT.Details
    /// `publisher`, `publisher_authid`, `publisher_authrole`), as if PUBLISH had `disclose_me`.
    DisclosePublisher,
    /// `bondy.issue`: `bondy.ticket.issue` may issue tickets of the scope the resource names
    /// (`bondy.ticket.scope.local`, `bondy.ticket.scope.client_local`).
    Issue,
}

impl Permission {
    /// Every WAMP action, for grants of `all` permissions. The disclosure permissions and
    /// `bondy.issue` are granted by name only, so that `all` never reveals anyone's identity
    /// nor lets anyone mint tickets.
    pub const ALL: [Permission; 7] = [
        Permission::Register,
        Permission::Unregister,
        Permission::Call,
        Permission::Cancel,
        Permission::Subscribe,
        Permission::Unsubscribe,
        Permission::Publish,
    ];

    /// The permission's name as grants spell it (`wamp.call`).
    pub fn name(self) -> &'static str {
        match self {
            Permission::Register => "wamp.register",
            Permission::Unregister => "wamp.unregister",
            Permission::Call => "wamp.call",
            Permission::Cancel => "wamp.cancel",
            Permission::Subscribe => "wamp.subscribe",
            Permission::Unsubscribe => "wamp.unsubscribe",
            Permission::Publish => "wamp.publish",
            Permission::DiscloseCaller => "wamp.disclose_caller",
            Permission::DisclosePublisher => "wamp.disclose_publisher",
            Permission::Issue => "bondy.issue",
        }
    }

    /// The permissions a grant names, where `all` stands for every action ([`Self::ALL`]).
    pub fn parse_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Permission>, String> {
        let mut permissions = Vec::new();
        for name in names {
            match name {
                "all" => permissions.extend(Self::ALL),
                name => permissions.push(
                    Self::parse(name).ok_or_else(|| format!("unknown permission \"{name}\""))?,
                ),
            }
        }
        Ok(permissions)
    }

    /// The permission named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Permission::DiscloseCaller, Permission::DisclosePublisher, Permission::Issue])
            .find(|p| p.name() == name)
    }
}

impl Security {
    /// Checks that a session whose principals (authid, groups, `all`, maybe `anonymous`) are
    /// `principals` may do `permission` on `uri`, which is a pattern under `policy` for pattern
    /// subscriptions and registrations: a grant must then cover every URI the pattern can
    /// reach. The refusal names the permission and the URI.
    pub fn authorize(
        &self,
        principals: &BTreeSet<String>,
        permission: Permission,
        uri: &Uri,
        policy: MatchPolicy,
    ) -> Result<(), Error> {
        if !self.enabled || self.grants(principals, permission, uri, policy) {
            Ok(())
        } else {
            metrics::counter!("junction_authorization_refusals_total", "permission" => permission.name()).increment(1);
            Err(Error::NotAuthorized(format!(
                "permission {} on \"{uri}\" is not granted to this session",
                permission.name()
            )))
        }
    }
}

impl Security {
    /// Whether a grant gives `permission` on `uri` (under `policy`) to one of `principals`,
    /// whether or not security is enabled.
    pub fn grants(
        &self,
        principals: &BTreeSet<String>,
        permission: Permission,
        uri: &Uri,
        policy: MatchPolicy,
    ) -> bool {
        self.grants.iter().any(|g| {
            g.permissions.contains(&permission)
                && g.roles.iter().any(|r| principals.contains(r))
                && covers(g, uri, policy)
        })
    }
}

/// Whether `grant` covers everything `uri` (under `policy`) can reach.
fn covers(grant: &Grant, uri: &Uri, policy: MatchPolicy) -> bool {
    let (pattern, target) = (grant.uri.as_str(), uri.as_str());
    match policy {
        MatchPolicy::Exact => matches(grant.policy, pattern, target),
        // A prefix subscription reaches every URI starting with it: only a prefix grant that is
        // a prefix of it covers them all (or the very same pattern).
        MatchPolicy::Prefix => match grant.policy {
            MatchPolicy::Prefix => target.starts_with(pattern),
            _ => false,
        },
        // A wildcard pattern reaches URIs that start with its text up to the first empty
        // component, and otherwise agree with its fixed components.
        MatchPolicy::Wildcard => match grant.policy {
            MatchPolicy::Prefix => wildcard_literal_prefix(target).starts_with(pattern),
            MatchPolicy::Wildcard => {
                let (g, t): (Vec<&str>, Vec<&str>) =
                    (pattern.split('.').collect(), target.split('.').collect());
                g.len() == t.len() && g.iter().zip(&t).all(|(g, t)| g.is_empty() || g == t)
            }
            MatchPolicy::Exact => false,
        },
    }
}

/// The text of a wildcard pattern before its first empty component (`com.app..x` → `com.app.`).
fn wildcard_literal_prefix(pattern: &str) -> &str {
    if pattern.starts_with('.') {
        return "";
    }
    match pattern.find("..") {
        Some(i) => &pattern[..=i],
        None if pattern.ends_with('.') => pattern,
        None => pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(uri: &str, policy: MatchPolicy) -> Grant {
        Grant {
            permissions: vec![Permission::Subscribe],
            uri: Uri::from(uri),
            policy,
            roles: vec!["all".into()],
        }
    }

    #[test]
    fn exact_grants_do_not_cover_patterns_and_prefix_grants_cover_narrower_prefixes() {
        let exact = grant("com.feed.public", MatchPolicy::Exact);
        assert!(covers(&exact, &Uri::from("com.feed.public"), MatchPolicy::Exact));
        assert!(!covers(&exact, &Uri::from("com.feed.public"), MatchPolicy::Prefix));
        let prefix = grant("com.feed.", MatchPolicy::Prefix);
        assert!(covers(&prefix, &Uri::from("com.feed.public"), MatchPolicy::Prefix));
        assert!(!covers(&prefix, &Uri::from("com.fee"), MatchPolicy::Prefix));
        assert!(covers(&prefix, &Uri::from("com.feed..x"), MatchPolicy::Wildcard));
        assert!(!covers(&prefix, &Uri::from("com..x"), MatchPolicy::Wildcard));
        let wildcard = grant("com..x", MatchPolicy::Wildcard);
        assert!(covers(&wildcard, &Uri::from("com.a.x"), MatchPolicy::Exact));
        assert!(covers(&wildcard, &Uri::from("com..x"), MatchPolicy::Wildcard));
        assert!(!covers(&wildcard, &Uri::from("..x"), MatchPolicy::Wildcard));
    }

    #[test]
    fn the_any_resource_covers_every_uri_and_pattern() {
        let (uri, policy) = Grant::resource("any", MatchPolicy::Exact);
        let any = grant(uri.as_str(), policy);
        for (target, policy) in [
            ("com.a.b", MatchPolicy::Exact),
            ("", MatchPolicy::Prefix),
            ("com.", MatchPolicy::Prefix),
            ("..x", MatchPolicy::Wildcard),
        ] {
            assert!(covers(&any, &Uri::from(target), policy), "{target}");
        }
        assert_eq!(Grant::resource("anything", MatchPolicy::Exact).0, Uri::from("anything"));
    }

    #[test]
    fn permission_lists_expand_all_to_the_actions_only() {
        let all = Permission::parse_names(["all"]).unwrap();
        assert_eq!(all, Permission::ALL);
        assert!(!all.contains(&Permission::DiscloseCaller));
        assert_eq!(
            Permission::parse_names(["wamp.disclose_publisher"]).unwrap(),
            [Permission::DisclosePublisher]
        );
        assert_eq!(
            Permission::parse_names(["wamp.call", "wamp.nope"]),
            Err("unknown permission \"wamp.nope\"".into())
        );
    }
}
