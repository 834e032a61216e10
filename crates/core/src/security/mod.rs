//! A realm's security: who may join (users, their credentials and groups) and what each
//! session may do (grants). The model is Bondy's, simplified: users belong to groups (nested),
//! grants give permissions on URIs (exact, prefix or wildcard) to users, groups, `all` or
//! `anonymous`.
//!
//! A [`Security`] is an immutable snapshot; the realm swaps in a new one when it changes, so a
//! change applies to live sessions at once and checks never wait for writers.

mod authorize;

use std::collections::{BTreeSet, HashMap};

use junction_auth::password::StoredPassword;
use junction_wire::{Dict, Uri};

use crate::options::MatchPolicy;

pub use authorize::Permission;

/// Names that stand for roles in grants and cannot be usernames (as in Bondy).
pub const RESERVED_NAMES: &[&str] = &["all", "anonymous", "any", "from", "on", "to"];

/// What is wrong with a set of users, groups and grants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// Users or groups refer to groups that do not exist.
    #[error("no such groups: {}", .0.join(", "))]
    NoSuchGroups(Vec<String>),
    /// A group belongs to itself through its groups.
    #[error("group \"{0}\" belongs to itself through its groups")]
    GroupCycle(String),
    /// A username that names a role in grants.
    #[error("\"{0}\" is a reserved name")]
    ReservedName(String),
    /// A name that is both a username and an alias, or the alias of two users.
    #[error("\"{0}\" is already the name or an alias of a user")]
    NameTaken(String),
    /// More aliases than [`MAX_ALIASES`].
    #[error("user \"{0}\" has more than 5 aliases")]
    TooManyAliases(String),
}

/// A realm's users, groups and grants.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// When false, every session may do everything (the default realm, realms without a
    /// `security` section).
    pub enabled: bool,
    /// Authentication methods the realm accepts besides `anonymous` (which the realm's
    /// `allow_anonymous` controls): `ticket`, `wampcra`, `cryptosign`, `scram`.
    pub authmethods: Vec<String>,
    /// Users by authid.
    pub users: HashMap<String, User>,
    /// Groups by name.
    pub groups: HashMap<String, Group>,
    /// What may be done, by whom.
    pub grants: Vec<Grant>,
    /// Which authentication methods are allowed from which addresses, for whom. Empty: every
    /// accepted method from anywhere.
    pub sources: Vec<Source>,
}

/// The authentication methods a realm can allow besides `anonymous`.
pub const AUTHMETHODS: [&str; 5] = ["trust", "ticket", "wampcra", "cryptosign", "scram"];

/// An authentication source rule (Bondy's "source"): `users` may authenticate with
/// `authmethods` when they connect from `cidr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Authids, or `all` (any user) and `anonymous`.
    pub users: Vec<String>,
    /// The addresses the rule applies to.
    pub cidr: ipnet::IpNet,
    /// Methods allowed: `trust`, `ticket`, `wampcra`, `cryptosign`, `scram`, `anonymous`.
    pub authmethods: Vec<String>,
}

/// A user who can authenticate.
#[derive(Debug, Clone)]
pub struct User {
    /// The user's authid.
    pub authid: String,
    /// For `ticket` and `wampcra`, and `scram` when it carries a SCRAM credential (passwords
    /// set before `scram` existed do not: they must be set again).
    pub password: Option<StoredPassword>,
    /// For `cryptosign`: Ed25519 public keys.
    pub authorized_keys: Vec<[u8; 32]>,
    /// Groups the user belongs to; the first is the session's `authrole`.
    pub groups: Vec<String>,
    /// Whether the user may authenticate (Bondy's `enabled`). A disabled user is refused like
    /// an unknown one, with every method, and its sessions are closed when it is disabled.
    pub enabled: bool,
    /// Other names the user may give as authid in HELLO (Bondy's aliases, at most
    /// [`MAX_ALIASES`]); sessions get the username all the same.
    pub aliases: Vec<String>,
    /// Application data about the user, kept and shown as given (Bondy's `meta`).
    pub meta: Dict,
}

/// How many aliases a user may have (Bondy's limit).
pub const MAX_ALIASES: usize = 5;

impl User {
    /// A user named `authid` with no credentials, groups, aliases or metadata, enabled.
    pub fn named(authid: &str) -> Self {
        Self {
            authid: authid.to_owned(),
            password: None,
            authorized_keys: Vec::new(),
            groups: Vec::new(),
            enabled: true,
            aliases: Vec::new(),
            meta: Dict::new(),
        }
    }
}

/// A group of users (and of other groups).
#[derive(Debug, Clone)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Groups this group belongs to.
    pub groups: Vec<String>,
}

/// Permissions on URIs for some roles.
#[derive(Debug, Clone)]
pub struct Grant {
    /// What is allowed.
    pub permissions: Vec<Permission>,
    /// On which URI (or pattern).
    pub uri: Uri,
    /// How `uri` matches.
    pub policy: MatchPolicy,
    /// To whom: authids, group names, `all`, `anonymous`.
    pub roles: Vec<String>,
}

/// The grant resource that stands for every URI (Bondy's `any`).
pub const ANY_RESOURCE: &str = "any";

impl Grant {
    /// The URI and match policy a grant's resource names: `any` is the prefix `""`, which
    /// covers every URI and pattern.
    pub fn resource(uri: &str, policy: MatchPolicy) -> (Uri, MatchPolicy) {
        if uri == ANY_RESOURCE {
            (Uri::from(""), MatchPolicy::Prefix)
        } else {
            (Uri::from(uri), policy)
        }
    }
}

