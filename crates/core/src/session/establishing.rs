//! Joining a realm: HELLO, then either WELCOME at once (anonymous) or CHALLENGE, AUTHENTICATE
//! and WELCOME; ABORT whenever the realm, the method or the credentials do not fit.
//!
//! Failures tell an honest client what to fix (which method the realm accepts) without telling
//! anyone whether a user exists: an unknown authid is challenged like a known one and fails at
//! AUTHENTICATE with the same message as a wrong password.

use std::sync::Arc;

use junction_auth::password::{StoredPassword, decoy};
use junction_auth::{cra, cryptosign, scram, ticket};
use junction_wire::message::{Authenticate, Challenge, Hello, Welcome};
use junction_wire::{Dict, Message, SessionId, Value, dict};

use super::{
    ChannelBindings, Established, SessionInfo, State, Status, TransportInfo, abort_message,
};
use crate::error::Error;
use crate::features::router_roles;
use crate::ids;
use crate::limits;
use crate::outbox::{Outbound, Outbox};
use crate::realm::{Peer, Realm};
use crate::router::Router;
use crate::security::{Security, User};
use crate::time::Now;

/// Who vouches for authentications done by Junction itself.
const AUTHPROVIDER: &str = "junction";

/// A connection that has not sent HELLO yet.
pub struct Establishing {
    transport: TransportInfo,
}

/// A connection that was sent a CHALLENGE and owes an AUTHENTICATE.
pub struct Challenging {
    transport: TransportInfo,
    realm: Arc<Realm>,
    hello: Hello,
    session: SessionId,
    authid: String,
    /// The user, if the authid names one (unknown users are challenged all the same).
    user: Option<User>,
    pending: Pending,
}

/// What the router expects in AUTHENTICATE.
enum Pending {
    /// Checked against the user's stored password (or a decoy for unknown users), then
    /// against the tickets the router issued.
    Ticket(StoredPassword),
    Cra(cra::Challenge, StoredPassword),
    Cryptosign {
        challenge: cryptosign::Challenge,
        key: Option<[u8; 32]>,
        /// The TLS channel id the signature must be bound to, when the client asked for it.
        channel_id: Option<[u8; 32]>,
    },
    /// The user's SCRAM credential, or a decoy for unknown users and users without one.
    Scram(scram::Challenge, scram::ScramCredential),
}

impl Establishing {
    pub(super) fn new(transport: TransportInfo) -> Self {
        Self { transport }
    }

    pub(super) fn handle(
        self,
        router: &Router,
        outbox: &Arc<dyn Outbox>,
        now: Now,
        message: Message,
    ) -> (State, Status) {
        let result = match message {
            Message::Hello(hello) => self.hello(router, outbox, now, hello),
            // A client may give up before joining; nothing to answer.
            Message::Abort(_) => return (State::Closed, Status::Closed),
            other => Err(Error::ProtocolViolation(format!(
                "expected HELLO, got {} before the session was established",
                other.message_type().name()
            ))),
        };
        settle(result, outbox)
    }

