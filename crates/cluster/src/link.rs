//! The hooks the core calls for this node's own sessions: each change goes to the directory,
//! where the other nodes pick it up.

use async_nats::jetstream::kv;
use bytes::Bytes;

use junction_core::Error;
use junction_core::cluster::ClusterLink;
use junction_core::options::{InvokePolicy, MatchPolicy};
use junction_core::realm::{Peer, Realm};
use junction_wire::{Message, RegistrationId, SessionId, SubscriptionId, Uri};

use crate::directory::{self, ClaimRecord, RegistrationRecord, SessionRecord, SubscriptionRecord};
use crate::forward::Forward;
use crate::node::{Claim, Local, Node, Write};

impl Node {
    fn put(&self, key: String, record: &impl serde::Serialize) {
        match serde_json::to_vec(record) {
            Ok(value) => self.write(Write::Put(self.directory.clone(), key, Bytes::from(value))),
            Err(error) => tracing::warn!(%error, %key, "directory record not encodable"),
        }
    }

    fn delete(&self, key: String) {
        self.write(Write::Delete(self.directory.clone(), key));
    }

    /// Writes a local session and everything it holds to the directory.
    fn announce(&self, realm: &Realm, peer: &Peer) {
        let session = peer.id();
        self.put(directory::session_key(&self.name, session), &SessionRecord::new(peer.info()));
        let (subscriptions, registrations) = realm.held_by(session);
        for id in subscriptions {
            self.subscribed(realm, session, id);
        }
        for id in registrations {
            self.registered(realm, session, id);
        }
    }

    /// Makes the directory say again what this node holds: after it was cut off, the others
    /// may have taken it for dead and deleted its records, and its own deletions made while
    /// cut off were lost.
    pub(crate) async fn resync(&self) {
        self.prune_own_keys().await;
        let sessions: Vec<_> = self
            .state()
            .local
            .iter()
            .map(|(id, local)| (*id, std::sync::Arc::clone(&local.realm)))
            .collect();
        for (id, realm) in sessions {
            if let Some(peer) = realm.session(id) {
                self.announce(&realm, &peer);
            }
        }
        tracing::info!(node = %self.name, "directory records of this node written again");
    }

    fn is_local(&self, session: SessionId) -> bool {
        self.state().local.contains_key(&session)
    }

    /// Takes the claim key of a `single` registration for `session`: creates it, or replaces
    /// it if its holder is gone.
    async fn take_claim(&self, key: &str, session: SessionId) -> Result<bool, String> {
        let record = ClaimRecord { node: self.name.clone(), session: session.get() };
        let value = Bytes::from(serde_json::to_vec(&record).map_err(|e| e.to_string())?);
        match self.directory.create(key, value.clone()).await {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.to_string()),
        }
        let Some(entry) = self.directory.entry(key).await.map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        let holder = serde_json::from_slice::<ClaimRecord>(&entry.value).ok();
        let alive = holder
            .and_then(|h| SessionId::new(h.session))
            .is_some_and(|holder| self.session_known(holder));
        if alive {
            return Ok(false);
        }
        // The holder is gone (its node died before releasing it): take over, unless someone
        // else just did.
        Ok(self.directory.update(key, value, entry.revision).await.is_ok())
    }
}

impl ClusterLink for Node {
    fn joined(&self, realm: &Realm, peer: &Peer) {
        let Some(realm_arc) = self.router.realm(realm.name()) else { return };
        let local = Local { realm: realm_arc, claims: Vec::new() };
        self.state().local.insert(peer.id(), local);
        self.announce(realm, peer);
    }

    fn left(&self, _realm: &Realm, session: SessionId) {
        let claims = {
            let mut state = self.state();
            state.relayed.retain(|(callee, _), _| *callee != session);
            state.relayed_back.retain(|(_, callee, _), _| *callee != session);
            state.local.remove(&session).map(|l| l.claims).unwrap_or_default()
        };
        for claim in claims {
            self.delete(claim.key);
        }
        self.delete(directory::session_key(&self.name, session));
    }

