//! Router-issued tickets (`bondy.ticket.*`) and joining with them, in-process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_auth::password::StoredPassword;
use serde_json::{Value as Json, json};

use super::harness::{Client, msg, router_with};
use crate::options::MatchPolicy;
use crate::security::{Grant, Permission, Security, User};
use crate::{Now, RealmConfig, Router, Status};

/// A secure realm with users joe ("secret"), ann ("annpw") and the client application webapp
/// ("apppw"), allowed to call the ticket procedures; joe and webapp may issue local tickets,
/// joe client tickets too (joe may also change passwords).
fn realm(name: &str) -> RealmConfig {
    let user = |authid: &str, password: &str| User {
        password: Some(StoredPassword::new(password)),
        ..User::named(authid)
    };
    let security = Security {
        enabled: true,
        authmethods: vec!["ticket".into()],
        users: [
            ("joe".to_string(), user("joe", "secret")),
            ("ann".to_string(), user("ann", "annpw")),
            ("webapp".to_string(), user("webapp", "apppw")),
        ]
        .into(),
        groups: Default::default(),
        grants: vec![
            Grant {
                permissions: vec![Permission::Call],
                uri: "bondy.ticket.".into(),
                policy: MatchPolicy::Prefix,
                roles: vec!["joe".into(), "ann".into(), "webapp".into()],
            },
            Grant {
                permissions: vec![Permission::Issue],
                uri: "bondy.ticket.scope.local".into(),
                policy: MatchPolicy::Exact,
                roles: vec!["joe".into(), "webapp".into()],
            },
            Grant {
                permissions: vec![Permission::Issue],
                uri: "bondy.ticket.scope.client_local".into(),
                policy: MatchPolicy::Exact,
                roles: vec!["joe".into()],
            },
            Grant {
                permissions: vec![Permission::Call],
                uri: "bondy.user.change_password".into(),
                policy: MatchPolicy::Exact,
                roles: vec!["joe".into()],
            },
        ],
        sources: vec![],
    };
    RealmConfig { allow_anonymous: false, security, ..RealmConfig::open(name) }
}

fn router() -> Arc<Router> {
    router_with(vec![realm("com.a"), realm("com.b")])
}

/// Joins `realm` as `authid` with `ticket`, answering at `now`; returns WELCOME or ABORT.
fn join_at(
    router: &Arc<Router>,
    realm: &str,
    authid: &str,
    ticket: &str,
    now: Now,
) -> (Client, Json) {
    let mut c = Client::connect(router);
    let hello =
        json!([1, realm, {"roles": {"caller": {}}, "authid": authid, "authmethods": ["ticket"]}]);
    assert_eq!(c.try_send(&hello.to_string()), Status::Open);
    assert_eq!(c.recv().expect("CHALLENGE")[0], 4);
    let _ = c.session.handle(now, msg(&json!([5, ticket, {}]).to_string()));
    let reply = c.recv().expect("WELCOME or ABORT");
    (c, reply)
}

fn join(router: &Arc<Router>, realm: &str, authid: &str, ticket: &str) -> (Client, Json) {
    join_at(router, realm, authid, ticket, Now::read())
}

fn call(c: &mut Client, procedure: &str, args: Json, kwargs: Json) -> Json {
    c.send(&json!([48, 1, {}, procedure, args, kwargs]).to_string());
    c.recv().expect("RESULT or ERROR")
}

/// Joe logs in with his password and is issued a ticket.
fn issue(router: &Arc<Router>, realm: &str, kwargs: Json) -> String {
    let (mut joe, welcome) = join(router, realm, "joe", "secret");
    assert_eq!(welcome[0], 2, "{welcome}");
    let result = call(&mut joe, "bondy.ticket.issue", json!([]), kwargs);
    assert_eq!(result[0], 50, "{result}");
    result[3][0].as_str().expect("the ticket").to_owned()
}

/// `authid` logs in with `password` and asks for a ticket with `kwargs`: RESULT or ERROR.
fn ask(router: &Arc<Router>, authid: &str, password: &str, kwargs: Json) -> Json {
    let (mut c, welcome) = join(router, "com.a", authid, password);
    assert_eq!(welcome[0], 2, "{welcome}");
    call(&mut c, "bondy.ticket.issue", json!([]), kwargs)
}

