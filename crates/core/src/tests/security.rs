//! Authentication (ticket, WAMP-CRA, cryptosign, SCRAM) and authorization, in-process.

use std::sync::Arc;

use ed25519_dalek::{Signer, SigningKey};
use junction_auth::password::StoredPassword;
use junction_auth::{cra, scram};
use serde_json::{Value as Json, json};

use super::harness::{Client, router_with};
use crate::options::MatchPolicy;
use crate::security::{Grant, Group, Permission, Security, User};
use crate::session::ChannelBindings;
use crate::{RealmConfig, Router, Status};

const KEY: [u8; 32] = [7; 32];

/// A realm "secure" that discloses nobody by default: joe (password "secret", group "user",
/// alias "joseph"), ann
/// (Ed25519 key, group "admin", which is in "user"); users may call com.app.*, admins may also
/// register it.
fn secure_router() -> Arc<Router> {
    let public = SigningKey::from_bytes(&KEY).verifying_key().to_bytes();
    let users = [
        User {
            password: Some(StoredPassword::new("secret")),
            groups: vec!["user".into()],
            aliases: vec!["joseph".into()],
            ..User::named("joe")
        },
        // A password stored before `scram` existed: no SCRAM credential.
        User {
            password: Some(StoredPassword::with_salt("secret", "salt", 1000)),
            groups: vec!["user".into()],
            ..User::named("old")
        },
        User { authorized_keys: vec![public], groups: vec!["admin".into()], ..User::named("ann") },
    ];
    let security = Security {
        enabled: true,
        authmethods: vec!["ticket".into(), "wampcra".into(), "cryptosign".into(), "scram".into()],
        users: users.into_iter().map(|u| (u.authid.clone(), u)).collect(),
        groups: [("user", vec![]), ("admin", vec!["user".to_string()])]
            .into_iter()
            .map(|(n, g)| (n.to_string(), Group { name: n.into(), groups: g }))
            .collect(),
        grants: vec![
            Grant {
                permissions: vec![Permission::Call, Permission::Subscribe],
                uri: "com.app.".into(),
                policy: MatchPolicy::Prefix,
                roles: vec!["user".into()],
            },
            Grant {
                permissions: vec![Permission::Register],
                uri: "com.app.".into(),
                policy: MatchPolicy::Prefix,
                roles: vec!["admin".into()],
            },
        ],
        sources: vec![],
    };
    let realm = RealmConfig {
        allow_anonymous: false,
        disclose_caller: false,
        disclose_publisher: false,
        security,
        ..RealmConfig::open("secure")
    };
    router_with(vec![realm])
}

fn hello(authid: &str, methods: &[&str], extra: Json) -> String {
    json!([1, "secure", {"roles": {"caller": {}, "callee": {}, "subscriber": {}}, "authid": authid, "authmethods": methods, "authextra": extra}]).to_string()
}

fn join_ticket(router: &Arc<Router>, authid: &str, ticket: &str) -> (Client, Json) {
    let mut c = Client::connect(router);
    assert_eq!(c.try_send(&hello(authid, &["ticket"], json!({}))), Status::Open);
    assert_eq!(c.recv().expect("CHALLENGE"), json!([4, "ticket", {}]));
    c.send(&json!([5, ticket, {}]).to_string());
    let reply = c.recv().expect("WELCOME or ABORT");
    (c, reply)
}

#[test]
fn ticket_authenticates_with_the_password_and_welcome_names_the_identity() {
    let router = secure_router();
    let (_c, welcome) = join_ticket(&router, "joe", "secret");
    assert_eq!(welcome[0], 2, "{welcome}");
    assert_eq!(welcome[2]["authid"], "joe");
    assert_eq!(welcome[2]["authrole"], "user");
    assert_eq!(welcome[2]["authmethod"], "ticket");
    assert_eq!(welcome[2]["authprovider"], "junction");
}

#[test]
fn wrong_ticket_and_unknown_user_fail_with_the_same_kind_of_message() {
    let router = secure_router();
    let (_c, wrong) = join_ticket(&router, "joe", "nope");
    let (_d, unknown) = join_ticket(&router, "nobody", "secret");
    for abort in [&wrong, &unknown] {
        assert_eq!(abort[0], 3);
        assert_eq!(abort[2], "wamp.error.authentication_failed");
    }
    let shape =
        |m: &Json| m[1]["message"].as_str().unwrap().replace("joe", "X").replace("nobody", "X");
    assert_eq!(shape(&wrong), shape(&unknown), "no hint whether the user exists");
}

