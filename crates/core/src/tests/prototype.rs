//! Prototype realms (Bondy's prototypical inheritance) and `allow_connections`, through the
//! admin API, in-process.

use serde_json::{Value as Json, json};

use super::admin::{call, login, router};
use super::harness::Client;

/// Creates, as root, prototype `com.proto` (security on, ticket, group `staff` with
/// `wamp.call` under `com.app.`) and realm `com.child` inheriting from it, with user `joe`
/// in the prototype's group `staff`. Returns root's session.
fn family(router: &std::sync::Arc<crate::Router>) -> Client {
    let (mut root, _) = login(router, "junction.admin", "root", "rootpw");
    let proto = json!([{"uri": "com.proto", "is_prototype": true, "authmethods": ["ticket"]}]);
    let created = call(&mut root, "bondy.realm.create", proto);
    assert_eq!(created[0], 50, "{created}");
    assert_eq!(created[3][0]["is_prototype"], true);
    assert_eq!(call(&mut root, "bondy.group.add", json!(["com.proto", {"name": "staff"}]))[0], 50);
    let grant = json!(["com.proto", {"permissions": ["wamp.call"], "uri": "com.app.", "match": "prefix", "roles": ["staff"]}]);
    assert_eq!(call(&mut root, "bondy.grant.create", grant)[0], 50);
    let child = call(
        &mut root,
        "bondy.realm.create",
        json!([{"uri": "com.child", "prototype_uri": "com.proto"}]),
    );
    assert_eq!(child[0], 50, "{child}");
    let user = json!(["com.child", {"username": "joe", "password": "joepw", "groups": ["staff"]}]);
    let added = call(&mut root, "bondy.user.add", user);
    assert_eq!(added[0], 50, "a user may be in a group of the prototype: {added}");
    root
}

/// Joins `realm` as `authid` with ticket, as a caller and a callee that understands
/// registration revocation. Returns the client and WELCOME or ABORT.
fn join(
    router: &std::sync::Arc<crate::Router>,
    realm: &str,
    authid: &str,
    pw: &str,
) -> (Client, Json) {
    let mut c = Client::connect(router);
    let roles = json!({"caller": {}, "callee": {"features": {"registration_revocation": true}}});
    let _ = c.try_send(
        &json!([1, realm, {"roles": roles, "authid": authid, "authmethods": ["ticket"]}])
            .to_string(),
    );
    let first = c.recv().expect("CHALLENGE or ABORT");
    if first[0] != 4 {
        return (c, first);
    }
    c.send(&json!([5, pw, {}]).to_string());
    let reply = c.recv().expect("WELCOME or ABORT");
    (c, reply)
}

fn call_status(c: &mut Client, request: u64, procedure: &str) -> Json {
    c.send(&json!([48, request, {}, procedure, []]).to_string());
    c.recv().expect("a reply")
}

#[test]
fn a_realm_inherits_authmethods_security_groups_and_grants_from_its_prototype() {
    let router = router();
    let mut root = family(&router);
    let got = call(&mut root, "bondy.realm.get", json!(["com.child"]));
    assert_eq!(got[3][0]["prototype_uri"], "com.proto");
    assert_eq!(got[3][0]["authmethods"], json!(["ticket"]));
    assert_eq!(got[3][0]["security_enabled"], true);
    // Ticket is accepted only because the prototype accepts it.
    let (mut joe, welcome) = join(&router, "com.child", "joe", "joepw");
    assert_eq!(welcome[0], 2, "{welcome}");
    assert_eq!(welcome[2]["authrole"], "staff");
    // The prototype's grant lets staff call under com.app. (no callee: not a refusal) and
    // nothing else.
    assert_eq!(call_status(&mut joe, 1, "com.app.add")[4], "wamp.error.no_such_procedure");
    assert_eq!(call_status(&mut joe, 2, "com.other.add")[4], "wamp.error.not_authorized");
}