fn assert_refused(reply: &Json) {
    assert_eq!(reply[0], 3, "{reply}");
    assert_eq!(reply[2], "wamp.error.authentication_failed");
}

#[test]
fn an_issued_ticket_logs_in_until_it_is_revoked() {
    let router = router();
    let ticket = issue(&router, "com.a", json!({}));
    let (mut session, welcome) = join(&router, "com.a", "joe", &ticket);
    assert_eq!(welcome[0], 2, "{welcome}");
    assert_eq!(welcome[2]["authmethod"], "ticket");
    // A ticket session may not issue tickets (Bondy's rule).
    let refused = call(&mut session, "bondy.ticket.issue", json!([]), json!({}));
    assert_eq!(refused[4], "wamp.error.not_authorized", "{refused}");
    let claims = call(&mut session, "bondy.ticket.verify", json!([ticket]), json!({}));
    assert_eq!(claims[0], 50, "{claims}");
    assert_eq!(claims[3][0]["authid"], "joe");
    assert_eq!(claims[3][0]["authrealm"], "com.a");
    let id = claims[3][0]["id"].as_str().unwrap().to_owned();
    // Another user may not revoke joe's ticket; joe may.
    let (mut ann, _) = join(&router, "com.a", "ann", "annpw");
    let denied = call(&mut ann, "bondy.ticket.revoke", json!([id]), json!({}));
    assert_eq!(denied[4], "wamp.error.not_authorized", "{denied}");
    let revoked = call(&mut session, "bondy.ticket.revoke", json!([id]), json!({}));
    assert_eq!(revoked[0], 50, "{revoked}");
    let (_c, refused) = join(&router, "com.a", "joe", &ticket);
    assert_refused(&refused);
    let (_d, wrong_password) = join(&router, "com.a", "joe", "nope");
    assert_eq!(refused[1], wrong_password[1], "the same message: no hint which check failed");
    let verify = call(&mut ann, "bondy.ticket.verify", json!([ticket]), json!({}));
    assert_eq!(verify[4], "wamp.error.authentication_failed", "{verify}");
}

#[test]
fn revoke_all_revokes_every_ticket_of_the_user() {
    let router = router();
    let first = issue(&router, "com.a", json!({}));
    let second = issue(&router, "com.a", json!({}));
    let (mut joe, _) = join(&router, "com.a", "joe", "secret");
    let done = call(&mut joe, "bondy.ticket.revoke_all", json!(["com.a", "joe"]), json!({}));
    assert_eq!(done[0], 50, "{done}");
    for ticket in [first, second] {
        assert_refused(&join(&router, "com.a", "joe", &ticket).1);
    }
}

#[test]
fn an_expired_ticket_is_refused() {
    let router = router();
    let ticket = issue(&router, "com.a", json!({"expiry_time_secs": 60}));
    let soon = Now {
        wall: std::time::SystemTime::now() + Duration::from_secs(30),
        monotonic: Instant::now(),
    };
    assert_eq!(join_at(&router, "com.a", "joe", &ticket, soon).1[0], 2);
    let later = Now {
        wall: std::time::SystemTime::now() + Duration::from_secs(61),
        monotonic: Instant::now(),
    };
    assert_refused(&join_at(&router, "com.a", "joe", &ticket, later).1);
}

#[test]
fn the_expiry_is_capped_at_the_router_maximum() {
    let router = router();
    let ticket = issue(&router, "com.a", json!({"expiry_time_secs": 10_u64.pow(10)}));
    let (mut joe, _) = join(&router, "com.a", "joe", "secret");
    let claims = call(&mut joe, "bondy.ticket.verify", json!([ticket]), json!({}));
    let lifetime =
        claims[3][0]["expires_at"].as_u64().unwrap() - claims[3][0]["issued_at"].as_u64().unwrap();
    assert_eq!(lifetime, crate::tickets::MAX_EXPIRY.as_secs());
}