#[test]
fn wampcra_challenge_is_answered_with_the_salted_key() {
    let router = secure_router();
    let mut c = Client::connect(&router);
    c.send(&hello("joe", &["wampcra"], json!({})));
    let challenge = c.recv().expect("CHALLENGE");
    assert_eq!(challenge[1], "wampcra");
    let extra = &challenge[2];
    let key = StoredPassword::with_salt(
        "secret",
        extra["salt"].as_str().unwrap(),
        extra["iterations"].as_u64().unwrap() as u32,
    )
    .cra_key();
    let signature = cra::sign(&key, extra["challenge"].as_str().unwrap());
    c.send(&json!([5, signature, {}]).to_string());
    let welcome = c.recv().expect("WELCOME");
    assert_eq!(
        (welcome[0].clone(), welcome[2]["authmethod"].clone()),
        (json!(2), json!("wampcra"))
    );
}

const CLIENT_NONCE: &str = "egVDf3DMJh0=";

/// HELLO with scram as `authid`, CHALLENGE, AUTHENTICATE with a proof computed from `password`:
/// the CHALLENGE, the reply and the server signature a client would expect.
fn join_scram(router: &Arc<Router>, authid: &str, password: &str) -> (Json, Json, String) {
    let mut c = Client::connect(router);
    c.send(&hello(authid, &["scram"], json!({"nonce": CLIENT_NONCE, "channel_binding": null})));
    let challenge = c.recv().expect("CHALLENGE");
    assert_eq!(challenge[1], "scram", "{challenge}");
    let extra = &challenge[2];
    let first = scram::ServerFirst {
        nonce: extra["nonce"].as_str().unwrap(),
        salt: extra["salt"].as_str().unwrap(),
        iterations: extra["iterations"].as_u64().unwrap() as u32,
        memory: extra["memory"].as_u64().unwrap() as u32,
    };
    let (proof, server_signature) =
        scram::client_final(password, authid, CLIENT_NONCE, &first).unwrap();
    let extra = json!({"nonce": first.nonce, "channel_binding": null, "cbind_data": null});
    c.send(&json!([5, proof, extra]).to_string());
    (challenge, c.recv().expect("WELCOME or ABORT"), server_signature)
}

#[test]
fn scram_authenticates_and_welcome_carries_the_server_signature() {
    let router = secure_router();
    let (challenge, welcome, server_signature) = join_scram(&router, "joe", "secret");
    let extra = challenge[2].as_object().unwrap();
    let mut names: Vec<&str> = extra.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["iterations", "kdf", "memory", "nonce", "salt"], "{challenge}");
    assert_eq!(extra["kdf"], "argon2id-13");
    assert!(extra["nonce"].as_str().unwrap().starts_with(CLIENT_NONCE));
    assert_eq!(welcome[0], 2, "{welcome}");
    assert_eq!(
        (&welcome[2]["authid"], &welcome[2]["authrole"], &welcome[2]["authmethod"]),
        (&json!("joe"), &json!("user"), &json!("scram"))
    );
    assert_eq!(welcome[2]["authextra"]["scram_server_signature"], server_signature.as_str());
}

