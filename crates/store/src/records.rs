//! The stored form of a realm: plain serde records (JSON in the database), converted from and
//! to the core's types. Passwords are stored as salt, iteration count and derived key only.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use junction_auth::cra::UnsaltedKey;
use junction_auth::password::StoredPassword;
use junction_auth::scram::ScramCredential;
use junction_core::RealmConfig;
use junction_core::options::MatchPolicy;
use junction_core::realm::{HistoryConfig, Inherits};
use junction_core::security::{Grant, Group, Permission, Security, Source, User};
use junction_wire::{Uri, UriRules, json};

#[derive(Serialize, Deserialize)]
pub(crate) struct RealmRecord {
    name: String,
    #[serde(default)]
    description: String,
    allow_anonymous: bool,
    strict_uris: bool,
    disclose_caller: bool,
    disclose_publisher: bool,
    default_call_timeout_ms: u64,
    max_call_timeout_ms: u64,
    #[serde(default)]
    event_history: Vec<HistoryRecord>,
    security_enabled: bool,
    #[serde(default)]
    authmethods: Vec<String>,
    #[serde(default)]
    users: Vec<UserRecord>,
    #[serde(default)]
    groups: Vec<GroupRecord>,
    #[serde(default)]
    grants: Vec<GrantRecord>,
    #[serde(default)]
    sources: Vec<SourceRecord>,
    /// Absent before format version 2: realms then always admitted sessions.
    #[serde(default = "yes")]
    allow_connections: bool,
    #[serde(default)]
    is_prototype: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prototype_uri: Option<String>,
    /// The settings left to the prototype: `security_enabled`, `authmethods`,
    /// `allow_connections`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    inherited: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The names of [`Inherits`]'s settings in a record.
const INHERITABLE: [&str; 3] = ["security_enabled", "authmethods", "allow_connections"];

#[derive(Serialize, Deserialize)]
struct SourceRecord {
    users: Vec<String>,
    cidr: String,
    authmethods: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct HistoryRecord {
    topic: String,
    policy: String,
    limit: usize,
}

#[derive(Serialize, Deserialize)]
struct UserRecord {
    authid: String,
    password: Option<PasswordRecord>,
    #[serde(default)]
    authorized_keys: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    /// Absent in stores written before users could be disabled: enabled.
    #[serde(default = "enabled")]
    enabled: bool,
    /// Absent in stores written before users had aliases, and when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aliases: Vec<String>,
    /// The user's metadata as a JSON object; absent when empty and in older stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<serde_json::Value>,
}

fn enabled() -> bool {
    true
}

#[derive(Serialize, Deserialize)]
struct PasswordRecord {
    salt: String,
    iterations: u32,
    /// Hex of the PBKDF2 derived key.
    key: String,
    /// Absent in stores written before `scram` existed: those users need their password set
    /// again to use `scram`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scram: Option<ScramRecord>,
    /// Hex of the unsalted WAMP-CRA key (HMAC's two SHA-256 states), for users who opted in;
    /// absent otherwise and in stores written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wampcra_unsalted: Option<String>,
}

/// A `scram` credential: hex salt and keys, Argon2id costs (KDF `argon2id-13`).
#[derive(Serialize, Deserialize)]
struct ScramRecord {
    salt: String,
    iterations: u32,
    memory: u32,
    stored_key: String,
    server_key: String,
}

#[derive(Serialize, Deserialize)]
struct GroupRecord {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct GrantRecord {
    permissions: Vec<String>,
    uri: String,
    policy: String,
    roles: Vec<String>,
}

impl RealmRecord {
    pub(crate) fn from_config(realm: &RealmConfig) -> Self {
        let s = &realm.security;
        let millis = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as u64);
        Self {
            name: realm.name.to_string(),
            description: realm.description.clone(),
            allow_anonymous: realm.allow_anonymous,
            strict_uris: realm.uri_rules == UriRules::Strict,
            disclose_caller: realm.disclose_caller,
            disclose_publisher: realm.disclose_publisher,
            default_call_timeout_ms: millis(realm.default_call_timeout),
            max_call_timeout_ms: millis(realm.max_call_timeout),
            event_history: realm
                .event_history
                .iter()
                .map(|h| HistoryRecord {
                    topic: h.topic.to_string(),
                    policy: h.policy.name().into(),
                    limit: h.limit,
                })
                .collect(),
            security_enabled: s.enabled,
            authmethods: s.authmethods.clone(),
            users: s
                .users
                .values()
                .map(|u| UserRecord {
                    authid: u.authid.clone(),
                    password: u.password.as_ref().map(|p| PasswordRecord {
                        salt: p.salt.clone(),
                        iterations: p.iterations,
                        key: hex::encode(&p.key),
                        scram: p.scram.as_ref().map(|c| ScramRecord {
                            salt: hex::encode(&c.salt),
                            iterations: c.iterations,
                            memory: c.memory,
                            stored_key: hex::encode(c.stored_key),
                            server_key: hex::encode(c.server_key),
                        }),
                        wampcra_unsalted: p
                            .unsalted_cra
                            .as_ref()
                            .map(|k| hex::encode(k.to_bytes())),
                    }),
                    authorized_keys: u.authorized_keys.iter().map(hex::encode).collect(),
                    groups: u.groups.clone(),
                    enabled: u.enabled,
                    aliases: u.aliases.clone(),
                    meta: (!u.meta.is_empty()).then(|| json::from_dict(&u.meta)),
                })
                .collect(),
            groups: s
                .groups
                .values()
                .map(|g| GroupRecord { name: g.name.clone(), groups: g.groups.clone() })
                .collect(),
            grants: s
                .grants
                .iter()
                .map(|g| GrantRecord {
                    permissions: g.permissions.iter().map(|p| p.name().to_owned()).collect(),
                    uri: g.uri.to_string(),
                    policy: g.policy.name().into(),
                    roles: g.roles.clone(),
                })
                .collect(),
            sources: s
                .sources
                .iter()
                .map(|src| SourceRecord {
                    users: src.users.clone(),
                    cidr: src.cidr.to_string(),
                    authmethods: src.authmethods.clone(),
                })
                .collect(),
            allow_connections: realm.allow_connections,
            is_prototype: realm.is_prototype,
            prototype_uri: realm.prototype_uri.as_ref().map(ToString::to_string),
            inherited: {
                let i = realm.inherits;
                let flags = [i.security_enabled, i.authmethods, i.allow_connections];
                INHERITABLE
                    .iter()
                    .zip(flags)
                    .filter(|(_, inherited)| *inherited)
                    .map(|(name, _)| (*name).to_owned())
                    .collect()
            },
        }
    }

