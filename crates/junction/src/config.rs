//! The configuration file (TOML), environment overrides (`JUNCTION_…`) and command-line flags,
//! merged in that order and validated before any port is bound. Every key is documented in
//! `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use junction_auth::cryptosign::parse_public_key;
use junction_auth::password::StoredPassword;
use junction_cluster::ClusterConfig;
use junction_core::options::MatchPolicy;
use junction_core::realm::{HistoryConfig, Inherits};
use junction_core::security::{AUTHMETHODS, Grant, Group, Permission, Security, Source, User};
use junction_core::{Limits as SessionLimits, RealmConfig, RouterConfig};
use junction_transport::TransportConfig;
use junction_wire::{Uri, UriRules, json};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// TCP addresses serving WebSocket and RawSocket.
    pub listen: Vec<SocketAddr>,
    /// A Unix domain socket path serving RawSocket, if any.
    pub unix_socket: Option<PathBuf>,
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// Seconds to wait for sessions to close on shutdown.
    pub shutdown_grace_secs: u64,
    /// Threads that run the sessions; 0 runs one per CPU.
    pub worker_threads: usize,
    /// The realm whose sessions may manage every realm through the admin API.
    pub admin_realm: String,
    /// Connection limits.
    pub limits: Limits,
    /// WebSocket settings.
    pub websocket: WebSocket,
    /// Logging.
    pub log: Log,
    /// TLS listeners (WSS, RawSocket over TLS).
    pub tls: Option<TlsConfig>,
    /// Realms opened at start.
    pub realms: Vec<Realm>,
    /// Cluster mode: join other nodes over NATS (absent: a single node).
    pub cluster: Option<ClusterConfig>,
    /// Whether `realms` comes from a configuration file. The built-in default (`realm1`, open
    /// to anonymous clients) is served but never stored, so it cannot linger in a data dir that
    /// a configured router later opens.
    #[serde(skip)]
    pub realms_from_file: bool,
}

/// `[limits]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted message, in octets.
    pub max_message_size: usize,
    /// Seconds from accept to WELCOME.
    pub handshake_timeout_secs: u64,
    /// Seconds to wait for the client's GOODBYE after the router's.
    pub close_timeout_secs: u64,
    /// Messages that may wait in a session's outbound queue.
    pub outbound_queue: usize,
    /// Approximate bytes of events that may wait in a session's outbound queue.
    pub outbound_queue_bytes: usize,
    /// What happens to a session whose outbound queue is full of events.
    pub slow_consumer: SlowConsumerPolicy,
    /// Seconds of silence after which the router pings a client; 0 = never.
    pub ping_interval_secs: u64,
    /// Seconds the router waits for the answer to a ping before closing.
    pub ping_timeout_secs: u64,
    /// Sessions on the whole router; 0 = unlimited.
    pub max_sessions: usize,
    /// Sessions on one realm; 0 = unlimited.
    pub max_sessions_per_realm: usize,
    /// Calls one session may have waiting for a result; 0 = unlimited.
    pub max_pending_calls_per_session: usize,
    /// Subscriptions one session may hold; 0 = unlimited.
    pub max_subscriptions_per_session: usize,
    /// Registrations one session may hold; 0 = unlimited.
    pub max_registrations_per_session: usize,
    /// Open connections from one IP address; 0 = unlimited.
    pub max_connections_per_ip: usize,
    /// Encoded payload of one CALL, PUBLISH, YIELD or ERROR, in octets; 0 = only
    /// `max_message_size` applies.
    pub max_payload_size: usize,
}

/// `limits.slow_consumer`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Drop new events for the session (counted); results and errors still close it when
    /// they cannot be queued.
    DropEvents,
    /// Close the session.
    Disconnect,
}