    fn hello(
        self,
        router: &Router,
        outbox: &Arc<dyn Outbox>,
        now: Now,
        hello: Hello,
    ) -> Result<State, Error> {
        let realm =
            router.realm(&hello.realm).ok_or_else(|| Error::NoSuchRealm(hello.realm.clone()))?;
        if !realm.admits_sessions() {
            return Err(if realm.config().is_prototype {
                Error::RealmIsPrototype(hello.realm)
            } else {
                Error::ConnectionsNotAllowed(hello.realm)
            });
        }
        if !matches!(hello.details.get("roles"), Some(Value::Dict(roles)) if !roles.is_empty()) {
            return Err(Error::ProtocolViolation(
                "HELLO.Details.roles must announce at least one role".into(),
            ));
        }
        let limits = realm.limits();
        limits::check(limits.max_sessions, router.session_count(), "sessions on this router")?;
        limits::check(
            limits.max_sessions_per_realm,
            realm.session_count(),
            "sessions on this realm",
        )?;
        let offered = offered_methods(&hello)?;
        let security = realm.security();
        let authid = hello.details.get("authid").and_then(Value::as_str).map(str::to_owned);
        let session = ids::random(SessionId::new);
        let address = peer_address(&self.transport.peer);
        // Methods the realm accepts but the sources refuse from this address, for the message.
        let mut refused_here = Vec::new();
        for method in &offered {
            let from_here = |authid: Option<&str>| security.source_allows(authid, method, address);
            let identity = match method.as_str() {
                "anonymous" if realm.config().allow_anonymous && !from_here(None) => {
                    refused_here.push(method.as_str());
                    continue;
                }
                "trust" if security.allows_method("trust") => {
                    // No credential: the source rule vouches for the address.
                    let known = authid
                        .as_deref()
                        .and_then(|a| security.enabled_user(a))
                        .filter(|u| from_here(Some(&u.authid)));
                    let Some(user) = known else {
                        refused_here.push("trust");
                        continue;
                    };
                    Identity::user(&security, user, "trust")
                }
                "anonymous" if realm.config().allow_anonymous => {
                    Identity::anonymous(format!("anonymous-{session}"))
                }
                "ticket" | "wampcra" | "cryptosign" | "scram" if security.allows_method(method) => {
                    let pubkey = cryptosign_pubkey(&hello);
                    // Cryptosign may leave the authid to the router: the key's owner (spec).
                    let authid = authid.clone().or_else(|| {
                        let key = pubkey.filter(|_| method == "cryptosign")?;
                        security
                            .users
                            .values()
                            .find(|u| u.enabled && u.authorized_keys.contains(&key))
                            .map(|u| u.authid.clone())
                    });
                    let Some(claimed) = authid else {
                        return Err(Error::AuthenticationFailed(format!(
                            "authmethod {method} needs an authid in HELLO"
                        )));
                    };
                    // An alias stands for its user: sources, grants and the session see the
                    // username.
                    let authid = security
                        .user_named(&claimed)
                        .map_or_else(|| claimed.clone(), |u| u.authid.clone());
                    if !from_here(Some(&authid)) {
                        refused_here.push(method.as_str());
                        continue;
                    }
                    // A disabled user is challenged and refused exactly like an unknown one.
                    let user = security.enabled_user(&authid).cloned();
                    let password = user.as_ref().and_then(|u| u.password.clone());
                    let request = ChallengeRequest {
                        method,
                        authid: &authid,
                        claimed: &claimed,
                        user: user.as_ref(),
                        password,
                        decoy_secret: router.decoy_secret(),
                        authextra: authextra(&hello),
                        pubkey,
                        channel_bindings: self.transport.channel_bindings,
                        session,
                        now,
                    };
                    let (pending, extra) = challenge(request)?;
                    outbox.push(Outbound::message(Challenge { authmethod: method.clone(), extra }));
                    let transport = self.transport;
                    let challenging =
                        Challenging { transport, realm, hello, session, authid, user, pending };
                    return Ok(State::Challenging(Box::new(challenging)));
                }
                _ => continue,
            };
            // Anonymous and trust need no challenge.
            let transport = self.transport;
            return welcome(router, &realm, outbox, now, hello, transport, session, identity)
                .map(State::Established);
        }
        let mut accepted: Vec<&str> = security.authmethods.iter().map(String::as_str).collect();
        if realm.config().allow_anonymous {
            accepted.insert(0, "anonymous");
        }
        let mut message = format!(
            "realm \"{}\" accepts the authentication methods [{}]; the client offered [{}]",
            realm.name(),
            accepted.join(", "),
            offered.join(", ")
        );
        if !refused_here.is_empty() {
            message.push_str(&format!(
                "; not allowed from address {address}: [{}]",
                refused_here.join(", ")
            ));
        }
        Err(Error::NoMatchingAuthMethod(message))
    }
}

impl Challenging {
    pub(super) fn handle(
        self,
        router: &Router,
        outbox: &Arc<dyn Outbox>,
        now: Now,
        message: Message,
    ) -> (State, Status) {
        let result = match message {
            Message::Authenticate(answer) => self.authenticate(router, outbox, now, answer),
            Message::Abort(_) => return (State::Closed, Status::Closed),
            other => Err(Error::ProtocolViolation(format!(
                "expected AUTHENTICATE, got {} while authenticating",
                other.message_type().name()
            ))),
        };
        settle(result, outbox)
    }