#[test]
fn scram_refuses_a_wrong_password_an_unknown_user_and_a_password_without_scram_alike() {
    let router = secure_router();
    let (joe_challenge, wrong, _) = join_scram(&router, "joe", "nope");
    let (nobody_challenge, unknown, _) = join_scram(&router, "nobody", "secret");
    let (_, old, _) = join_scram(&router, "old", "secret");
    for abort in [&wrong, &unknown, &old] {
        assert_eq!(abort[0], 3, "{abort}");
        assert_eq!(abort[2], "wamp.error.authentication_failed");
    }
    let shape = |m: &Json| {
        let message = m[1]["message"].as_str().unwrap();
        message.replace("joe", "X").replace("nobody", "X").replace("old", "X")
    };
    assert_eq!(shape(&wrong), shape(&unknown), "no hint whether the user exists");
    assert_eq!(shape(&wrong), shape(&old));
    // The decoy challenge has the same shape, and a salt that is stable for the authid.
    for name in ["salt", "nonce"] {
        let len = |c: &Json| c[2][name].as_str().unwrap().len();
        assert_eq!(len(&joe_challenge), len(&nobody_challenge), "{name}");
    }
    assert_eq!(joe_challenge[2]["iterations"], nobody_challenge[2]["iterations"]);
    assert_eq!(joe_challenge[2]["memory"], nobody_challenge[2]["memory"]);
    let (again, _, _) = join_scram(&router, "nobody", "secret");
    assert_eq!(again[2]["salt"], nobody_challenge[2]["salt"]);
}

#[test]
fn scram_needs_a_base64_nonce_and_no_channel_binding() {
    let router = secure_router();
    for extra in [
        json!({}),
        json!({"nonce": "not base64!"}),
        json!({"nonce": CLIENT_NONCE, "channel_binding": "tls-unique"}),
    ] {
        let mut c = Client::connect(&router);
        assert_eq!(c.try_send(&hello("joe", &["scram"], extra.clone())), Status::Closed);
        let abort = c.recv().expect("ABORT");
        assert_eq!(abort[2], "wamp.error.authentication_failed", "{extra}: {abort}");
    }
}

#[test]
fn cryptosign_accepts_the_authorized_key_only() {
    let router = secure_router();
    let (_c, welcome) = join_ann(&router);
    assert_eq!(
        (welcome[2]["authid"].clone(), welcome[2]["authrole"].clone()),
        (json!("ann"), json!("admin"))
    );

    let (_d, abort) = join_cryptosign(&router, "ann", &SigningKey::from_bytes(&[9; 32]));
    assert_eq!(abort[2], "wamp.error.authentication_failed");
}

#[test]
fn cryptosign_binds_the_signature_to_the_tls_channel_when_asked() {
    let router = secure_router();
    let signing = SigningKey::from_bytes(&KEY);
    let pubkey = hex::encode(signing.verifying_key().to_bytes());
    let tls13 = ChannelBindings { tls_exporter: Some([0x3c; 32]), tls_unique: None };
    let finished = [0x5a; 12];
    let tls12 = ChannelBindings { tls_exporter: None, tls_unique: Some(finished) };
    let unique_id = junction_auth::cryptosign::tls_unique_channel_id(&finished);
    let bound = |binding: &str| json!({"pubkey": pubkey, "channel_binding": binding});
    // Signs the challenge XOR `channel_id` the way the spec says.
    let answer = |challenge: &Json, channel_id: [u8; 32]| {
        let bytes = hex::decode(challenge[2]["challenge"].as_str().unwrap()).unwrap();
        let message: Vec<u8> = bytes.iter().zip(channel_id).map(|(b, c)| b ^ c).collect();
        json!([5, hex::encode(signing.sign(&message).to_bytes()), {}]).to_string()
    };

    for (binding, bindings, channel_id) in
        [("tls-exporter", tls13, [0x3c; 32]), ("tls-unique", tls12, unique_id)]
    {
        let mut c = Client::connect_over_tls(&router, bindings);
        c.send(&hello("ann", &["cryptosign"], bound(binding)));
        let challenge = c.recv().expect("CHALLENGE");
        assert_eq!(challenge[2]["channel_binding"], binding);
        c.send(&answer(&challenge, channel_id));
        assert_eq!(c.recv().expect("WELCOME")[0], 2, "{binding}");

        // A signature bound to another connection (a relayed one) fails.
        let mut d = Client::connect_over_tls(&router, bindings);
        d.send(&hello("ann", &["cryptosign"], bound(binding)));
        let challenge = d.recv().expect("CHALLENGE");
        d.send(&answer(&challenge, [0x3d; 32]));
        assert_eq!(d.recv().expect("ABORT")[2], "wamp.error.authentication_failed");
    }

    // A binding the connection does not have is refused at HELLO with a message that says
    // what to do, for known and unknown users alike.
    let plain = ChannelBindings::default();
    for (authid, bindings, binding, what) in [
        ("ann", plain, "tls-exporter", "needs a TLS 1.3 connection"),
        ("nobody", plain, "tls-exporter", "needs a TLS 1.3 connection"),
        ("ann", tls12, "tls-exporter", "use tls-unique over TLS 1.2"),
        ("ann", plain, "tls-unique", "needs a TLS 1.2 connection"),
        ("ann", tls13, "tls-unique", "use tls-exporter over TLS 1.3"),
        ("ann", tls13, "x", "unknown channel binding"),
    ] {
        let mut e = Client::connect_over_tls(&router, bindings);
        assert_eq!(e.try_send(&hello(authid, &["cryptosign"], bound(binding))), Status::Closed);
        let abort = e.recv().expect("ABORT");
        assert_eq!(abort[2], "wamp.error.authentication_failed");
        assert!(abort[1]["message"].as_str().unwrap().contains(what), "{abort}");
    }
}