#[test]
fn changes_to_the_prototype_apply_at_once_to_live_sessions_of_inheriting_realms() {
    let router = router();
    let mut root = family(&router);
    let (mut joe, _) = join(&router, "com.child", "joe", "joepw");
    joe.send(r#"[64, 1, {}, "com.app.reg"]"#);
    assert_eq!(joe.recv().unwrap()[4], "wamp.error.not_authorized", "no register grant yet");
    let grant = json!(["com.proto", {"permissions": ["wamp.register"], "uri": "com.app.", "match": "prefix", "roles": ["staff"]}]);
    assert_eq!(call(&mut root, "bondy.grant.create", grant.clone())[0], 50);
    joe.send(r#"[64, 2, {}, "com.app.reg"]"#);
    assert_eq!(joe.recv().unwrap()[0], 65, "the prototype's new grant applies to joe at once");
    // Revoking it in the prototype withdraws the live registration.
    assert_eq!(call(&mut root, "bondy.grant.revoke", grant)[0], 50);
    let revoked = joe.recv().expect("UNREGISTERED");
    assert_eq!(revoked[0], 67, "{revoked}");
    assert_eq!(revoked[2]["reason"], "wamp.error.not_authorized");
    // Turning the prototype's security off opens the inheriting realm.
    let off = call(&mut root, "bondy.realm.security.disable", json!(["com.proto"]));
    assert_eq!(off[0], 50, "{off}");
    assert_eq!(call_status(&mut joe, 3, "com.other.add")[4], "wamp.error.no_such_procedure");
}

#[test]
fn realm_groups_override_prototype_groups_and_grants_are_merged() {
    let router = router();
    let mut root = family(&router);
    // The realm's own "staff" belongs to "ops"; the prototype's "staff" belongs to nothing.
    assert_eq!(call(&mut root, "bondy.group.add", json!(["com.child", {"name": "ops"}]))[0], 50);
    let staff = json!(["com.child", {"name": "staff", "groups": ["ops"]}]);
    assert_eq!(call(&mut root, "bondy.group.add", staff)[0], 50);
    let grant = json!(["com.child", {"permissions": ["wamp.call"], "uri": "com.ops.", "match": "prefix", "roles": ["ops"]}]);
    assert_eq!(call(&mut root, "bondy.grant.create", grant)[0], 50);
    let (mut joe, _) = join(&router, "com.child", "joe", "joepw");
    // The realm's grant through the realm's group definition, and the prototype's grant.
    assert_eq!(call_status(&mut joe, 1, "com.ops.x")[4], "wamp.error.no_such_procedure");
    assert_eq!(call_status(&mut joe, 2, "com.app.x")[4], "wamp.error.no_such_procedure");
    // Another realm of the same prototype does not see the first one's groups or grants.
    let other = json!([{"uri": "com.sibling", "prototype_uri": "com.proto"}]);
    assert_eq!(call(&mut root, "bondy.realm.create", other)[0], 50);
    let ann = json!(["com.sibling", {"username": "ann", "password": "annpw", "groups": ["staff"]}]);
    assert_eq!(call(&mut root, "bondy.user.add", ann)[0], 50);
    let (mut ann, _) = join(&router, "com.sibling", "ann", "annpw");
    assert_eq!(call_status(&mut ann, 1, "com.ops.x")[4], "wamp.error.not_authorized");
    assert_eq!(call_status(&mut ann, 2, "com.app.x")[4], "wamp.error.no_such_procedure");
}

#[test]
fn a_prototype_refuses_sessions_and_users() {
    let router = router();
    let mut root = family(&router);
    let mut c = Client::connect(&router);
    c.send(r#"[1, "com.proto", {"roles": {"caller": {}}}]"#);
    let abort = c.recv().expect("ABORT");
    assert_eq!(abort[0], 3);
    assert_eq!(abort[2], "wamp.error.no_such_realm");
    assert!(abort[1]["message"].as_str().unwrap().contains("is a prototype"), "{abort}");
    let user = json!(["com.proto", {"username": "eve", "password": "x"}]);
    let refused = call(&mut root, "bondy.user.add", user);
    assert_eq!(refused[4], "bondy.error.invalid_data", "{refused}");
}

#[test]
fn prototype_rules_are_checked_with_bondys_invalid_data() {
    let router = router();
    let mut root = family(&router);
    let cases = [
        json!({"uri": "com.a", "prototype_uri": "com.missing"}),
        json!({"uri": "com.b", "prototype_uri": "com.child"}),
        json!({"uri": "com.c", "prototype_uri": "com.c"}),
        json!({"uri": "com.d", "is_prototype": true, "prototype_uri": "com.proto"}),
    ];
    for case in cases {
        let reply = call(&mut root, "bondy.realm.create", json!([case]));
        assert_eq!(reply[4], "bondy.error.invalid_data", "{case}: {reply}");
        assert!(router.realm(&case["uri"].as_str().unwrap().into()).is_none());
    }
    let change = json!(["com.child", {"prototype_uri": "com.other"}]);
    assert_eq!(call(&mut root, "bondy.realm.update", change)[4], "bondy.error.invalid_data");
    let change = json!(["com.proto", {"is_prototype": false}]);
    assert_eq!(call(&mut root, "bondy.realm.update", change)[4], "bondy.error.invalid_data");
}

#[test]
fn a_prototype_in_use_cannot_be_deleted() {
    let router = router();
    let mut root = family(&router);
    let refused = call(&mut root, "bondy.realm.delete", json!(["com.proto"]));
    assert_eq!(refused[4], "bondy.error.invalid_data", "{refused}");
    assert!(refused[5][0].as_str().unwrap().contains("com.child"), "{refused}");
    // com.child has a user: Bondy's force option.
    let force = json!([48, 9, {}, "bondy.realm.delete", ["com.child"], {"force": true}]);
    root.send(&force.to_string());
    let deleted = root.recv().expect("RESULT");
    assert_eq!(deleted[0], 50, "{deleted}");
    assert_eq!(call(&mut root, "bondy.realm.delete", json!(["com.proto"]))[0], 50);
}

#[test]
fn allow_connections_false_refuses_new_sessions_and_keeps_joined_ones() {
    let router = router();
    let mut root = family(&router);
    let (mut joe, _) = join(&router, "com.child", "joe", "joepw");
    let closed =
        call(&mut root, "bondy.realm.update", json!(["com.child", {"allow_connections": false}]));
    assert_eq!(closed[3][0]["allow_connections"], false, "{closed}");
    let (_, abort) = join(&router, "com.child", "joe", "joepw");
    assert_eq!(abort[0], 3, "{abort}");
    assert_eq!(abort[2], "wamp.error.not_authorized");
    assert!(abort[1]["message"].as_str().unwrap().contains("allow_connections"), "{abort}");
    assert_eq!(call_status(&mut joe, 1, "com.app.x")[4], "wamp.error.no_such_procedure");
    let open =
        call(&mut root, "bondy.realm.update", json!(["com.child", {"allow_connections": true}]));
    assert_eq!(open[3][0]["allow_connections"], true);
    assert_eq!(join(&router, "com.child", "joe", "joepw").1[0], 2);
}

#[test]
fn allow_connections_is_inherited_unless_the_realm_sets_it() {
    let router = router();
    let mut root = family(&router);
    let set = json!(["com.proto", {"allow_connections": false}]);
    assert_eq!(call(&mut root, "bondy.realm.update", set)[0], 50);
    let got = call(&mut root, "bondy.realm.get", json!(["com.child"]));
    assert_eq!(got[3][0]["allow_connections"], false);
    assert_eq!(join(&router, "com.child", "joe", "joepw").1[2], "wamp.error.not_authorized");
    let own = json!(["com.child", {"allow_connections": true}]);
    assert_eq!(call(&mut root, "bondy.realm.update", own)[0], 50);
    assert_eq!(join(&router, "com.child", "joe", "joepw").1[0], 2);
}
