//! The router: the set of realms, and the entry point for new sessions.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use junction_wire::{Payload, Uri};

use crate::error::Error;
use crate::time::Now;

use crate::cluster::ClusterLink;
use crate::limits::Limits;
use crate::persistence::Persistence;
use crate::realm::{ClusterSlot, Realm, RealmConfig, read, write};
use crate::time::TimerWaker;

/// The router's settings.
#[derive(Debug, Clone, Default)]
pub struct RouterConfig {
    /// The realms to open at start.
    pub realms: Vec<RealmConfig>,
    /// The agent string sent in WELCOME.
    pub agent: String,
    /// Limits on sessions and what each may hold.
    pub limits: Limits,
    /// The realm whose sessions may manage every realm through the admin API.
    pub admin_realm: Option<Uri>,
}

/// The router: realms by name.
pub struct Router {
    config: RouterConfig,
    realms: RwLock<HashMap<Uri, Arc<Realm>>>,
    /// Shared by every realm's dealer: wakes the driver's timer task for new deadlines.
    timers: Arc<TimerWaker>,
    /// Keys the decoy credentials of unknown users, so their challenges look like real ones
    /// and stay stable for the router's lifetime.
    decoy_secret: [u8; 32],
    /// Where admin changes are written; without one they live in memory only.
    persistence: OnceLock<Arc<dyn Persistence>>,
    /// Issued tickets (`bondy.ticket.*`).
    tickets: crate::tickets::Tickets,
    /// The cluster layer, once installed (shared with every realm).
    cluster: ClusterSlot,
    /// Re-reads the TLS listener's certificate and key (`bondy.cert_manager.rotate_*`), when
    /// the router has a TLS listener.
    tls_rotation: OnceLock<TlsRotation>,
}

/// Re-reads the TLS certificate and key files; the error says what is wrong with them.
pub type TlsRotation = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

