//! Authorization: does any grant give this session this permission on this URI?

use std::collections::BTreeSet;

use junction_wire::Uri;

use super::Security;
use crate::error::Error;
use crate::matcher::matches;

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
}

impl Permission {
    /// Every permission, for grants of `all` permissions.
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
        }
    }

    /// The permission named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl Security {
    /// Checks that a session whose principals (authid, groups, `all`, maybe `anonymous`) are
    /// `principals` may do `permission` on `uri`. The refusal names both.
    pub fn authorize(
        &self,
        principals: &BTreeSet<String>,
        permission: Permission,
        uri: &Uri,
    ) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        let granted = self.grants.iter().any(|g| {
            g.permissions.contains(&permission)
                && g.roles.iter().any(|r| principals.contains(r))
                && matches(g.policy, g.uri.as_str(), uri.as_str())
        });
        if granted {
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