/// `[tls]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Addresses serving WebSocket, RawSocket and HTTP over TLS.
    pub listen: Vec<SocketAddr>,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates: when set, clients must present a certificate they signed.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `[websocket]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocket {
    /// The HTTP path of the WebSocket endpoint.
    pub path: String,
    /// Octets read from a WebSocket at once, allocated per connection.
    pub read_buffer: usize,
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `junction=debug`.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// One `[[realms]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Realm {
    /// The realm URI.
    pub name: String,
    /// Whether anonymous clients may join; absent: yes, unless the realm has a prototype
    /// (anonymous access is never inherited).
    #[serde(default)]
    pub anonymous: Option<bool>,
    /// Whether new sessions may join (Bondy's `allow_connections`); absent: the prototype's
    /// value, or yes without a prototype.
    #[serde(default)]
    pub allow_connections: Option<bool>,
    /// A prototype realm: accepts no sessions, lends its settings, groups, grants and sources
    /// to the realms naming it as `prototype_uri`; it cannot have users.
    #[serde(default)]
    pub is_prototype: bool,
    /// The prototype realm this realm inherits from.
    #[serde(default)]
    pub prototype_uri: Option<String>,
    /// `loose` or `strict` URI rules.
    #[serde(default)]
    pub uri_rules: UriRuleSet,
    /// Tell callees who calls, even without `disclose_me`.
    #[serde(default)]
    pub disclose_caller: bool,
    /// Tell subscribers who published, even without `disclose_me`.
    #[serde(default)]
    pub disclose_publisher: bool,
    /// Timeout (ms) for calls that set none; 0 = none.
    #[serde(default)]
    pub default_call_timeout_ms: u64,
    /// Upper bound (ms) on any call's timeout; 0 = none.
    #[serde(default)]
    pub max_call_timeout_ms: u64,
    /// Topics whose events are kept for `wamp.subscription.get_events`.
    #[serde(default)]
    pub event_history: Vec<EventHistory>,
    /// Users, groups and grants; absent = everything allowed to every session.
    #[serde(default)]
    pub security: Option<RealmSecurity>,
}

/// `[realms.security]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmSecurity {
    /// Authentication methods accepted besides `anonymous`: `ticket`, `wampcra`, `cryptosign`,
    /// `scram`. Absent: the prototype's, or none without a prototype.
    #[serde(default)]
    pub authmethods: Option<Vec<String>>,
    /// Users who can authenticate.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Groups (which may belong to other groups).
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// Permissions on URIs for users, groups, `all` or `anonymous`.
    #[serde(default)]
    pub grants: Vec<GrantConfig>,
    /// Which methods are allowed from which addresses, for whom.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// `[[realms.security.sources]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Authids, `all` or `anonymous`.
    pub users: Vec<String>,
    /// An address range, e.g. `10.0.0.0/8` or `::1/128`.
    pub cidr: String,
    /// Methods allowed from there: `trust`, `ticket`, `wampcra`, `cryptosign`, `scram`,
    /// `anonymous`.
    pub authmethods: Vec<String>,
}

/// `[[realms.security.users]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user's authid.
    pub authid: String,
    /// For `ticket`, `wampcra` and `scram`; kept only as salted derived keys once loaded.
    #[serde(default)]
    pub password: Option<String>,
    /// For `cryptosign`: hex Ed25519 public keys.
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    /// Groups; the first is the session's authrole.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Unsalted `wampcra` for this user (the client signs with the password itself). Needs
    /// `password`; keeps a password-equivalent key for that method (docs/security.md).
    #[serde(default)]
    pub wampcra_unsalted: bool,
    /// Whether the user may authenticate (default true); a disabled user is refused like an
    /// unknown one.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Other names the user may log in with (at most 5).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Application data about the user, shown by `bondy.user.get`.
    #[serde(default)]
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `[[realms.security.groups]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's name.
    pub name: String,
    /// Groups this group belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[[realms.security.grants]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// `wamp.call`, `wamp.register`, … or `all`.
    pub permissions: Vec<String>,
    /// The URI or pattern, or `any` for every URI.
    pub uri: String,
    /// `exact`, `prefix` or `wildcard`.
    #[serde(default, rename = "match")]
    pub match_policy: MatchRule,
    /// Authids, group names, `all`, `anonymous`.
    pub roles: Vec<String>,
}

/// One `[[realms.event_history]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHistory {
    /// The topic, or a pattern.
    pub topic: String,
    /// `exact`, `prefix` or `wildcard`.
    #[serde(default, rename = "match")]
    pub match_policy: MatchRule,
    /// Events kept per topic.
    pub limit: usize,
}

/// How an event-history topic matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchRule {
    /// The same topic.
    #[default]
    Exact,
    /// Topics starting with it.
    Prefix,
    /// Empty components match any one component.
    Wildcard,
}