impl Security {
    /// The user `authid` names, by username or alias, if it exists and is enabled: who may
    /// authenticate.
    pub fn enabled_user(&self, authid: &str) -> Option<&User> {
        self.user_named(authid).filter(|u| u.enabled)
    }

    /// The user whose username or one of whose aliases is `name`.
    pub fn user_named(&self, name: &str) -> Option<&User> {
        self.users
            .get(name)
            .or_else(|| self.users.values().find(|u| u.aliases.iter().any(|a| a == name)))
    }

    /// Whether the realm accepts `method` (anonymous excepted, see the realm config).
    pub fn allows_method(&self, method: &str) -> bool {
        self.authmethods.iter().any(|m| m == method)
    }

    /// Whether the sources let `authid` (`None`: anonymous) use `method` from `address`. With
    /// no sources at all, every accepted method is allowed from anywhere, except `trust`,
    /// which always needs a source.
    pub fn source_allows(
        &self,
        authid: Option<&str>,
        method: &str,
        address: std::net::IpAddr,
    ) -> bool {
        if self.sources.is_empty() {
            return method != "trust";
        }
        self.sources.iter().any(|s| {
            let user_matches = s.users.iter().any(|u| match authid {
                Some(authid) => u == "all" || u == authid,
                None => u == "anonymous",
            });
            user_matches && s.cidr.contains(&address) && s.authmethods.iter().any(|m| m == method)
        })
    }

    /// Checks what a configuration or an admin call could get wrong: users and groups must
    /// belong to declared groups, groups may not contain themselves, and the names Bondy
    /// reserves for roles cannot be user or group names.
    pub fn validate(&self) -> Result<(), SecurityError> {
        let mut names = BTreeSet::new();
        for user in self.users.values() {
            for name in std::iter::once(&user.authid).chain(&user.aliases) {
                if RESERVED_NAMES.contains(&name.as_str()) {
                    return Err(SecurityError::ReservedName(name.clone()));
                }
                if !names.insert(name.as_str()) {
                    return Err(SecurityError::NameTaken(name.clone()));
                }
            }
            if user.aliases.len() > MAX_ALIASES {
                return Err(SecurityError::TooManyAliases(user.authid.clone()));
            }
            let missing: Vec<String> =
                user.groups.iter().filter(|g| !self.groups.contains_key(*g)).cloned().collect();
            if !missing.is_empty() {
                return Err(SecurityError::NoSuchGroups(missing));
            }
        }
        for group in self.groups.values() {
            if RESERVED_NAMES.contains(&group.name.as_str()) {
                return Err(SecurityError::ReservedName(group.name.clone()));
            }
            let missing: Vec<String> =
                group.groups.iter().filter(|g| !self.groups.contains_key(*g)).cloned().collect();
            if !missing.is_empty() {
                return Err(SecurityError::NoSuchGroups(missing));
            }
            // Follow the parents; reaching the start again is a cycle.
            let mut pending: Vec<&str> = group.groups.iter().map(String::as_str).collect();
            let mut seen = BTreeSet::new();
            while let Some(next) = pending.pop() {
                if next == group.name {
                    return Err(SecurityError::GroupCycle(group.name.clone()));
                }
                if seen.insert(next) {
                    pending.extend(
                        self.groups
                            .get(next)
                            .into_iter()
                            .flat_map(|g| g.groups.iter().map(String::as_str)),
                    );
                }
            }
        }
        Ok(())
    }

    /// Every group `user` belongs to, directly or through other groups (cycles are ignored).
    pub fn groups_of(&self, user: &User) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let mut pending: Vec<&str> = user.groups.iter().map(String::as_str).collect();
        while let Some(group) = pending.pop() {
            if found.insert(group.to_owned())
                && let Some(g) = self.groups.get(group)
            {
                pending.extend(g.groups.iter().map(String::as_str));
            }
        }
        found
    }

    /// The security of a realm that inherits from a prototype whose security is `prototype`
    /// (Bondy's rules): the realm's own users only; the prototype's groups, replaced by the
    /// realm's groups of the same name (at every level of membership, since groups are
    /// looked up by name in the merged set); the prototype's grants and sources followed by
    /// the realm's; `enabled` and `authmethods` from the prototype where `inherits` says so.
    pub fn inherit(&self, prototype: &Security, inherits: crate::realm::Inherits) -> Security {
        let mut groups = prototype.groups.clone();
        groups.extend(self.groups.iter().map(|(name, g)| (name.clone(), g.clone())));
        Security {
            enabled: if inherits.security_enabled { prototype.enabled } else { self.enabled },
            authmethods: if inherits.authmethods {
                prototype.authmethods.clone()
            } else {
                self.authmethods.clone()
            },
            users: self.users.clone(),
            groups,
            grants: prototype.grants.iter().chain(&self.grants).cloned().collect(),
            sources: prototype.sources.iter().chain(&self.sources).cloned().collect(),
        }
    }

    /// The names grants are matched against for a session of `authid`, from the users and
    /// groups as they are now: the authid, its user's groups (nested included), `all`, and
    /// `anonymous` for anonymous sessions. Not the authrole: a user in no group is shown
    /// authrole "user" but must not get group "user"'s grants.
    pub fn principals(&self, authid: &str, anonymous: bool) -> BTreeSet<String> {
        let user = self.users.get(authid).filter(|_| !anonymous);
        let mut principals = user.map(|u| self.groups_of(u)).unwrap_or_default();
        principals.insert(authid.to_owned());
        principals.insert("all".into());
        if anonymous {
            principals.insert("anonymous".into());
        }
        principals
    }
}
