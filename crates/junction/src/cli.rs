//! `junction realm|user|group|grant|source …`: administration of the data directory while the router
//! is stopped (the store is locked by a running router). Each command runs the same `bondy.*`
//! procedure the admin API offers, as the local operator, and prints the result as JSON. With
//! `--url` the same commands go to a running router instead (see `remote`).

use std::io::Write;

use clap::Subcommand;
use serde_json::json;

use bytes::Bytes;
use junction_core::{Now, Router, RouterConfig};
use junction_store::Store;
use junction_wire::{Message, Serializer, Uri};

use crate::config::Config;

/// An administration command.
#[derive(Subcommand)]
pub(crate) enum Admin {
    /// Realms.
    #[command(subcommand)]
    Realm(RealmCommand),
    /// Users of a realm.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups of a realm.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Grants of a realm.
    #[command(subcommand)]
    Grant(GrantCommand),
    /// Sources of a realm: which methods are allowed from which addresses, for whom.
    #[command(subcommand)]
    Source(SourceCommand),
}

#[derive(Subcommand)]
pub(crate) enum SourceCommand {
    /// List a realm's sources.
    List { realm: String },
    /// Add a source (replaces one with the same users and range).
    Add {
        realm: String,
        /// Usernames, all or anonymous (repeatable).
        #[arg(long = "user", required = true)]
        users: Vec<String>,
        /// The address range, such as 10.0.0.0/8.
        #[arg(long)]
        cidr: String,
        /// trust, ticket, wampcra, cryptosign, scram or anonymous (repeatable).
        #[arg(long = "authmethod", required = true)]
        authmethods: Vec<String>,
    },
    /// Delete the source of these users and range.
    Delete {
        realm: String,
        /// The source's usernames, as listed (repeatable).
        #[arg(long = "user", required = true)]
        users: Vec<String>,
        #[arg(long)]
        cidr: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum RealmCommand {
    /// List realms.
    List,
    /// Show a realm.
    Get { name: String },
    /// Create a realm (security enabled).
    Create {
        name: String,
        /// Accepted methods: anonymous, ticket, wampcra, cryptosign, scram (repeatable).
        /// Absent with --prototype: the prototype's.
        #[arg(long = "authmethod")]
        authmethods: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Make it a prototype realm: no sessions, no users; other realms inherit from it.
        #[arg(long)]
        is_prototype: bool,
        /// The prototype realm to inherit from.
        #[arg(long = "prototype")]
        prototype_uri: Option<String>,
        /// Whether new sessions may join (absent: yes, or the prototype's value).
        #[arg(long)]
        allow_connections: Option<bool>,
    },
    /// Change a realm's settings.
    Update {
        name: String,
        /// Whether new sessions may join; joined sessions stay.
        #[arg(long)]
        allow_connections: Option<bool>,
        /// Accepted methods (repeatable); replaces the list (and stops inheriting it).
        #[arg(long = "authmethod")]
        authmethods: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a realm.
    Delete { name: String },
}

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// List a realm's users.
    List { realm: String },
    /// Add a user.
    Add {
        realm: String,
        username: String,
        /// For ticket, wampcra and scram (stored only as salted derived keys).
        #[arg(long)]
        password: Option<String>,
        /// Groups (repeatable); the first is the session's authrole.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Hex Ed25519 public keys for cryptosign (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// Unsalted wampcra: clients sign with the password itself. Keeps a key that is
        /// password-equivalent for wampcra and cheap to brute-force (see docs/security.md).
        #[arg(long, requires = "password")]
        wampcra_unsalted: bool,
        /// Add the user disabled: it cannot authenticate until enabled.
        #[arg(long)]
        disabled: bool,
        /// Other names the user may log in with (repeatable, at most 5).
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
    /// Let a user log in with another name too.
    AddAlias { realm: String, username: String, alias: String },
    /// Withdraw one of a user's aliases.
    RemoveAlias { realm: String, username: String, alias: String },
    /// Let a disabled user authenticate again.
    Enable { realm: String, username: String },
    /// Refuse a user's logins (like a wrong password) and close its sessions.
    Disable { realm: String, username: String },
    /// Delete a user.
    Delete { realm: String, username: String },
    /// Set a user's password.
    Passwd { realm: String, username: String, password: String },
}

#[derive(Subcommand)]
pub(crate) enum GroupCommand {
    /// List a realm's groups.
    List { realm: String },
    /// Add a group.
    Add {
        realm: String,
        name: String,
        /// Groups this group belongs to (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Delete a group.
    Delete { realm: String, name: String },
}

#[derive(Subcommand)]
pub(crate) enum GrantCommand {
    /// List a realm's grants.
    List { realm: String },
    /// Grant permissions.
    Add(GrantArgs),
    /// Revoke permissions.
    Revoke(GrantArgs),
}

#[derive(clap::Args)]
pub(crate) struct GrantArgs {
    realm: String,
    /// wamp.call, wamp.register, wamp.subscribe, wamp.publish, … or all (repeatable).
    #[arg(long = "permission", required = true)]
    permissions: Vec<String>,
    /// The URI or pattern.
    #[arg(long)]
    uri: String,
    /// exact, prefix or wildcard.
    #[arg(long = "match", default_value = "exact")]
    policy: String,
    /// Users, groups, all or anonymous (repeatable).
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
}

impl Admin {
    /// The `bondy.*` procedure and arguments this command stands for.
    pub(crate) fn procedure(&self) -> (&'static str, serde_json::Value) {
        match self {
            Admin::Realm(RealmCommand::List) => ("bondy.realm.list", json!([])),
            Admin::Realm(RealmCommand::Get { name }) => ("bondy.realm.get", json!([name])),
            Admin::Realm(RealmCommand::Create {
                name,
                authmethods,
                description,
                is_prototype,
                prototype_uri,
                allow_connections,
            }) => {
                let mut realm =
                    json!({"uri": name, "description": description, "is_prototype": is_prototype});
                // Without methods, a realm with a prototype takes the prototype's.
                if prototype_uri.is_none() || !authmethods.is_empty() {
                    realm["authmethods"] = json!(authmethods);
                }
                if let Some(prototype) = prototype_uri {
                    realm["prototype_uri"] = json!(prototype);
                }
                if let Some(allow) = allow_connections {
                    realm["allow_connections"] = json!(allow);
                }
                ("bondy.realm.create", json!([realm]))
            }
            Admin::Realm(RealmCommand::Update {
                name,
                allow_connections,
                authmethods,
                description,
            }) => {
                let mut changes = json!({});
                if let Some(allow) = allow_connections {
                    changes["allow_connections"] = json!(allow);
                }
                if !authmethods.is_empty() {
                    changes["authmethods"] = json!(authmethods);
                }
                if let Some(description) = description {
                    changes["description"] = json!(description);
                }
                ("bondy.realm.update", json!([name, changes]))
            }
            Admin::Realm(RealmCommand::Delete { name }) => ("bondy.realm.delete", json!([name])),
            Admin::User(UserCommand::List { realm }) => ("bondy.user.list", json!([realm])),
            Admin::User(UserCommand::Add {
                realm,
                username,
                password,
                groups,
                keys,
                wampcra_unsalted,
                disabled,
                aliases,
            }) => {
                let mut user = json!({"username": username, "groups": groups,
                    "authorized_keys": keys, "aliases": aliases});
                if let Some(password) = password {
                    user["password"] = json!(password);
                }
                if *wampcra_unsalted {
                    user["wampcra_unsalted"] = json!(true);
                }
                if *disabled {
                    user["enabled"] = json!(false);
                }
                ("bondy.user.add", json!([realm, user]))
            }
            Admin::User(UserCommand::AddAlias { realm, username, alias }) => {
                ("bondy.user.add_alias", json!([realm, username, alias]))
            }
            Admin::User(UserCommand::RemoveAlias { realm, username, alias }) => {
                ("bondy.user.remove_alias", json!([realm, username, alias]))
            }
            Admin::User(UserCommand::Enable { realm, username }) => {
                ("bondy.user.enable", json!([realm, username]))
            }
            Admin::User(UserCommand::Disable { realm, username }) => {
                ("bondy.user.disable", json!([realm, username]))
            }
            Admin::User(UserCommand::Delete { realm, username }) => {
                ("bondy.user.delete", json!([realm, username]))
            }
            Admin::User(UserCommand::Passwd { realm, username, password }) => {
                ("bondy.user.change_password", json!([realm, username, password, null]))
            }
            Admin::Group(GroupCommand::List { realm }) => ("bondy.group.list", json!([realm])),
            Admin::Group(GroupCommand::Add { realm, name, groups }) => {
                ("bondy.group.add", json!([realm, {"name": name, "groups": groups}]))
            }
            Admin::Group(GroupCommand::Delete { realm, name }) => {
                ("bondy.group.delete", json!([realm, name]))
            }
            Admin::Grant(GrantCommand::List { realm }) => ("bondy.realm.grants", json!([realm])),
            Admin::Grant(GrantCommand::Add(g)) => ("bondy.grant.create", g.to_json()),
            Admin::Grant(GrantCommand::Revoke(g)) => ("bondy.grant.revoke", g.to_json()),
            Admin::Source(SourceCommand::List { realm }) => ("bondy.source.list", json!([realm])),
            Admin::Source(SourceCommand::Add { realm, users, cidr, authmethods }) => (
                "bondy.source.add",
                json!([realm, {"usernames": users, "cidr": cidr, "authmethods": authmethods}]),
            ),
            Admin::Source(SourceCommand::Delete { realm, users, cidr }) => {
                ("bondy.source.delete", json!([realm, users, cidr]))
            }
        }
    }
}

impl GrantArgs {
    fn to_json(&self) -> serde_json::Value {
        json!([self.realm, {"permissions": self.permissions, "uri": self.uri, "match": self.policy, "roles": self.roles}])
    }
}

/// Runs `command` against the data directory of `config`; prints the result.
pub(crate) fn run(config: &Config, command: &Admin) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = std::sync::Arc::new(Store::open(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n(is the router running? stop it, or run the command through its admin API with \
             --url ws://HOST:PORT/ws --admin-authid USER)"
        )
    })?);
    let admin_realm = Uri::from(config.admin_realm.as_str());
    // Without a configuration file the CLI works on the stored realms only: the built-in default
    // realm is not the router's to change.
    let declared = if config.realms_from_file { config.router().realms } else { Vec::new() };
    let realms = crate::realms::reconcile(&store, declared, true, &admin_realm)?;
    let router =
        Router::new(RouterConfig { realms, admin_realm: Some(admin_realm), ..config.router() });
    router.set_persistence(store).map_err(anyhow::Error::msg)?;
    let (procedure, args) = command.procedure();
    // The arguments go through the JSON codec, as they would from a client.
    let call =
        Serializer::Json.decode(&Bytes::from(json!([48, 1, {}, procedure, args]).to_string()))?;
    let Message::Call(call) = call else { anyhow::bail!("not a CALL") };
    let payload = router
        .local_admin(procedure, call.payload, Now::read())
        .map_err(|e| anyhow::anyhow!("{}: {e}", e.uri()))?;
    let result = Serializer::Json.encode(&Message::Result(junction_wire::message::Result {
        request: call.request,
        details: Default::default(),
        payload,
    }))?;
    let result: serde_json::Value = serde_json::from_slice(&result)?;
    print(&result[3][0])
}

/// Prints a command's result as JSON.
pub(crate) fn print(result: &serde_json::Value) -> anyhow::Result<()> {
    // A closed pipe (`junction … | head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(result)?);
    Ok(())
}