#[test]
fn no_accepted_method_names_what_the_realm_accepts() {
    let router = secure_router();
    let mut c = Client::connect(&router);
    assert_eq!(c.try_send(&hello("joe", &["anonymous"], json!({}))), Status::Closed);
    let abort = c.recv().expect("ABORT");
    assert_eq!(abort[2], "wamp.error.no_matching_auth_method");
    assert!(abort[1]["message"].as_str().unwrap().contains("[ticket, wampcra, cryptosign, scram]"));
}

#[test]
fn grants_allow_and_deny_naming_permission_and_uri() {
    let router = secure_router();
    let (mut joe, welcome) = join_ticket(&router, "joe", "secret");
    assert_eq!(welcome[0], 2);
    joe.send(r#"[64, 1, {}, "com.app.add"]"#);
    let refused = joe.recv().expect("ERROR");
    assert_eq!(refused[4], "wamp.error.not_authorized");
    assert_eq!(
        refused[5][0],
        "permission wamp.register on \"com.app.add\" is not granted to this session"
    );
    joe.send(r#"[32, 2, {}, "com.app.news"]"#);
    assert_eq!(joe.recv().expect("SUBSCRIBED")[0], 33);
    joe.send(r#"[32, 3, {}, "org.other"]"#);
    assert_eq!(joe.recv().expect("ERROR")[4], "wamp.error.not_authorized");
    joe.send(r#"[16, 4, {"acknowledge": true}, "com.app.news"]"#);
    assert_eq!(
        joe.recv().expect("ERROR")[5][0],
        "permission wamp.publish on \"com.app.news\" is not granted to this session"
    );
    joe.send(r#"[48, 5, {}, "wamp.session.count"]"#);
    assert_eq!(
        joe.recv().expect("ERROR")[4],
        "wamp.error.not_authorized",
        "meta procedures are checked too"
    );
}

#[test]
fn nested_groups_inherit_grants_and_grant_changes_apply_to_live_sessions() {
    let router = secure_router();
    let (mut ann, _) = join_ann(&router);
    // "admin" is in "user": ann may register (admin) and call (user).
    ann.send(r#"[64, 1, {}, "com.app.add"]"#);
    assert_eq!(ann.recv().unwrap()[0], 65);
    ann.send(r#"[32, 2, {}, "com.app.t"]"#);
    assert_eq!(ann.recv().unwrap()[0], 33);
    // Revoke everything: the next request of the live session is refused.
    let realm = router.realm(&"secure".into()).unwrap();
    let mut security = (*realm.security()).clone();
    security.grants.clear();
    realm.set_security(security);
    ann.send(r#"[32, 3, {}, "com.app.u"]"#);
    assert_eq!(ann.recv().unwrap()[4], "wamp.error.not_authorized");
}

/// Joins ann (cryptosign) on the secure realm; returns her client and the WELCOME.
fn join_ann(router: &Arc<Router>) -> (Client, Json) {
    let (ann, welcome) = join_cryptosign(router, "ann", &SigningKey::from_bytes(&KEY));
    assert_eq!(welcome[0], 2, "{welcome}");
    (ann, welcome)
}

/// Authenticates `authid` with cryptosign and `key`; returns the client and the reply to
/// AUTHENTICATE (WELCOME or ABORT).
fn join_cryptosign(router: &Arc<Router>, authid: &str, key: &SigningKey) -> (Client, Json) {
    let mut c = Client::connect(router);
    c.send(&hello(
        authid,
        &["cryptosign"],
        json!({"pubkey": hex::encode(key.verifying_key().to_bytes())}),
    ));
    let challenge = c.recv().expect("CHALLENGE");
    let bytes = hex::decode(challenge[2]["challenge"].as_str().unwrap()).unwrap();
    c.send(&json!([5, hex::encode(key.sign(&bytes).to_bytes()), {}]).to_string());
    let reply = c.recv().expect("WELCOME or ABORT");
    (c, reply)
}

#[test]
fn disclosure_grants_reveal_the_holders_calls_and_publications_on_their_uris_only() {
    let router = secure_router();
    let realm = router.realm(&"secure".into()).unwrap();
    let mut security = (*realm.security()).clone();
    let grant = |permission, uri: &str, role: &str| Grant {
        permissions: vec![permission],
        uri: uri.into(),
        policy: MatchPolicy::Prefix,
        roles: vec![role.into()],
    };
    security.grants.extend([
        grant(Permission::Publish, "com.app.", "user"),
        // Joe's calls and publications under com.app.open. are disclosed; ann's never.
        grant(Permission::DiscloseCaller, "com.app.open.", "joe"),
        grant(Permission::DisclosePublisher, "com.app.open.", "joe"),
    ]);
    realm.set_security(security);
    let (mut ann, _) = join_ann(&router);
    let (mut joe, welcome) = join_ticket(&router, "joe", "secret");
    let joe_id = welcome[1].clone();
    ann.send(r#"[64, 1, {"match": "prefix"}, "com.app."]"#);
    assert_eq!(ann.recv().unwrap()[0], 65);
    ann.send(r#"[32, 2, {"match": "prefix"}, "com.app."]"#);
    assert_eq!(ann.recv().unwrap()[0], 33);

    for (uri, disclosed) in [("com.app.open.x", true), ("com.app.closed", false)] {
        joe.send(&json!([48, 10, {}, uri, [1]]).to_string());
        let invocation = ann.recv().expect("INVOCATION");
        assert_eq!(invocation[0], 68);
        let details = &invocation[3];
        if disclosed {
            assert_eq!(details["caller"], joe_id, "{invocation}");
            assert_eq!(
                (&details["caller_authid"], &details["caller_authrole"]),
                (&json!("joe"), &json!("user"))
            );
        } else {
            assert!(details.get("caller").is_none(), "{invocation}");
        }
        ann.send(&json!([70, invocation[1], {}, [2]]).to_string());
        assert_eq!(joe.recv().expect("RESULT")[0], 50);

        joe.send(&json!([16, 11, {}, uri, [1]]).to_string());
        let event = ann.recv().expect("EVENT");
        assert_eq!(event[0], 36);
        if disclosed {
            assert_eq!(event[3]["publisher"], joe_id, "{event}");
            assert_eq!(event[3]["publisher_authid"], "joe");
        } else {
            assert!(event[3].get("publisher").is_none(), "{event}");
        }
    }

    // Revoking the grant hides joe's next call at once.
    let mut security = (*realm.security()).clone();
    security.grants.retain(|g| !g.permissions.contains(&Permission::DiscloseCaller));
    realm.set_security(security);
    joe.send(r#"[48, 12, {}, "com.app.open.y", [1]]"#);
    let invocation = ann.recv().expect("INVOCATION");
    assert!(invocation[3].get("caller").is_none(), "revoked at once: {invocation}");
}

#[test]
fn cancel_needs_the_cancel_permission_on_the_procedure() {
    let router = secure_router();
    let signing = SigningKey::from_bytes(&KEY);
    let mut ann = Client::connect(&router);
    let pubkey = hex::encode(signing.verifying_key().to_bytes());
    ann.send(&json!([1, "secure", {"roles": {"callee": {"features": {"call_canceling": true}}}, "authid": "ann", "authmethods": ["cryptosign"], "authextra": {"pubkey": pubkey}}]).to_string());
    let challenge = ann.recv().unwrap();
    let bytes = hex::decode(challenge[2]["challenge"].as_str().unwrap()).unwrap();
    ann.send(&json!([5, hex::encode(signing.sign(&bytes).to_bytes()), {}]).to_string());
    assert_eq!(ann.recv().expect("WELCOME")[0], 2);
    ann.send(r#"[64, 1, {}, "com.app.slow"]"#);
    assert_eq!(ann.recv().unwrap()[0], 65);
    let (mut joe, _) = join_ticket(&router, "joe", "secret");

    // Without wamp.cancel: the call ends for joe with the refusal, ann is not interrupted and
    // her late result goes nowhere.
    joe.send(r#"[48, 7, {}, "com.app.slow"]"#);
    let invocation = ann.recv().expect("INVOCATION");
    joe.send(r#"[49, 7, {"mode": "kill"}]"#);
    assert_eq!(
        joe.recv().expect("ERROR"),
        json!([
            8,
            48,
            7,
            {},
            "wamp.error.not_authorized",
            ["permission wamp.cancel on \"com.app.slow\" is not granted to this session"]
        ])
    );
    ann.assert_silent();
    ann.send(&json!([70, invocation[1], {}, ["late"]]).to_string());
    joe.assert_silent();

    // Granted: the same CANCEL interrupts the callee.
    let realm = router.realm(&"secure".into()).unwrap();
    let mut security = (*realm.security()).clone();
    security.grants.push(Grant {
        permissions: vec![Permission::Cancel],
        uri: "com.app.slow".into(),
        policy: MatchPolicy::Exact,
        roles: vec!["joe".into()],
    });
    realm.set_security(security);
    joe.send(r#"[48, 8, {}, "com.app.slow"]"#);
    let invocation = ann.recv().expect("INVOCATION");
    joe.send(r#"[49, 8, {"mode": "killnowait"}]"#);
    assert_eq!(joe.recv().expect("ERROR")[4], "wamp.error.canceled");
    let interrupt = ann.recv().expect("INTERRUPT");
    assert_eq!((&interrupt[0], &interrupt[1]), (&json!(69), &invocation[1]));
}

#[test]
fn a_realm_without_security_lets_everyone_do_everything() {
    let router = router_with(vec![RealmConfig::open("realm1")]);
    let (mut c, _) = Client::join(&router, "realm1");
    c.send(r#"[64, 1, {}, "com.any"]"#);
    assert_eq!(c.recv().unwrap()[0], 65);
}

#[test]
fn sources_decide_methods_by_address_and_trust_needs_one() {
    use crate::security::Source;
    let router = secure_router();
    let realm = router.realm(&"secure".into()).unwrap();
    let mut security = (*realm.security()).clone();
    security.authmethods.push("trust".into());
    // In-process peers count as local (127.0.0.1).
    security.sources = vec![
        Source {
            users: vec!["all".into()],
            cidr: "10.0.0.0/8".parse().unwrap(),
            authmethods: vec!["ticket".into()],
        },
        Source {
            users: vec!["joe".into()],
            cidr: "127.0.0.0/8".parse().unwrap(),
            authmethods: vec!["trust".into()],
        },
    ];
    realm.set_security(security);

    let mut c = Client::connect(&router);
    assert_eq!(c.try_send(&hello("joe", &["ticket"], json!({}))), Status::Closed);
    let abort = c.recv().expect("ABORT");
    assert_eq!(abort[2], "wamp.error.no_matching_auth_method");
    assert!(
        abort[1]["message"]
            .as_str()
            .unwrap()
            .contains("not allowed from address 127.0.0.1: [ticket]"),
        "{abort}"
    );

    let mut t = Client::connect(&router);
    assert_eq!(t.try_send(&hello("joe", &["trust"], json!({}))), Status::Open);
    let welcome = t.recv().expect("WELCOME");
    assert_eq!(
        (welcome[2]["authid"].clone(), welcome[2]["authmethod"].clone()),
        (json!("joe"), json!("trust"))
    );

    let mut u = Client::connect(&router);
    assert_eq!(
        u.try_send(&hello("ann", &["trust"], json!({}))),
        Status::Closed,
        "no trust source for ann"
    );
    assert_eq!(u.recv().expect("ABORT")[2], "wamp.error.no_matching_auth_method");
}