impl Router {
    /// A router with the configured realms open.
    pub fn new(config: RouterConfig) -> Arc<Self> {
        let timers = Arc::new(TimerWaker::default());
        let cluster = ClusterSlot::default();
        let realms = config
            .realms
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    Arc::new(Realm::new(
                        r.clone(),
                        Arc::clone(&timers),
                        Arc::new(config.limits.clone()),
                        Arc::clone(&cluster),
                    )),
                )
            })
            .collect();
        let decoy_secret = rand::random();
        let persistence = OnceLock::new();
        let tickets = crate::tickets::Tickets::new();
        let router = Arc::new(Self {
            config,
            realms: RwLock::new(realms),
            timers,
            decoy_secret,
            persistence,
            tickets,
            cluster,
            tls_rotation: OnceLock::new(),
        });
        for realm in router.realms() {
            router.attach_prototype(&realm);
        }
        router
    }

    /// Points `realm` at the current settings of the prototype it names, if that exists.
    fn attach_prototype(&self, realm: &Realm) {
        let prototype = realm.config().prototype_uri.clone();
        realm.set_prototype(prototype.and_then(|p| self.realm(&p)).map(|p| p.config()));
    }

    /// The settings of the realm `config` names as its prototype, if it names one that exists.
    pub(crate) fn prototype_of(&self, config: &RealmConfig) -> Option<Arc<RealmConfig>> {
        config.prototype_uri.as_ref().and_then(|p| self.realm(p)).map(|p| p.config())
    }

    /// The realms that inherit from the realm `name`.
    pub(crate) fn dependents(&self, name: &Uri) -> Vec<Arc<Realm>> {
        let mut found: Vec<Arc<Realm>> = self
            .realms()
            .into_iter()
            .filter(|r| r.config().prototype_uri.as_ref() == Some(name))
            .collect();
        found.sort_by(|a, b| a.name().cmp(b.name()));
        found
    }

    /// After a change to the realm `prototype`: merges its new settings into every realm that
    /// inherits from it, and withdraws what their live sessions may no longer hold.
    pub(crate) fn propagate(&self, prototype: &Realm, now: std::time::SystemTime) {
        for realm in self.dependents(prototype.name()) {
            realm.set_prototype(Some(prototype.config()));
            realm.enforce_grants(now);
        }
    }

    /// Makes this router one node of a cluster (once, at start, before clients connect).
    pub fn set_cluster(&self, link: Arc<dyn ClusterLink>) {
        let _ = self.cluster.set(link);
    }

    /// Applies a realm's settings changed on another cluster node: creates the realm, or
    /// replaces its settings and security and withdraws what the new grants no longer allow.
    pub fn apply_realm(&self, config: RealmConfig, now: std::time::SystemTime) {
        let name = config.name.clone();
        match self.realm(&name) {
            Some(realm) => {
                realm.set_config(config);
                self.attach_prototype(&realm);
                realm.enforce_grants(now);
            }
            None => {
                self.add_realm(config);
            }
        }
        if let Some(realm) = self.realm(&name) {
            self.propagate(&realm, now);
        }
    }

    /// Removes a realm without touching the store (deleted on another cluster node, or already
    /// deleted from the store), closing its local sessions.
    pub fn drop_realm(&self, name: &Uri, now: std::time::SystemTime) {
        if let Some(realm) = write(&self.realms).remove(name) {
            realm.close_all("wamp.close.close_realm", "the realm was deleted", now);
        }
    }

    /// Installs the driver's timer wake-up: called whenever a deadline sooner than any known
    /// one appears, so the driver calls [`Router::expire`] in time.
    pub fn set_timer_waker(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.timers.install(wake);
    }

    /// Expires every call whose deadline passed; returns the next deadline, if any.
    pub fn expire(&self, now: Instant) -> Option<Instant> {
        self.realms().iter().filter_map(|r| r.dealer.expire(now)).min()
    }

    /// Makes admin changes and issued tickets durable through `persistence` (once, at start),
    /// and takes the tickets (and their signing key) stored there.
    pub fn set_persistence(&self, persistence: Arc<dyn Persistence>) -> Result<(), String> {
        self.tickets.load(persistence.as_ref())?;
        let _ = self.persistence.set(persistence);
        Ok(())
    }

    /// Lets `bondy.cert_manager.rotate_all|rotate_listener` reload the TLS certificate (once,
    /// at start, by the binary that owns the listener).
    pub fn set_tls_rotation(&self, rotate: TlsRotation) {
        let _ = self.tls_rotation.set(rotate);
    }

    /// The TLS certificate reload, if the router has a TLS listener.
    pub(crate) fn tls_rotation(&self) -> Option<&TlsRotation> {
        self.tls_rotation.get()
    }

    /// The persistence layer, if any.
    pub(crate) fn persistence(&self) -> Option<&dyn Persistence> {
        self.persistence.get().map(|p| p.as_ref())
    }

    /// Issued tickets.
    pub(crate) fn tickets(&self) -> &crate::tickets::Tickets {
        &self.tickets
    }

    /// Writes a realm's new state through the persistence layer, if any.
    pub(crate) fn persist_config(&self, realm: &RealmConfig) -> Result<(), String> {
        match self.persistence.get() {
            Some(p) => p.save_realm(realm),
            None => Ok(()),
        }
    }

    /// Removes a realm: its sessions are closed with `wamp.close.close_realm`, and the change
    /// is made durable. Returns whether the realm existed.
    pub(crate) fn remove_realm(
        &self,
        name: &Uri,
        now: std::time::SystemTime,
    ) -> Result<bool, String> {
        if self.realm(name).is_none() {
            return Ok(false);
        }
        if let Some(p) = self.persistence.get() {
            p.delete_realm(name.as_str())?;
        }
        self.drop_realm(name, now);
        Ok(true)
    }

    /// Adds a realm and makes it durable; returns false if one of that name exists.
    pub(crate) fn create_realm(&self, config: RealmConfig) -> Result<bool, String> {
        if let Some(p) = self.persistence.get() {
            if read(&self.realms).contains_key(&config.name) {
                return Ok(false);
            }
            p.save_realm(&config)?;
        }
        Ok(self.add_realm(config))
    }

    /// Runs an admin procedure as the local operator (the `junction` CLI working on the data
    /// directory): in the admin realm, with no session and no grant check.
    pub fn local_admin(&self, procedure: &str, args: Payload, now: Now) -> Result<Payload, Error> {
        let name = self
            .config
            .admin_realm
            .clone()
            .ok_or_else(|| Error::NoSuchRealm(Uri::from("(no admin realm)")))?;
        let admin = self.realm(&name).ok_or(Error::NoSuchRealm(name))?;
        let procedure = Uri::from(procedure);
        crate::admin::call(self, &admin, None, &procedure, &args, now)
            .unwrap_or_else(|| Err(Error::NoSuchProcedure(procedure.clone())))
    }

    /// The key of decoy credentials (see [`junction_auth::password::decoy`]).
    pub(crate) fn decoy_secret(&self) -> &[u8; 32] {
        &self.decoy_secret
    }

    /// The router's settings.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// The realm named `name`, if it exists.
    pub fn realm(&self, name: &Uri) -> Option<Arc<Realm>> {
        read(&self.realms).get(name).cloned()
    }

    /// Every realm.
    pub fn realms(&self) -> Vec<Arc<Realm>> {
        read(&self.realms).values().cloned().collect()
    }

    /// Adds a realm, replacing nothing: returns false if one of that name exists.
    pub fn add_realm(&self, config: RealmConfig) -> bool {
        let mut realms = write(&self.realms);
        if realms.contains_key(&config.name) {
            return false;
        }
        let prototype =
            config.prototype_uri.as_ref().and_then(|p| realms.get(p)).map(|p| p.config());
        let realm = Realm::new(
            config,
            Arc::clone(&self.timers),
            Arc::new(self.config.limits.clone()),
            Arc::clone(&self.cluster),
        );
        realm.set_prototype(prototype);
        realms.insert(realm.name().clone(), Arc::new(realm));
        true
    }

    /// The number of sessions across all realms.
    pub fn session_count(&self) -> usize {
        self.realms().iter().map(|r| r.session_count()).sum()
    }
}