    pub(crate) fn into_config(self) -> Result<RealmConfig, String> {
        let duration = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        let users = self
            .users
            .into_iter()
            .map(|u| {
                let password = u
                    .password
                    .map(|p| {
                        let key =
                            hex::decode(&p.key).map_err(|e| format!("user {}: {e}", u.authid))?;
                        let scram = p
                            .scram
                            .map(ScramRecord::into_credential)
                            .transpose()
                            .map_err(|e| format!("user {}: scram: {e}", u.authid))?;
                        let unsalted_cra = p
                            .wampcra_unsalted
                            .map(|k| {
                                let bytes = hex::decode(&k).map_err(|e| e.to_string())?;
                                UnsaltedKey::from_bytes(&bytes)
                                    .ok_or_else(|| "not 64 octets".to_owned())
                            })
                            .transpose()
                            .map_err(|e| format!("user {}: wampcra_unsalted: {e}", u.authid))?;
                        Ok::<_, String>(StoredPassword {
                            salt: p.salt,
                            iterations: p.iterations,
                            key,
                            scram,
                            unsalted_cra,
                        })
                    })
                    .transpose()?;
                let authorized_keys = u
                    .authorized_keys
                    .iter()
                    .map(|k| {
                        junction_auth::cryptosign::parse_public_key(k)
                            .ok_or(format!("user {}: bad key", u.authid))
                    })
                    .collect::<Result<_, _>>()?;
                Ok((
                    u.authid.clone(),
                    User {
                        authid: u.authid,
                        password,
                        authorized_keys,
                        groups: u.groups,
                        enabled: u.enabled,
                        aliases: u.aliases,
                        meta: u.meta.as_ref().map(json::to_dict).unwrap_or_default(),
                    },
                ))
            })
            .collect::<Result<_, String>>()?;
        let grants = self
            .grants
            .into_iter()
            .map(|g| {
                let permissions = g
                    .permissions
                    .iter()
                    .map(|p| Permission::parse(p).ok_or(format!("unknown permission {p}")))
                    .collect::<Result<_, _>>()?;
                Ok(Grant {
                    permissions,
                    uri: Uri::from(g.uri.as_str()),
                    policy: policy(&g.policy)?,
                    roles: g.roles,
                })
            })
            .collect::<Result<_, String>>()?;
        let sources = self
            .sources
            .into_iter()
            .map(|s| {
                let cidr = s.cidr.parse().map_err(|_| format!("bad source range {}", s.cidr))?;
                Ok(Source { users: s.users, cidr, authmethods: s.authmethods })
            })
            .collect::<Result<_, String>>()?;
        let event_history = self
            .event_history
            .into_iter()
            .map(|h| {
                Ok(HistoryConfig {
                    topic: Uri::from(h.topic.as_str()),
                    policy: policy(&h.policy)?,
                    limit: h.limit,
                })
            })
            .collect::<Result<_, String>>()?;
        if let Some(unknown) = self.inherited.iter().find(|n| !INHERITABLE.contains(&n.as_str())) {
            return Err(format!("unknown inherited setting {unknown}"));
        }
        let inherited = |name: &str| self.inherited.iter().any(|n| n == name);
        let inherits = Inherits {
            security_enabled: inherited("security_enabled"),
            authmethods: inherited("authmethods"),
            allow_connections: inherited("allow_connections"),
        };
        Ok(RealmConfig {
            allow_connections: self.allow_connections,
            is_prototype: self.is_prototype,
            prototype_uri: self.prototype_uri.as_deref().map(Uri::from),
            inherits,
            name: Uri::from(self.name.as_str()),
            description: self.description,
            allow_anonymous: self.allow_anonymous,
            uri_rules: if self.strict_uris { UriRules::Strict } else { UriRules::Loose },
            disclose_caller: self.disclose_caller,
            disclose_publisher: self.disclose_publisher,
            security: Security {
                enabled: self.security_enabled,
                authmethods: self.authmethods,
                users,
                groups: self
                    .groups
                    .into_iter()
                    .map(|g| (g.name.clone(), Group { name: g.name, groups: g.groups }))
                    .collect(),
                grants,
                sources,
            },
            default_call_timeout: duration(self.default_call_timeout_ms),
            max_call_timeout: duration(self.max_call_timeout_ms),
            event_history,
        })
    }
}

fn policy(name: &str) -> Result<MatchPolicy, String> {
    match name {
        "exact" => Ok(MatchPolicy::Exact),
        "prefix" => Ok(MatchPolicy::Prefix),
        "wildcard" => Ok(MatchPolicy::Wildcard),
        other => Err(format!("unknown match policy {other}")),
    }
}

impl ScramRecord {
    fn into_credential(self) -> Result<ScramCredential, String> {
        let key = |k: &str| {
            hex::decode(k)
                .map_err(|e| e.to_string())?
                .try_into()
                .map_err(|_| "a key is not 32 octets".to_owned())
        };
        Ok(ScramCredential {
            salt: hex::decode(&self.salt).map_err(|e| e.to_string())?,
            iterations: self.iterations,
            memory: self.memory,
            stored_key: key(&self.stored_key)?,
            server_key: key(&self.server_key)?,
        })
    }
}