    fn subscribed(&self, realm: &Realm, session: SessionId, subscription: SubscriptionId) {
        if !self.is_local(session) {
            return;
        }
        if let Some((topic, policy)) = realm.subscription_key(subscription) {
            let record = SubscriptionRecord::new(realm.name(), &topic, policy);
            self.put(directory::subscription_key(&self.name, session, subscription), &record);
        }
    }

    fn unsubscribed(&self, _realm: &Realm, session: SessionId, subscription: SubscriptionId) {
        if self.is_local(session) {
            self.delete(directory::subscription_key(&self.name, session, subscription));
        }
    }

    fn registered(&self, realm: &Realm, session: SessionId, registration: RegistrationId) {
        if !self.is_local(session) {
            return;
        }
        let Some((procedure, options)) = realm.registration_key(registration) else { return };
        let record = RegistrationRecord::new(realm.name(), &procedure, &options);
        self.put(directory::registration_key(&self.name, session, registration), &record);
        if options.invoke == InvokePolicy::Single {
            let key = directory::claim_key(realm.name(), &procedure, options.match_policy);
            if let Some(local) = self.state().local.get_mut(&session) {
                for claim in local.claims.iter_mut().filter(|c| c.key == key) {
                    claim.registration = Some(registration);
                }
            }
        }
    }

    fn unregistered(&self, realm: &Realm, session: SessionId, registration: RegistrationId) {
        if !self.is_local(session) {
            return;
        }
        self.delete(directory::registration_key(&self.name, session, registration));
        if realm.registration_key(registration).is_some() {
            return;
        }
        // The registration is gone: so is its claim, if it was `single`.
        let released: Vec<String> = {
            let mut state = self.state();
            let Some(local) = state.local.get_mut(&session) else { return };
            let (gone, kept) = std::mem::take(&mut local.claims)
                .into_iter()
                .partition(|c| c.registration == Some(registration));
            local.claims = kept;
            gone.into_iter().map(|c: Claim| c.key).collect()
        };
        for key in released {
            self.delete(key);
        }
    }

    fn claim(
        &self,
        realm: &Realm,
        procedure: &Uri,
        policy: MatchPolicy,
        session: SessionId,
    ) -> Result<(), Error> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(Error::Internal(format!(
                "NATS is unreachable, and a single registration of \"{procedure}\" must be claimed \
                 cluster-wide: try again later, or register it with a shared invocation policy"
            )));
        }
        let key = directory::claim_key(realm.name(), procedure, policy);
        let taken =
            tokio::task::block_in_place(|| self.runtime.block_on(self.take_claim(&key, session)));
        match taken {
            Ok(true) => {
                if let Some(local) = self.state().local.get_mut(&session) {
                    local.claims.push(Claim { key, registration: None });
                }
                Ok(())
            }
            Ok(false) => Err(Error::ProcedureAlreadyExists(format!(
                "\"{procedure}\" is registered (invocation policy single) on another cluster node"
            ))),
            Err(reason) => Err(Error::Internal(format!(
                "cannot reach the cluster directory to register \"{procedure}\": {reason}"
            ))),
        }
    }

    fn relay_answer(&self, callee: &Peer, message: &Message) -> bool {
        let (request, last) = match message {
            Message::Yield(m) => (m.request, !is_progress(&m.options)),
            Message::Error(m) => (m.request, true),
            _ => return false,
        };
        let key = (callee.id(), request);
        let relayed = {
            let mut state = self.state();
            let relayed =
                if last { state.relayed.remove(&key) } else { state.relayed.get(&key).cloned() };
            match relayed {
                Some(r) => {
                    if last {
                        state.relayed_back.remove(&(r.node.clone(), callee.id(), r.request));
                    }
                    r
                }
                None => return false,
            }
        };
        let mut answer = message.clone();
        match &mut answer {
            Message::Yield(m) => m.request = relayed.request,
            Message::Error(m) => m.request = relayed.request,
            _ => {}
        }
        let _ = self.forwarder(&relayed.node).send(Forward::Answer { callee: callee.id(), answer });
        true
    }
}

fn is_progress(options: &junction_wire::Dict) -> bool {
    options.get("progress").and_then(junction_wire::Value::as_bool).unwrap_or(false)
}