#[test]
fn a_ticket_is_refused_on_another_realm_and_for_another_user() {
    let router = router();
    let ticket = issue(&router, "com.a", json!({}));
    assert_refused(&join(&router, "com.b", "joe", &ticket).1);
    assert_refused(&join(&router, "com.a", "ann", &ticket).1);
    // A tampered ticket is refused.
    let mut tampered = ticket.clone();
    tampered.insert(3, 'x');
    assert_refused(&join(&router, "com.a", "joe", &tampered).1);
    assert_eq!(join(&router, "com.a", "joe", &ticket).1[0], 2);
}

#[test]
fn changing_the_password_revokes_the_users_tickets() {
    let router = router();
    let ticket = issue(&router, "com.a", json!({}));
    let app_ticket = ask(&router, "webapp", "apppw", json!({}))[3][0].as_str().unwrap().to_owned();
    let (mut joe, _) = join(&router, "com.a", "joe", "secret");
    let changed = call(&mut joe, "bondy.user.change_password", json!(["joe", "new"]), json!({}));
    assert_eq!(changed[0], 50, "{changed}");
    assert_refused(&join(&router, "com.a", "joe", &ticket).1);
    assert_eq!(join(&router, "com.a", "webapp", &app_ticket).1[0], 2, "only joe's tickets");
}

#[test]
fn issuing_needs_bondy_issue_on_the_scope() {
    let router = router();
    let denied = ask(&router, "ann", "annpw", json!({}));
    assert_eq!(denied[4], "wamp.error.not_authorized", "{denied}");
    assert_eq!(
        denied[5][0],
        "permission bondy.issue on \"bondy.ticket.scope.local\" is not granted to this session"
    );
    // webapp may issue local tickets but not client ones.
    let app_ticket = ask(&router, "webapp", "apppw", json!({}))[3][0].as_str().unwrap().to_owned();
    let (mut ann_app, _) = join(&router, "com.a", "webapp", "apppw");
    let client = json!({"client_ticket": app_ticket});
    let denied = call(&mut ann_app, "bondy.ticket.issue", json!([]), client);
    assert!(denied[5][0].as_str().unwrap().contains("bondy.ticket.scope.client_local"), "{denied}");
}

#[test]
fn a_client_ticket_is_issued_by_the_client_and_expires_with_it() {
    let router = router();
    let app = ask(&router, "webapp", "apppw", json!({"expiry_time_secs": 60}));
    let app_ticket = app[3][0].as_str().unwrap().to_owned();
    let issued = ask(
        &router,
        "joe",
        "secret",
        json!({"client_ticket": app_ticket, "client_id": "webapp", "client_instance_id": "tab-7",
               "expiry_time_secs": 3600}),
    );
    let ticket = issued[3][0].as_str().expect("a ticket").to_owned();
    let (mut joe, welcome) = join(&router, "com.a", "joe", &ticket);
    assert_eq!((&welcome[0], &welcome[2]["authid"]), (&json!(2), &json!("joe")));
    let claims = call(&mut joe, "bondy.ticket.verify", json!([ticket]), json!({}))[3][0].clone();
    assert_eq!((&claims["issued_by"], &claims["authid"]), (&json!("webapp"), &json!("joe")));
    assert_eq!(
        claims["scope"],
        json!({"realm": "com.a", "client_id": "webapp", "client_instance_id": "tab-7"})
    );
    let app_claims =
        call(&mut joe, "bondy.ticket.verify", json!([app_ticket]), json!({}))[3][0].clone();
    assert_eq!(claims["expires_at"], app_claims["expires_at"], "capped at the client's expiry");

    // An invalid client ticket, or a client_id that is not its user, is refused.
    let forged = ask(&router, "joe", "secret", json!({"client_ticket": "x.y"}));
    assert_eq!(forged[4], "wamp.error.authentication_failed", "{forged}");
    let other =
        ask(&router, "joe", "secret", json!({"client_ticket": app_ticket, "client_id": "ann"}));
    assert_eq!(other[4], "wamp.error.invalid_argument", "{other}");
    let alone = ask(&router, "joe", "secret", json!({"client_id": "webapp"}));
    assert_eq!(alone[4], "wamp.error.invalid_argument", "{alone}");
}