/// URI validation rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UriRuleSet {
    /// The spec's loose rules.
    #[default]
    Loose,
    /// The spec's strict rules.
    Strict,
}

/// The realm security of the core, with passwords turned into salted derived keys.
fn yes() -> bool {
    true
}

fn security(config: &RealmSecurity) -> Security {
    let users = config
        .users
        .iter()
        .map(|u| {
            let user = User {
                authid: u.authid.clone(),
                password: u
                    .password
                    .as_deref()
                    .map(|p| StoredPassword::new_with(p, u.wampcra_unsalted)),
                authorized_keys: u
                    .authorized_keys
                    .iter()
                    .filter_map(|k| parse_public_key(k))
                    .collect(),
                groups: u.groups.clone(),
                enabled: u.enabled,
                aliases: u.aliases.clone(),
                meta: u.meta.clone().map(|m| json::to_dict(&m.into())).unwrap_or_default(),
            };
            (u.authid.clone(), user)
        })
        .collect();
    let groups = config
        .groups
        .iter()
        .map(|g| (g.name.clone(), Group { name: g.name.clone(), groups: g.groups.clone() }))
        .collect();
    let grants = config
        .grants
        .iter()
        .map(|g| {
            let (uri, policy) = Grant::resource(
                &g.uri,
                match g.match_policy {
                    MatchRule::Exact => MatchPolicy::Exact,
                    MatchRule::Prefix => MatchPolicy::Prefix,
                    MatchRule::Wildcard => MatchPolicy::Wildcard,
                },
            );
            Grant {
                // Checked by `validate` before.
                permissions: Permission::parse_names(g.permissions.iter().map(String::as_str))
                    .unwrap_or_default(),
                uri,
                policy,
                roles: g.roles.clone(),
            }
        })
        .collect();
    let sources = config
        .sources
        .iter()
        .filter_map(|s| {
            let cidr = s.cidr.parse::<ipnet::IpNet>().ok()?.trunc();
            Some(Source { users: s.users.clone(), cidr, authmethods: s.authmethods.clone() })
        })
        .collect();
    Security {
        enabled: true,
        authmethods: config.authmethods.clone().unwrap_or_default(),
        users,
        groups,
        grants,
        sources,
    }
}