    fn authenticate(
        self,
        router: &Router,
        outbox: &Arc<dyn Outbox>,
        now: Now,
        answer: Authenticate,
    ) -> Result<State, Error> {
        let method = match &self.pending {
            Pending::Ticket(_) => "ticket",
            Pending::Cra(..) => "wampcra",
            Pending::Cryptosign { .. } => "cryptosign",
            Pending::Scram(..) => "scram",
        };
        let mut authextra = Dict::new();
        let mut ticket_id = None;
        // Decoys never verify, but cost the same work as real credentials.
        let verified = match &self.pending {
            // The user's password, or a ticket the router issued to this user on this realm.
            Pending::Ticket(stored) => {
                ticket::verify(stored, &answer.signature).is_ok() || {
                    let realm = self.realm.name().as_str();
                    let unix = crate::tickets::unix(now.wall);
                    ticket_id = router
                        .tickets()
                        .validate(&answer.signature, realm, unix)
                        .filter(|claims| claims.authid == self.authid && self.user.is_some())
                        .map(|claims| claims.id);
                    ticket_id.is_some()
                }
            }
            Pending::Cra(challenge, stored) => challenge.verify(stored, &answer.signature).is_ok(),
            Pending::Cryptosign { challenge, key: Some(key), channel_id } => {
                challenge.verify(key, &answer.signature, channel_id.as_ref()).is_ok()
            }
            Pending::Cryptosign { key: None, .. } => false,
            Pending::Scram(challenge, credential) => {
                let extra = |name: &str| answer.extra.get(name).and_then(Value::as_str);
                let scram_answer = scram::Answer {
                    proof: &answer.signature,
                    nonce: extra("nonce"),
                    channel_binding: extra("channel_binding"),
                    cbind_data: extra("cbind_data"),
                };
                match challenge.verify(credential, &scram_answer) {
                    Ok(server_signature) => {
                        // Autobahn checks this to authenticate the router in turn.
                        authextra.insert("scram_server_signature".into(), server_signature.into());
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        let security = self.realm.security();
        // Disabled (or deleted) while it was answering the challenge: refused all the same.
        let still_enabled = security.enabled_user(&self.authid).is_some();
        let user = match (verified && still_enabled, self.user) {
            (true, Some(user)) => user,
            _ => {
                metrics::counter!("junction_authentication_failures_total", "method" => method)
                    .increment(1);
                return Err(Error::AuthenticationFailed(format!(
                    "the {method} credentials for authid \"{}\" were not accepted",
                    self.authid
                )));
            }
        };
        let identity =
            Identity { authextra, ticket_id, ..Identity::user(&security, &user, method) };
        welcome(
            router,
            &self.realm,
            outbox,
            now,
            self.hello,
            self.transport,
            self.session,
            identity,
        )
        .map(State::Established)
    }
}

/// ABORT for a failed step, or the next state.
fn settle(result: Result<State, Error>, outbox: &Arc<dyn Outbox>) -> (State, Status) {
    match result {
        Ok(state) => (state, Status::Open),
        Err(error) => {
            metrics::counter!("junction_handshake_refusals_total", "reason" => error.uri())
                .increment(1);
            outbox.push(Outbound::message(abort_message(&error)));
            (State::Closed, Status::Closed)
        }
    }
}

/// HELLO.Details.authmethods, or `["anonymous"]` when absent.
fn offered_methods(hello: &Hello) -> Result<Vec<String>, Error> {
    match hello.details.get("authmethods") {
        None | Some(Value::Null) => Ok(vec!["anonymous".into()]),
        Some(Value::List(methods)) => methods
            .iter()
            .map(|m| m.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::ProtocolViolation(
                    "HELLO.Details.authmethods must be a list of strings".into(),
                )
            }),
        Some(_) => Err(Error::ProtocolViolation(
            "HELLO.Details.authmethods must be a list of strings".into(),
        )),
    }
}

/// What a CHALLENGE is built from.
struct ChallengeRequest<'a> {
    method: &'a str,
    /// The username (HELLO's authid, or the user it is an alias of).
    authid: &'a str,
    /// The authid as HELLO gave it (the username or an alias), which SCRAM's AuthMessage uses.
    claimed: &'a str,
    user: Option<&'a User>,
    /// The user's stored password, if the user exists and has one.
    password: Option<StoredPassword>,
    /// The key of the decoys that stand in for a missing password or SCRAM credential.
    decoy_secret: &'a [u8; 32],
    /// HELLO.Details.authextra.
    authextra: Dict,
    /// HELLO.Details.authextra.pubkey, for cryptosign.
    pubkey: Option<[u8; 32]>,
    /// The connection's channel bindings, for cryptosign.
    channel_bindings: ChannelBindings,
    session: SessionId,
    now: Now,
}

/// The CHALLENGE for a method, and what AUTHENTICATE must then satisfy. Unknown users get a
/// challenge built exactly like a real one, that cannot succeed.
fn challenge(request: ChallengeRequest<'_>) -> Result<(Pending, Dict), Error> {
    let ChallengeRequest {
        method,
        authid,
        claimed,
        user,
        password,
        decoy_secret,
        authextra,
        pubkey,
        channel_bindings,
        session,
        now,
    } = request;
    // The PBKDF2 decoy costs a derivation: made only for ticket and wampcra, which use it, so
    // that scram and cryptosign spend no more on an unknown user than on a known one.
    let stored_or_decoy = || password.clone().unwrap_or_else(|| decoy(decoy_secret, authid));
    Ok(match method {
        "ticket" => (Pending::Ticket(stored_or_decoy()), Dict::new()),
        "scram" => {
            // Checked before anything depends on the user, so it tells nothing about them.
            if !matches!(authextra.get("channel_binding"), None | Some(Value::Null)) {
                return Err(Error::AuthenticationFailed(
                    "authmethod scram: channel binding is not supported".into(),
                ));
            }
            let client_nonce = authextra.get("nonce").and_then(Value::as_str).unwrap_or("");
            // Unknown users, users without a password and passwords stored before `scram`
            // existed get a decoy: no KDF runs either way, so both cost the same.
            let credential = password
                .as_ref()
                .and_then(|p| p.scram.clone())
                .unwrap_or_else(|| scram::decoy(decoy_secret, authid));
            let challenge =
                scram::Challenge::new(claimed, client_nonce, &credential).map_err(|_| {
                    Error::AuthenticationFailed(
                        "authmethod scram needs HELLO.Details.authextra.nonce, a base64 nonce"
                            .into(),
                    )
                })?;
            // Exactly these attributes: Autobahn refuses a challenge with any other.
            let extra = dict! {
                "nonce" => challenge.nonce.as_str(),
                "salt" => challenge.salt.as_str(),
                "kdf" => scram::KDF,
                "iterations" => u64::from(challenge.iterations),
                "memory" => u64::from(challenge.memory),
            };
            (Pending::Scram(challenge, credential), extra)
        }
        "wampcra" => {
            let authrole = user.and_then(|u| u.groups.first()).map_or("user", String::as_str);
            let timestamp = crate::meta::timestamp(now.wall);
            let identity = cra::Identity {
                authid,
                authrole,
                authprovider: AUTHPROVIDER,
                session: session.get(),
                timestamp: &timestamp,
            };
            let password = stored_or_decoy();
            let challenge = cra::Challenge::new(&identity, &password);
            let mut extra = dict! { "challenge" => challenge.challenge.as_str() };
            // Without a salt, Autobahn and xconn sign with the secret itself (unsalted).
            if let Some(salting) = &challenge.salting {
                extra.insert("salt".into(), salting.salt.as_str().into());
                extra.insert("iterations".into(), u64::from(salting.iterations).into());
                extra.insert("keylen".into(), salting.keylen.into());
            }
            (Pending::Cra(challenge, password), extra)
        }
        _ => {
            // Checked before anything depends on the user, so it tells nothing about them.
            let binding = channel_binding(&authextra, channel_bindings)?;
            let key = pubkey.filter(|key| user.is_some_and(|u| u.authorized_keys.contains(key)));
            let challenge = cryptosign::Challenge::new();
            let (name, channel_id) =
                binding.map_or((Value::Null, None), |(name, id)| (name.into(), Some(id)));
            let extra = dict! { "challenge" => challenge.hex(), "channel_binding" => name };
            (Pending::Cryptosign { challenge, key, channel_id }, extra)
        }
    })
}

/// The channel binding a cryptosign client asked for in HELLO.Details.authextra, with the
/// connection's channel id: `tls-exporter` (RFC 9266) on TLS 1.3, `tls-unique` (RFC 5929) on
/// TLS 1.2, which defines no exporter binding without the extended master secret, while TLS
/// 1.3 defines no `tls-unique`.
fn channel_binding(
    authextra: &Dict,
    bindings: ChannelBindings,
) -> Result<Option<(&'static str, [u8; 32])>, Error> {
    let refuse =
        |why: &str| Err(Error::AuthenticationFailed(format!("authmethod cryptosign: {why}")));
    let Some(requested) = authextra.get("channel_binding").filter(|v| **v != Value::Null) else {
        return Ok(None);
    };
    match requested.as_str() {
        Some("tls-exporter") => match bindings.tls_exporter {
            Some(id) => Ok(Some(("tls-exporter", id))),
            None => refuse(
                "channel binding tls-exporter needs a TLS 1.3 connection; connect over TLS 1.3, \
                 use tls-unique over TLS 1.2, or leave channel_binding out",
            ),
        },
        Some("tls-unique") => match bindings.tls_unique {
            Some(finished) => {
                Ok(Some(("tls-unique", cryptosign::tls_unique_channel_id(&finished))))
            }
            None => refuse(
                "channel binding tls-unique needs a TLS 1.2 connection (TLS 1.3 defines no \
                 tls-unique); use tls-exporter over TLS 1.3, or leave channel_binding out",
            ),
        },
        _ => refuse(&format!(
            "unknown channel binding {requested:?}; Junction supports tls-unique (TLS 1.2) and \
             tls-exporter (TLS 1.3)"
        )),
    }
}

/// HELLO.Details.authextra (empty when absent).
fn authextra(hello: &Hello) -> Dict {
    hello.details.get("authextra").and_then(Value::as_dict).cloned().unwrap_or_default()
}

/// The client's IP address; Unix-socket peers are local.
fn peer_address(peer: &str) -> std::net::IpAddr {
    peer.parse::<std::net::SocketAddr>()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |a| a.ip())
}

/// The Ed25519 key a cryptosign client named in HELLO.Details.authextra.pubkey.
fn cryptosign_pubkey(hello: &Hello) -> Option<[u8; 32]> {
    let extra = hello.details.get("authextra").and_then(Value::as_dict)?;
    extra.get("pubkey").and_then(Value::as_str).and_then(cryptosign::parse_public_key)
}

/// Who a session authenticated as.
struct Identity {
    authid: String,
    authrole: String,
    /// Every group the user is in (nested groups included).
    groups: Vec<String>,
    authmethod: &'static str,
    anonymous: bool,
    /// WELCOME.Details.authextra (for `scram`: the server signature); omitted when empty.
    authextra: Dict,
    /// The router-issued ticket it authenticated with, if any.
    ticket_id: Option<String>,
}

impl Identity {
    /// A user of the realm: authrole is the first group ("user" when none).
    fn user(security: &Security, user: &User, authmethod: &'static str) -> Self {
        let groups: Vec<String> = security.groups_of(user).into_iter().collect();
        let authrole = user.groups.first().cloned().unwrap_or_else(|| "user".into());
        Self {
            authid: user.authid.clone(),
            authrole,
            groups,
            authmethod,
            anonymous: false,
            authextra: Dict::new(),
            ticket_id: None,
        }
    }

