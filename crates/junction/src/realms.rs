//! The realms a router starts with: those in the store (created or changed at run time),
//! updated with those the configuration declares, plus the admin realm. Config-declared users,
//! groups and grants are merged into what is stored, so run-time additions survive restarts and
//! declared users keep their groups (a Bondy complaint). The built-in default realm (no
//! configuration file) is served but not stored, so it cannot linger in a data dir that a
//! configured router opens later.

use junction_core::RealmConfig;
use junction_core::security::Security;
use junction_store::Store;
use junction_wire::Uri;

/// Merges the declared realms into the stored ones, stores the result when `store_declared`,
/// and returns every realm.
pub(crate) fn reconcile(
    store: &Store,
    declared: Vec<RealmConfig>,
    store_declared: bool,
    admin_realm: &Uri,
) -> anyhow::Result<Vec<RealmConfig>> {
    let mut realms = store.realms()?;
    for declared in declared {
        let merged = match realms.iter().position(|r| r.name == declared.name) {
            Some(i) => merge(realms.remove(i), declared),
            None => declared,
        };
        if store_declared {
            store.save_realm(&merged)?;
        }
        realms.push(merged);
    }
    if !realms.iter().any(|r| &r.name == admin_realm) {
        // An admin realm nobody can join yet: add users with `junction user add`.
        let admin = RealmConfig {
            allow_anonymous: false,
            disclose_caller: false,
            disclose_publisher: false,
            description: "Administration of every realm (bondy.* procedures)".into(),
            security: Security {
                enabled: true,
                authmethods: vec![
                    "ticket".into(),
                    "wampcra".into(),
                    "cryptosign".into(),
                    "scram".into(),
                ],
                ..Security::default()
            },
            ..RealmConfig::open(admin_realm.as_str())
        };
        store.save_realm(&admin)?;
        realms.push(admin);
    }
    check_prototypes(&realms)?;
    Ok(realms)
}

/// Checks every realm against the prototype it names (Bondy's rules: it exists, is a
/// prototype, one level only), and its users, groups and grants merged with the prototype's.
fn check_prototypes(realms: &[RealmConfig]) -> anyhow::Result<()> {
    for realm in realms {
        let prototype =
            realm.prototype_uri.as_ref().and_then(|p| realms.iter().find(|r| &r.name == p));
        realm.check_prototype(prototype).map_err(|e| anyhow::anyhow!("realms: {e}"))?;
        realm.effective_security(prototype).validate().map_err(|e| {
            anyhow::anyhow!("realms.security: {e} (realm \"{}\", with its prototype)", realm.name)
        })?;
    }
    Ok(())
}

/// The declared realm's settings, with stored users, groups and grants kept unless the
/// configuration declares the same ones.
fn merge(stored: RealmConfig, declared: RealmConfig) -> RealmConfig {
    let mut security = stored.security;
    let d = declared.security.clone();
    if d.enabled || !d.authmethods.is_empty() {
        security.enabled = d.enabled;
        security.authmethods = d.authmethods;
    }
    security.users.extend(d.users);
    security.groups.extend(d.groups);
    for grant in d.grants {
        let same = |g: &junction_core::security::Grant| {
            g.uri == grant.uri
                && g.policy == grant.policy
                && g.roles == grant.roles
                && g.permissions == grant.permissions
        };
        if !security.grants.iter().any(same) {
            security.grants.push(grant);
        }
    }
    RealmConfig { security, ..declared }
}