/// Refuses what would fail later or silently: unknown methods and permissions, bad keys, and,
/// with `groups`, what the core's own validation refuses (undeclared groups, group cycles,
/// reserved names).
fn validate_security(config: &RealmSecurity, groups: bool) -> Result<(), String> {
    if let Some(method) =
        config.authmethods.iter().flatten().find(|m| !AUTHMETHODS.contains(&m.as_str()))
    {
        return Err(format!(
            "authmethods: unknown method \"{method}\" ({})",
            AUTHMETHODS.join(", ")
        ));
    }
    for user in &config.users {
        if let Some(key) = user.authorized_keys.iter().find(|k| parse_public_key(k).is_none()) {
            return Err(format!(
                "users.authorized_keys: \"{key}\" of \"{}\" is not a hex Ed25519 public key",
                user.authid
            ));
        }
        if user.wampcra_unsalted && user.password.is_none() {
            return Err(format!(
                "users.wampcra_unsalted: \"{}\" has no password to sign with",
                user.authid
            ));
        }
    }
    for grant in &config.grants {
        Permission::parse_names(grant.permissions.iter().map(String::as_str))
            .map_err(|e| format!("grants.permissions: {e}"))?;
    }
    for source in &config.sources {
        if source.cidr.parse::<ipnet::IpNet>().is_err() {
            return Err(format!(
                "sources.cidr: \"{}\" is not an address range such as 10.0.0.0/8",
                source.cidr
            ));
        }
        if let Some(m) = source
            .authmethods
            .iter()
            .find(|m| *m != "anonymous" && !AUTHMETHODS.contains(&m.as_str()))
        {
            return Err(format!("sources.authmethods: unknown method \"{m}\""));
        }
    }
    if !groups {
        return Ok(());
    }
    security(config).validate().map_err(|e| e.to_string())
}

/// A count from the config, 0 meaning no limit.
fn unlimited_if_zero(n: usize) -> Option<usize> {
    (n > 0).then_some(n)
}

/// Milliseconds from the config as a duration, 0 meaning none.
fn millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            unix_socket: None,
            data_dir: PathBuf::from("junction-data"),
            shutdown_grace_secs: 5,
            worker_threads: 0,
            admin_realm: "junction.admin".into(),
            limits: Limits::default(),
            websocket: WebSocket::default(),
            log: Log::default(),
            tls: None,
            cluster: None,
            realms: vec![Realm {
                name: "realm1".into(),
                anonymous: Some(true),
                allow_connections: None,
                is_prototype: false,
                prototype_uri: None,
                uri_rules: UriRuleSet::Loose,
                disclose_caller: true,
                disclose_publisher: true,
                security: None,
                default_call_timeout_ms: 0,
                max_call_timeout_ms: 0,
                event_history: Vec::new(),
            }],
            realms_from_file: false,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        let t = TransportConfig::default();
        Self {
            max_message_size: t.max_message_size,
            handshake_timeout_secs: t.handshake_timeout.as_secs(),
            close_timeout_secs: t.close_timeout.as_secs(),
            outbound_queue: t.outbound_queue,
            outbound_queue_bytes: t.outbound_queue_bytes,
            slow_consumer: SlowConsumerPolicy::DropEvents,
            ping_interval_secs: t.ping_interval.map_or(0, |d| d.as_secs()),
            ping_timeout_secs: t.ping_timeout.as_secs(),
            max_sessions: 0,
            max_sessions_per_realm: 0,
            max_pending_calls_per_session: 10_000,
            max_subscriptions_per_session: 10_000,
            max_registrations_per_session: 10_000,
            max_connections_per_ip: 0,
            max_payload_size: 0,
        }
    }
}

impl Default for WebSocket {
    fn default() -> Self {
        let defaults = TransportConfig::default();
        Self { path: defaults.websocket_path, read_buffer: defaults.websocket_read_buffer }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: "info".into() }
    }
}

/// More worker threads than this is a typo, not a deployment.
const MAX_WORKER_THREADS: usize = 1024;

/// The top-level keys; environment variables naming anything else are not ours and are ignored.
const KEYS: &[&str] = &[
    "listen",
    "unix_socket",
    "data_dir",
    "shutdown_grace_secs",
    "worker_threads",
    "admin_realm",
    "limits",
    "websocket",
    "log",
    "realms",
    "tls",
];

/// The keys whose values are tables.
const TABLES: &[&str] = &["limits", "websocket", "log", "tls"];

/// Command-line values that override the file and the environment.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Vec<SocketAddr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unix_socket: Option<PathBuf>,
}