    fn anonymous(authid: String) -> Self {
        Self {
            authid,
            authrole: "anonymous".into(),
            groups: Vec::new(),
            authmethod: "anonymous",
            anonymous: true,
            authextra: Dict::new(),
            ticket_id: None,
        }
    }
}

/// Sends WELCOME and attaches the session to the realm.
#[allow(clippy::too_many_arguments)]
fn welcome(
    router: &Router,
    realm: &Arc<Realm>,
    outbox: &Arc<dyn Outbox>,
    now: Now,
    hello: Hello,
    transport: TransportInfo,
    id: SessionId,
    identity: Identity,
) -> Result<Established, Error> {
    let roles = match hello.details.get("roles") {
        Some(Value::Dict(roles)) => roles.clone(),
        _ => Dict::new(),
    };
    let mut authroles = vec![identity.authrole.clone()];
    authroles.extend(identity.groups.iter().filter(|g| **g != identity.authrole).cloned());
    let info = SessionInfo {
        id,
        realm: hello.realm.clone(),
        authid: identity.authid.into(),
        authrole: identity.authrole.into(),
        authroles,
        authmethod: identity.authmethod.into(),
        authprovider: AUTHPROVIDER.into(),
        authextra: Dict::new(),
        transport,
        roles,
        agent: hello.details.get("agent").and_then(Value::as_str).map(str::to_owned),
        established_at: now.wall,
        ticket_id: identity.ticket_id,
    };
    let mut details = dict! {
        "realm" => info.realm.as_str(),
        "authid" => Arc::clone(&info.authid),
        "authrole" => Arc::clone(&info.authrole),
        "authmethod" => info.authmethod.as_str(),
        "authprovider" => info.authprovider.as_str(),
        "roles" => router_roles(&realm.config()),
        "agent" => router.config().agent.as_str(),
    };
    if !identity.authextra.is_empty() {
        details.insert("authextra".into(), Value::Dict(identity.authextra));
    }
    outbox.push(Outbound::message(Welcome { session: id, details }));
    let peer = Arc::new(Peer::new(info, Arc::clone(outbox), identity.anonymous));
    realm.attach(Arc::clone(&peer), now.wall);
    Ok(Established::new(Arc::clone(realm), peer))
}