impl Config {
    /// Loads defaults, then `file`, then `JUNCTION_*` variables (`__` separates nested keys),
    /// then the command line; and validates the result.
    pub fn load(file: Option<&std::path::Path>, overrides: Overrides) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only variables naming one of our keys: JUNCTION_LOG and friends belong to others.
        let ours = |key: &figment::value::UncasedStr| {
            let key = key.as_str();
            let top = key.split('.').next().unwrap_or_default();
            // A bare table name is not a setting: JUNCTION_LOG is the tracing filter, say.
            let bare_table =
                !key.contains('.') && TABLES.iter().any(|t| t.eq_ignore_ascii_case(key));
            KEYS.iter().any(|k| k.eq_ignore_ascii_case(top)) && !bare_table
        };
        let env = Env::prefixed("JUNCTION_").split("__").filter(ours);
        figment = figment.merge(env).merge(Serialized::defaults(overrides));
        let mut config: Config = figment.extract().map_err(|e| e.to_string())?;
        config.realms_from_file =
            file.is_some_and(|path| Figment::from(Toml::file_exact(path)).contains("realms"));
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.listen.is_empty() && self.unix_socket.is_none() {
            return Err("listen: at least one address (or unix_socket) is required".into());
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(format!("worker_threads: at most {MAX_WORKER_THREADS}"));
        }
        if self.limits.max_message_size < 512 {
            return Err("limits.max_message_size: must be at least 512".into());
        }
        if self.limits.outbound_queue == 0 {
            return Err("limits.outbound_queue: must be at least 1".into());
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        if !(1024..=1024 * 1024).contains(&self.websocket.read_buffer) {
            return Err("websocket.read_buffer: must be between 1024 and 1048576".into());
        }
        if !self.websocket.path.starts_with('/') {
            return Err(format!("websocket.path: \"{}\" must start with /", self.websocket.path));
        }
        let mut seen = std::collections::HashSet::new();
        for realm in &self.realms {
            if !Uri::from(realm.name.as_str()).is_valid(UriRules::Loose, false) {
                return Err(format!("realms.name: \"{}\" is not a valid URI", realm.name));
            }
            if !seen.insert(&realm.name) {
                return Err(format!("realms.name: \"{}\" is declared twice", realm.name));
            }
            if realm.is_prototype && realm.prototype_uri.is_some() {
                return Err(format!(
                    "realms.prototype_uri: realm \"{}\" is a prototype and cannot have one",
                    realm.name
                ));
            }
            if realm.prototype_uri.as_ref() == Some(&realm.name) {
                return Err(format!(
                    "realms.prototype_uri: realm \"{}\" cannot be its own prototype",
                    realm.name
                ));
            }
            let users = realm.security.as_ref().map_or(0, |s| s.users.len());
            if realm.is_prototype && users > 0 {
                return Err(format!(
                    "realms.security.users: realm \"{}\" is a prototype and cannot have users",
                    realm.name
                ));
            }
            if let Some(security) = &realm.security {
                // A realm with a prototype may use the prototype's groups: its groups are
                // checked with the prototype's once every realm is known (at start).
                validate_security(security, realm.prototype_uri.is_none())
                    .map_err(|e| format!("realms.security: {e} (realm \"{}\")", realm.name))?;
            }
            for history in &realm.event_history {
                let policy_allows_empty = history.match_policy != MatchRule::Exact;
                if !Uri::from(history.topic.as_str()).is_valid(UriRules::Loose, policy_allows_empty)
                {
                    return Err(format!(
                        "realms.event_history.topic: \"{}\" is not a valid URI",
                        history.topic
                    ));
                }
                if history.limit == 0 {
                    return Err(format!(
                        "realms.event_history.limit: must be at least 1 (topic \"{}\")",
                        history.topic
                    ));
                }
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| format!("log.level: {e}"))?;
        Ok(())
    }

    /// The router's part.
    pub fn router(&self) -> RouterConfig {
        let realms = self
            .realms
            .iter()
            .map(|r| RealmConfig {
                name: Uri::from(r.name.as_str()),
                description: String::new(),
                allow_anonymous: r.anonymous.unwrap_or(r.prototype_uri.is_none()),
                allow_connections: r.allow_connections.unwrap_or(true),
                is_prototype: r.is_prototype,
                prototype_uri: r.prototype_uri.as_deref().map(Uri::from),
                inherits: match &r.prototype_uri {
                    Some(_) => Inherits {
                        security_enabled: r.security.is_none(),
                        authmethods: r.security.as_ref().is_none_or(|s| s.authmethods.is_none()),
                        allow_connections: r.allow_connections.is_none(),
                    },
                    None => Inherits::default(),
                },
                uri_rules: match r.uri_rules {
                    UriRuleSet::Loose => UriRules::Loose,
                    UriRuleSet::Strict => UriRules::Strict,
                },
                disclose_caller: r.disclose_caller,
                disclose_publisher: r.disclose_publisher,
                security: r.security.as_ref().map(security).unwrap_or_default(),
                default_call_timeout: millis(r.default_call_timeout_ms),
                max_call_timeout: millis(r.max_call_timeout_ms),
                event_history: r
                    .event_history
                    .iter()
                    .map(|h| HistoryConfig {
                        topic: Uri::from(h.topic.as_str()),
                        policy: match h.match_policy {
                            MatchRule::Exact => MatchPolicy::Exact,
                            MatchRule::Prefix => MatchPolicy::Prefix,
                            MatchRule::Wildcard => MatchPolicy::Wildcard,
                        },
                        limit: h.limit,
                    })
                    .collect(),
            })
            .collect();
        let l = &self.limits;
        let limits = SessionLimits {
            max_sessions: unlimited_if_zero(l.max_sessions),
            max_sessions_per_realm: unlimited_if_zero(l.max_sessions_per_realm),
            max_pending_calls: unlimited_if_zero(l.max_pending_calls_per_session),
            max_subscriptions: unlimited_if_zero(l.max_subscriptions_per_session),
            max_registrations: unlimited_if_zero(l.max_registrations_per_session),
            max_payload_size: unlimited_if_zero(l.max_payload_size),
        };
        let admin_realm = Some(Uri::from(self.admin_realm.as_str()));
        RouterConfig {
            realms,
            agent: format!("Junction {}", env!("CARGO_PKG_VERSION")),
            limits,
            admin_realm,
        }
    }

    /// The transports' part.
    pub fn transport(&self) -> TransportConfig {
        TransportConfig {
            max_message_size: self.limits.max_message_size,
            handshake_timeout: Duration::from_secs(self.limits.handshake_timeout_secs),
            close_timeout: Duration::from_secs(self.limits.close_timeout_secs),
            outbound_queue: self.limits.outbound_queue,
            outbound_queue_bytes: self.limits.outbound_queue_bytes,
            websocket_path: self.websocket.path.clone(),
            websocket_read_buffer: self.websocket.read_buffer,
            disconnect_slow_consumers: self.limits.slow_consumer == SlowConsumerPolicy::Disconnect,
            ping_interval: (self.limits.ping_interval_secs > 0)
                .then(|| Duration::from_secs(self.limits.ping_interval_secs)),
            ping_timeout: Duration::from_secs(self.limits.ping_timeout_secs),
            max_connections_per_ip: unlimited_if_zero(self.limits.max_connections_per_ip),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Loads `toml` with `overrides` inside a figment `Jail`: a private working directory and
    /// environment, so tests that set variables cannot leak into each other.
    #[allow(clippy::result_large_err)] // figment::Jail dictates the closure type.
    fn load_in_jail(
        toml: Option<&str>,
        env: &[(&str, &str)],
        overrides: Overrides,
    ) -> Result<Config, String> {
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            for (key, value) in env {
                jail.set_env(key, value);
            }
            if let Some(text) = toml {
                jail.create_file("junction.toml", text)?;
            }
            let file = toml.map(|_| Path::new("junction.toml"));
            result = Some(Config::load(file, overrides));
            Ok(())
        });
        result.expect("the jail ran")
    }

    fn load_toml(text: &str) -> Result<Config, String> {
        load_in_jail(Some(text), &[], Overrides::default())
    }

    #[test]
    fn defaults_open_realm1_to_anonymous_on_loopback_8080() {
        let config = load_in_jail(None, &[], Overrides::default()).expect("defaults are valid");
        assert_eq!(config.listen, vec![SocketAddr::from(([127, 0, 0, 1], 8080))]);
        assert_eq!(config.realms.len(), 1);
        assert_eq!(config.realms[0].anonymous, Some(true));
        assert!(!config.realms_from_file, "the built-in realm must not be stored");
    }

    #[test]
    fn only_realms_a_file_declares_count_as_declared() {
        assert!(!load_toml("shutdown_grace_secs = 1\n").unwrap().realms_from_file);
        assert!(load_toml("[[realms]]\nname = \"com.x\"\n").unwrap().realms_from_file);
    }

    #[test]
    fn worker_threads_default_to_one_per_cpu_and_are_bounded() {
        assert_eq!(load_toml("").unwrap().worker_threads, 0);
        assert_eq!(load_toml("worker_threads = 1\n").unwrap().worker_threads, 1);
        let error = load_toml("worker_threads = 100000\n").unwrap_err();
        assert!(error.contains("worker_threads: at most 1024"), "{error}");
    }

    #[test]
    fn missing_config_file_is_refused() {
        let error =
            Config::load(Some(Path::new("/nonexistent/junction.toml")), Overrides::default())
                .unwrap_err();
        assert!(error.contains("does not exist"), "{error}");
    }

    #[test]
    fn unknown_key_is_refused_naming_the_key() {
        let error = load_toml("[limits]\nmax_mesage_size = 1024\n").unwrap_err();
        assert!(error.contains("max_mesage_size"), "{error}");
    }

    #[test]
    fn wrong_type_is_refused_naming_the_key() {
        let error = load_toml("shutdown_grace_secs = \"soon\"\n").unwrap_err();
        assert!(error.contains("shutdown_grace_secs"), "{error}");
    }

    #[test]
    fn invalid_values_are_refused_naming_the_key() {
        assert!(
            load_toml("[limits]\nmax_message_size = 10\n")
                .unwrap_err()
                .contains("limits.max_message_size")
        );
        assert!(
            load_toml("[[realms]]\nname = \"bad realm\"\n").unwrap_err().contains("realms.name")
        );
        assert!(load_toml("[log]\nlevel = \"[[\"\n").unwrap_err().contains("log.level"));
    }

    #[test]
    fn realms_from_the_file_replace_the_default() {
        let config = load_toml(
            "[[realms]]\nname = \"com.example\"\nanonymous = false\nuri_rules = \"strict\"\n",
        )
        .expect("valid");
        let router = config.router();
        assert_eq!(router.realms.len(), 1);
        assert_eq!(router.realms[0].name.as_str(), "com.example");
        assert!(!router.realms[0].allow_anonymous);
        assert_eq!(router.realms[0].uri_rules, UriRules::Strict);
    }

    #[test]
    fn wampcra_unsalted_derives_the_unsalted_key_and_needs_a_password() {
        let user = |extra: &str| {
            format!(
                "[[realms]]\nname = \"com.x\"\n[realms.security]\nauthmethods = [\"wampcra\"]\n\
                 [[realms.security.users]]\nauthid = \"una\"\n{extra}"
            )
        };
        let config = load_toml(&user("password = \"pw\"\nwampcra_unsalted = true\n")).unwrap();
        let una = &config.router().realms[0].security.users["una"];
        assert!(una.password.as_ref().unwrap().unsalted_cra.is_some());
        let config = load_toml(&user("password = \"pw\"\n")).unwrap();
        let una = &config.router().realms[0].security.users["una"];
        assert!(una.password.as_ref().unwrap().unsalted_cra.is_none(), "salted by default");
        let error = load_toml(&user("wampcra_unsalted = true\n")).unwrap_err();
        assert!(error.contains("users.wampcra_unsalted"), "{error}");
    }

    #[test]
    fn a_realm_with_a_prototype_inherits_what_it_does_not_set() {
        let config = load_toml(
            "[[realms]]\nname = \"com.proto\"\nis_prototype = true\nallow_connections = false\n\
             [realms.security]\nauthmethods = [\"ticket\"]\n\
             [[realms]]\nname = \"com.child\"\nprototype_uri = \"com.proto\"\n\
             [[realms]]\nname = \"com.own\"\nprototype_uri = \"com.proto\"\nallow_connections = true\n\
             [realms.security]\nauthmethods = [\"wampcra\"]\n",
        )
        .expect("valid");
        let realms = config.router().realms;
        assert!(realms[0].is_prototype && !realms[0].allow_connections);
        let child = &realms[1];
        assert_eq!(child.prototype_uri.as_ref().map(Uri::as_str), Some("com.proto"));
        assert_eq!(child.inherits, Inherits::ALL);
        assert!(!child.allow_anonymous, "anonymous access is not inherited and defaults to no");
        assert!(!child.admits_sessions(Some(&realms[0])), "allow_connections comes from com.proto");
        let own = &realms[2];
        assert_eq!(own.inherits, Inherits::default());
        assert!(own.admits_sessions(Some(&realms[0])));
        assert_eq!(own.effective_security(Some(&realms[0])).authmethods, ["wampcra"]);
    }

    #[test]
    fn a_prototype_with_users_or_a_prototype_is_refused() {
        let error = load_toml(
            "[[realms]]\nname = \"p\"\nis_prototype = true\n[realms.security]\n\
             [[realms.security.users]]\nauthid = \"joe\"\n",
        )
        .unwrap_err();
        assert!(error.contains("cannot have users"), "{error}");
        let error =
            load_toml("[[realms]]\nname = \"p\"\nis_prototype = true\nprototype_uri = \"q\"\n")
                .unwrap_err();
        assert!(error.contains("realms.prototype_uri"), "{error}");
    }

    #[test]
    fn websocket_read_buffer_is_bounded_and_reaches_the_transport() {
        let config = load_toml("[websocket]\nread_buffer = 2048\n").unwrap();
        assert_eq!(config.transport().websocket_read_buffer, 2048);
        let error = load_toml("[websocket]\nread_buffer = 100\n").unwrap_err();
        assert!(error.contains("websocket.read_buffer"), "{error}");
    }

    #[test]
    fn command_line_overrides_file_and_environment() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9100));
        let overrides = Overrides { listen: Some(vec![addr]), ..Default::default() };
        let env = [("JUNCTION_LISTEN", "[\"127.0.0.1:9200\"]")];
        let config =
            load_in_jail(Some("listen = [\"127.0.0.1:9000\"]\n"), &env, overrides).expect("valid");
        assert_eq!(config.listen, vec![addr]);
    }

    #[test]
    fn environment_overrides_the_file_and_ignores_foreign_variables() {
        let env = [
            ("JUNCTION_LIMITS__MAX_MESSAGE_SIZE", "2048"),
            ("JUNCTION_BIN", "/not/a/config/key"),
            // The tracing filter, not the `[log]` table.
            ("JUNCTION_LOG", "warn"),
        ];
        let config =
            load_in_jail(Some("[limits]\nmax_message_size = 4096\n"), &env, Overrides::default())
                .expect("valid");
        assert_eq!(config.limits.max_message_size, 2048);
    }
}
