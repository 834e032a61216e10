//! The `bondy.*` admin API, in-process.

use std::sync::Arc;

use junction_auth::password::StoredPassword;
use serde_json::{Value as Json, json};

use super::harness::Client;
use crate::options::MatchPolicy;
use crate::security::{Grant, Permission, Security, User};
use crate::{RealmConfig, Router, RouterConfig, Status};

/// A router with an admin realm (user "root", password "rootpw", may call everything) and an
/// open realm1.
pub(super) fn router() -> Arc<Router> {
    let root = User { password: Some(StoredPassword::new("rootpw")), ..User::named("root") };
    let all = Grant {
        permissions: Permission::ALL.to_vec(),
        uri: "".into(),
        policy: MatchPolicy::Prefix,
        roles: vec!["root".into()],
    };
    let security = Security {
        enabled: true,
        authmethods: vec!["ticket".into()],
        users: [("root".to_string(), root)].into(),
        groups: Default::default(),
        grants: vec![all],
        sources: vec![],
    };
    let admin =
        RealmConfig { allow_anonymous: false, security, ..RealmConfig::open("junction.admin") };
    Router::new(RouterConfig {
        realms: vec![admin, RealmConfig::open("realm1")],
        agent: "test".into(),
        limits: Default::default(),
        admin_realm: Some("junction.admin".into()),
    })
}

pub(super) fn login(
    router: &Arc<Router>,
    realm: &str,
    authid: &str,
    password: &str,
) -> (Client, Json) {
    let mut c = Client::connect(router);
    let hello = json!([1, realm, {"roles": {"caller": {}, "subscriber": {}}, "authid": authid, "authmethods": ["ticket"]}]);
    assert_eq!(c.try_send(&hello.to_string()), Status::Open);
    let challenge = c.recv().expect("CHALLENGE or ABORT");
    if challenge[0] != 4 {
        return (c, challenge);
    }
    c.send(&json!([5, password, {}]).to_string());
    let reply = c.recv().expect("WELCOME or ABORT");
    (c, reply)
}

pub(super) fn call(c: &mut Client, procedure: &str, args: Json) -> Json {
    c.send(&json!([48, 1, {}, procedure, args]).to_string());
    loop {
        let reply = c.recv().expect("RESULT or ERROR");
        if reply[0] != 36 {
            return reply;
        }
    }
}

#[test]
fn a_realm_and_user_created_by_the_admin_api_can_log_in_at_once() {
    let router = router();
    let (mut root, welcome) = login(&router, "junction.admin", "root", "rootpw");
    assert_eq!(welcome[0], 2, "{welcome}");
    let created = call(
        &mut root,
        "bondy.realm.create",
        json!([{"uri": "com.example", "authmethods": ["ticket"]}]),
    );
    assert_eq!(created[0], 50, "{created}");
    assert_eq!(created[3][0]["uri"], "com.example");
    assert_eq!(
        call(&mut root, "bondy.group.add", json!(["com.example", {"name": "staff"}]))[0],
        50
    );
    let user = call(
        &mut root,
        "bondy.user.add",
        json!(["com.example", {"username": "joe", "password": "s3cret", "groups": ["staff"]}]),
    );
    assert_eq!(
        user[3][0],
        json!({"type": "user", "username": "joe", "groups": ["staff"], "enabled": true, "has_password": true, "wampcra_unsalted": false, "has_authorized_keys": false, "authorized_keys": [], "aliases": [], "meta": {}})
    );
    let (_joe, welcome) = login(&router, "com.example", "joe", "s3cret");
    assert_eq!((welcome[0].clone(), welcome[2]["authrole"].clone()), (json!(2), json!("staff")));
    let listed = call(&mut root, "bondy.realm.list", json!([]));
    assert_eq!(listed[3][0].as_array().unwrap().len(), 3);
}

#[test]
fn admin_errors_are_bondys() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    call(&mut root, "bondy.user.add", json!([{"username": "ann", "password": "x"}]));
    assert_eq!(
        call(&mut root, "bondy.user.add", json!([{"username": "ann"}]))[4],
        "bondy.error.already_exists"
    );
    assert_eq!(call(&mut root, "bondy.user.get", json!(["nobody"]))[4], "bondy.error.not_found");
    assert_eq!(
        call(&mut root, "bondy.user.add", json!([{"username": "bob", "groups": ["ghosts"]}]))[4],
        "bondy.error.no_such_groups"
    );
    assert_eq!(
        call(&mut root, "bondy.user.add", json!([{"username": "all"}]))[4],
        "wamp.error.invalid_argument"
    );
    assert_eq!(
        call(&mut root, "bondy.user.get", json!(["com.nowhere", "ann"]))[4],
        "bondy.error.not_found"
    );
    assert_eq!(
        call(&mut root, "bondy.realm.create", json!([{"uri": "realm1"}]))[4],
        "bondy.error.already_exists"
    );
}

#[test]
fn open_realms_refuse_the_admin_api() {
    let router = router();
    let (mut anon, _) = Client::join(&router, "realm1");
    let refused = call(&mut anon, "bondy.user.list", json!([]));
    assert_eq!(refused[4], "wamp.error.not_authorized");
    assert!(refused[5][0].as_str().unwrap().contains("needs security"));
}

#[test]
fn only_the_admin_realm_manages_other_realms() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    call(&mut root, "bondy.realm.create", json!([{"uri": "com.a", "authmethods": ["ticket"]}]));
    call(&mut root, "bondy.realm.create", json!([{"uri": "com.b", "authmethods": ["ticket"]}]));
    call(&mut root, "bondy.user.add", json!(["com.a", {"username": "alice", "password": "pw"}]));
    call(
        &mut root,
        "bondy.grant.create",
        json!(["com.a", {"permissions": ["wamp.call"], "uri": "bondy.", "match": "prefix", "roles": ["alice"]}]),
    );
    let (mut alice, welcome) = login(&router, "com.a", "alice", "pw");
    assert_eq!(welcome[0], 2);
    assert_eq!(call(&mut alice, "bondy.user.list", json!([]))[0], 50, "her own realm");
    let denied = call(&mut alice, "bondy.user.list", json!(["com.b"]));
    assert_eq!(denied[4], "wamp.error.not_authorized");
}

/// Joins `realm` with `scram` (computing the proof as a client does): WELCOME or ABORT.
fn login_scram(router: &Arc<Router>, realm: &str, authid: &str, password: &str) -> Json {
    let mut c = Client::connect(router);
    let hello = json!([1, realm, {"roles": {"caller": {}}, "authid": authid, "authmethods": ["scram"], "authextra": {"nonce": "AAECAwQFBgcICQoLDA0ODw=="}}]);
    c.send(&hello.to_string());
    let challenge = c.recv().expect("CHALLENGE");
    assert_eq!(challenge[1], "scram", "{challenge}");
    let extra = &challenge[2];
    let first = junction_auth::scram::ServerFirst {
        nonce: extra["nonce"].as_str().unwrap(),
        salt: extra["salt"].as_str().unwrap(),
        iterations: extra["iterations"].as_u64().unwrap() as u32,
        memory: extra["memory"].as_u64().unwrap() as u32,
    };
    let (proof, _) =
        junction_auth::scram::client_final(password, authid, "AAECAwQFBgcICQoLDA0ODw==", &first)
            .unwrap();
    c.send(&json!([5, proof, {}]).to_string());
    c.recv().expect("WELCOME or ABORT")
}

#[test]
fn users_added_and_passwords_changed_by_the_admin_api_get_scram_credentials() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    let realm = json!([{"uri": "com.scram", "authmethods": ["scram", "ticket"]}]);
    assert_eq!(call(&mut root, "bondy.realm.create", realm)[0], 50);
    let user = json!(["com.scram", {"username": "joe", "password": "one"}]);
    assert_eq!(call(&mut root, "bondy.user.add", user)[0], 50);
    let welcome = login_scram(&router, "com.scram", "joe", "one");
    assert_eq!((&welcome[0], &welcome[2]["authmethod"]), (&json!(2), &json!("scram")));
    let changed = call(&mut root, "bondy.user.change_password", json!(["com.scram", "joe", "two"]));
    assert_eq!(changed[0], 50, "{changed}");
    assert_eq!(
        login_scram(&router, "com.scram", "joe", "one")[2],
        "wamp.error.authentication_failed"
    );
    assert_eq!(login_scram(&router, "com.scram", "joe", "two")[0], 2);
}

#[test]
fn aliases_log_in_as_their_user_and_meta_is_kept_as_given() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    let realm = json!([{"uri": "com.alias", "authmethods": ["scram", "ticket"]}]);
    assert_eq!(call(&mut root, "bondy.realm.create", realm)[0], 50);
    let joe = json!(["com.alias", {"username": "joe", "password": "pw", "meta": {"team": "ops"}}]);
    assert_eq!(call(&mut root, "bondy.user.add", joe)[0], 50);
    let ann = json!(["com.alias", {"username": "ann", "password": "pw2", "aliases": ["annie"]}]);
    assert_eq!(call(&mut root, "bondy.user.add", ann)[0], 50);

    let added = call(&mut root, "bondy.user.add_alias", json!(["com.alias", "joe", "joseph"]));
    assert_eq!(added[0], 50, "{added}");
    let got = call(&mut root, "bondy.user.get", json!(["com.alias", "joe"]));
    assert_eq!(
        (&got[3][0]["aliases"], &got[3][0]["meta"]),
        (&json!(["joseph"]), &json!({"team": "ops"}))
    );
    // The alias joins as joe, with ticket and with scram (whose proof covers the alias).
    let (_c, welcome) = login(&router, "com.alias", "joseph", "pw");
    assert_eq!((&welcome[0], &welcome[2]["authid"]), (&json!(2), &json!("joe")), "{welcome}");
    let welcome = login_scram(&router, "com.alias", "joseph", "pw");
    assert_eq!((&welcome[0], &welcome[2]["authid"]), (&json!(2), &json!("joe")), "{welcome}");

    // A name is one user's: another user's alias, a username, or a reserved name is refused.
    for (alias, error) in [
        ("annie", "bondy.error.already_exists"),
        ("ann", "bondy.error.already_exists"),
        ("all", "wamp.error.invalid_argument"),
    ] {
        let refused = call(&mut root, "bondy.user.add_alias", json!(["com.alias", "joe", alias]));
        assert_eq!(refused[4], error, "{alias}: {refused}");
    }
    let taken = json!(["com.alias", {"username": "joseph", "password": "x"}]);
    assert_eq!(call(&mut root, "bondy.user.add", taken)[4], "bondy.error.already_exists");
    let nobody = call(&mut root, "bondy.user.add_alias", json!(["com.alias", "nobody", "x"]));
    assert_eq!(nobody[4], "wamp.error.no_such_principal");
    // At most five aliases.
    for alias in ["j2", "j3", "j4", "j5"] {
        assert_eq!(
            call(&mut root, "bondy.user.add_alias", json!(["com.alias", "joe", alias]))[0],
            50
        );
    }
    let sixth = call(&mut root, "bondy.user.add_alias", json!(["com.alias", "joe", "j6"]));
    assert_eq!(sixth[4], "bondy.error.property_range_limit", "{sixth}");

    // Removed, the alias no longer logs in.
    let removed = call(&mut root, "bondy.user.remove_alias", json!(["com.alias", "joe", "joseph"]));
    assert_eq!(removed[0], 50, "{removed}");
    let (_d, refused) = login(&router, "com.alias", "joseph", "pw");
    assert_eq!(refused[2], "wamp.error.authentication_failed", "{refused}");
}

/// Joins `realm` with `wampcra`, answering as Autobahn and xconn do: with the PBKDF2 key when
/// the challenge has a salt, with the password itself otherwise. The CHALLENGE and the reply.
fn login_wampcra(router: &Arc<Router>, realm: &str, authid: &str, password: &str) -> (Json, Json) {
    let mut c = Client::connect(router);
    let hello =
        json!([1, realm, {"roles": {"caller": {}}, "authid": authid, "authmethods": ["wampcra"]}]);
    c.send(&hello.to_string());
    let challenge = c.recv().expect("CHALLENGE");
    assert_eq!(challenge[1], "wampcra", "{challenge}");
    let extra = &challenge[2];
    let key = match extra["salt"].as_str() {
        Some(salt) => {
            let iterations = extra["iterations"].as_u64().unwrap() as u32;
            StoredPassword::with_salt(password, salt, iterations).cra_key()
        }
        None => password.to_owned(),
    };
    let signature = junction_auth::cra::sign(&key, extra["challenge"].as_str().unwrap());
    c.send(&json!([5, signature, {}]).to_string());
    (challenge, c.recv().expect("WELCOME or ABORT"))
}

#[test]
fn wampcra_is_unsalted_only_for_users_added_or_updated_with_the_flag() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    let realm = json!([{"uri": "com.cra", "authmethods": ["wampcra", "ticket"]}]);
    assert_eq!(call(&mut root, "bondy.realm.create", realm)[0], 50);
    let una = json!(["com.cra", {"username": "una", "password": "pw1", "wampcra_unsalted": true}]);
    let added = call(&mut root, "bondy.user.add", una);
    assert_eq!(added[3][0]["wampcra_unsalted"], true, "{added}");
    call(&mut root, "bondy.user.add", json!(["com.cra", {"username": "sal", "password": "pw1"}]));

    let (challenge, welcome) = login_wampcra(&router, "com.cra", "una", "pw1");
    let names: Vec<&String> = challenge[2].as_object().unwrap().keys().collect();
    assert_eq!(names, ["challenge"], "no salt: the client signs with the password itself");
    assert_eq!((&welcome[0], &welcome[2]["authmethod"]), (&json!(2), &json!("wampcra")));
    let (_, wrong) = login_wampcra(&router, "com.cra", "una", "pw2");
    assert_eq!(wrong[2], "wamp.error.authentication_failed");
    // Ticket still works from the salted key.
    assert_eq!(login(&router, "com.cra", "una", "pw1").1[0], 2);

    let (challenge, welcome) = login_wampcra(&router, "com.cra", "sal", "pw1");
    assert!(challenge[2]["salt"].is_string(), "salted by default: {challenge}");
    assert_eq!(welcome[0], 2);

    // A new password keeps the choice; turning the flag off goes back to salted.
    let changed = call(&mut root, "bondy.user.change_password", json!(["com.cra", "una", "pw3"]));
    assert_eq!(changed[0], 50, "{changed}");
    let (challenge, welcome) = login_wampcra(&router, "com.cra", "una", "pw3");
    assert!(challenge[2].get("salt").is_none());
    assert_eq!(welcome[0], 2, "{welcome}");
    let off = json!(["com.cra", "una", {"wampcra_unsalted": false}]);
    assert_eq!(call(&mut root, "bondy.user.update", off)[3][0]["wampcra_unsalted"], false);
    let (challenge, welcome) = login_wampcra(&router, "com.cra", "una", "pw3");
    assert!(challenge[2]["salt"].is_string());
    assert_eq!(welcome[0], 2, "the password is unchanged: {welcome}");

    // Turning it on needs the password: the router cannot derive the key without it.
    let on = json!(["com.cra", "sal", {"wampcra_unsalted": true}]);
    let refused = call(&mut root, "bondy.user.update", on);
    assert_eq!(refused[4], "wamp.error.invalid_argument", "{refused}");
    let on = json!(["com.cra", "sal", {"wampcra_unsalted": true, "password": "pw4"}]);
    assert_eq!(call(&mut root, "bondy.user.update", on)[3][0]["wampcra_unsalted"], true);
    assert_eq!(login_wampcra(&router, "com.cra", "sal", "pw4").1[0], 2);
    let not_bool = json!(["com.cra", "sal", {"wampcra_unsalted": "yes"}]);
    assert_eq!(call(&mut root, "bondy.user.update", not_bool)[4], "wamp.error.invalid_argument");
}

#[test]
fn a_disabled_user_is_refused_like_a_wrong_password_and_its_sessions_are_closed() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    let realm = json!([{"uri": "com.off", "authmethods": ["ticket", "wampcra"]}]);
    assert_eq!(call(&mut root, "bondy.realm.create", realm)[0], 50);
    let dan = json!(["com.off", {"username": "dan", "password": "pw"}]);
    assert_eq!(call(&mut root, "bondy.user.add", dan)[3][0]["enabled"], true);
    let (live, welcome) = login(&router, "com.off", "dan", "pw");
    assert_eq!(welcome[0], 2);
    assert_eq!(call(&mut root, "bondy.user.is_enabled", json!(["com.off", "dan"]))[3][0], true);

    let disabled = call(&mut root, "bondy.user.disable", json!(["com.off", "dan"]));
    assert_eq!(disabled[0], 50, "{disabled}");
    assert_eq!(
        live.recv().expect("GOODBYE"),
        json!([6, {"message": "user \"dan\" was disabled"}, "wamp.close.killed"])
    );
    assert_eq!(call(&mut root, "bondy.user.is_enabled", json!(["com.off", "dan"]))[3][0], false);
    assert_eq!(
        call(&mut root, "bondy.user.get", json!(["com.off", "dan"]))[3][0]["enabled"],
        false
    );
    let (_, refused) = login(&router, "com.off", "dan", "pw");
    let (_, wrong) = login(&router, "com.off", "dan", "not-pw");
    assert_eq!(refused[2], "wamp.error.authentication_failed", "{refused}");
    assert_eq!(refused[1], wrong[1], "the same failure as a wrong password");
    let (challenge, refused) = login_wampcra(&router, "com.off", "dan", "pw");
    assert!(challenge[2]["salt"].is_string());
    assert_eq!(refused[2], "wamp.error.authentication_failed");

    assert_eq!(call(&mut root, "bondy.user.enable", json!(["com.off", "dan"]))[0], 50);
    assert_eq!(login(&router, "com.off", "dan", "pw").1[0], 2);
    // `enabled` in bondy.user.update does the same.
    let off = json!(["com.off", "dan", {"enabled": false}]);
    assert_eq!(call(&mut root, "bondy.user.update", off)[3][0]["enabled"], false);
    assert_eq!(login(&router, "com.off", "dan", "pw").1[2], "wamp.error.authentication_failed");

    let ghost = call(&mut root, "bondy.user.is_enabled", json!(["com.off", "ghost"]));
    assert_eq!(ghost[4], "wamp.error.no_such_principal");
    assert_eq!(
        call(&mut root, "bondy.user.disable", json!(["com.off", "ghost"]))[4],
        "bondy.error.not_found"
    );
}

#[test]
fn disabling_oneself_keeps_the_calling_session_but_not_the_next_login() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    let (other, _) = login(&router, "junction.admin", "root", "rootpw");
    assert_eq!(call(&mut root, "bondy.user.disable", json!(["root"]))[0], 50);
    assert_eq!(other.recv().expect("GOODBYE")[2], "wamp.close.killed");
    assert_eq!(call(&mut root, "bondy.user.is_enabled", json!(["root"]))[3][0], false);
    assert_eq!(login(&router, "junction.admin", "root", "rootpw").1[0], 3);
}

#[test]
fn source_get_finds_one_source_and_source_match_finds_what_applies() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    call(&mut root, "bondy.realm.create", json!([{"uri": "com.src", "authmethods": ["ticket"]}]));
    let add = |root: &mut Client, users: Json, cidr: &str, methods: Json| {
        let source = json!(["com.src", {"usernames": users, "cidr": cidr, "authmethods": methods}]);
        assert_eq!(call(root, "bondy.source.add", source)[0], 50);
    };
    add(&mut root, json!(["all"]), "10.0.0.0/8", json!(["ticket"]));
    add(&mut root, json!(["joe", "ann"]), "192.168.1.0/24", json!(["wampcra"]));
    add(&mut root, json!(["anonymous"]), "0.0.0.0/0", json!(["anonymous"]));
    let describe = |users: Json, cidr: &str, methods: Json| json!({"usernames": users, "cidr": cidr, "authmethods": methods});
    let lan = describe(json!(["joe", "ann"]), "192.168.1.0/24", json!(["wampcra"]));
    let all = describe(json!(["all"]), "10.0.0.0/8", json!(["ticket"]));
    let anon = describe(json!(["anonymous"]), "0.0.0.0/0", json!(["anonymous"]));

    // get: by one username it names, or by the exact list; the cidr in either spelling.
    let got = call(&mut root, "bondy.source.get", json!(["com.src", "joe", "192.168.1.7/24"]));
    assert_eq!(got[3][0], lan, "{got}");
    let got =
        call(&mut root, "bondy.source.get", json!(["com.src", ["joe", "ann"], "192.168.1.0/24"]));
    assert_eq!(got[3][0], lan);
    let missing = call(&mut root, "bondy.source.get", json!(["com.src", "joe", "10.0.0.0/8"]));
    assert_eq!(missing[4], "bondy.error.not_found", "joe is not named there, only all");
    let bad = call(&mut root, "bondy.source.get", json!(["com.src", "joe", "nonsense"]));
    assert_eq!(bad[4], "wamp.error.invalid_argument");

    let matched =
        |root: &mut Client, args: Json| call(root, "bondy.source.match", args)[3][0].clone();
    assert_eq!(matched(&mut root, json!(["com.src"])), json!([all]), "realm only: all");
    assert_eq!(matched(&mut root, json!(["com.src", "joe"])), json!([all, lan]));
    assert_eq!(matched(&mut root, json!(["com.src", "bob"])), json!([all]));
    assert_eq!(matched(&mut root, json!(["com.src", "anonymous"])), json!([anon]));
    assert_eq!(matched(&mut root, json!(["com.src", "joe", "192.168.1.9"])), json!([lan]));
    assert_eq!(matched(&mut root, json!(["com.src", "joe", "10.1.2.3"])), json!([all]));
    assert_eq!(matched(&mut root, json!(["com.src", "joe", "172.16.0.1"])), json!([]));
    let bad = call(&mut root, "bondy.source.match", json!(["com.src", "joe", "300.1.1.1"]));
    assert_eq!(bad[4], "wamp.error.invalid_argument");
    let nowhere = call(&mut root, "bondy.source.match", json!(["com.nowhere"]));
    assert_eq!(nowhere[4], "bondy.error.not_found");
}

#[test]
fn grants_and_passwords_changed_by_the_admin_api_apply_to_live_and_new_sessions() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    call(&mut root, "bondy.user.add", json!([{"username": "carl", "password": "one"}]));
    let (mut carl, _) = login(&router, "junction.admin", "carl", "one");
    carl.send(r#"[32, 1, {}, "com.news"]"#);
    assert_eq!(carl.recv().unwrap()[4], "wamp.error.not_authorized");
    let grant = json!([{"permissions": ["wamp.subscribe"], "uri": "com.", "match": "prefix", "roles": ["carl"]}]);
    assert_eq!(call(&mut root, "bondy.grant.create", grant.clone())[0], 50);
    carl.send(r#"[32, 2, {}, "com.news"]"#);
    assert_eq!(carl.recv().unwrap()[0], 33);
    assert_eq!(call(&mut root, "bondy.grant.revoke", grant)[0], 50);
    carl.send(r#"[32, 3, {}, "com.other"]"#);
    assert_eq!(carl.recv().unwrap()[4], "wamp.error.not_authorized");
    assert_eq!(call(&mut root, "bondy.user.change_password", json!(["carl", "two"]))[0], 50);
    assert_eq!(
        login(&router, "junction.admin", "carl", "one").1[2],
        "wamp.error.authentication_failed"
    );
    assert_eq!(login(&router, "junction.admin", "carl", "two").1[0], 2);
}

#[test]
fn deleting_a_realm_closes_its_sessions_with_close_realm_and_announces_it() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    root.send(r#"[32, 1, {}, "bondy.realm.deleted"]"#);
    root.recv();
    call(
        &mut root,
        "bondy.realm.create",
        json!([{"uri": "com.tmp", "authmethods": ["anonymous"]}]),
    );
    let (member, _) = Client::join(&router, "com.tmp");
    let reply = call(&mut root, "bondy.realm.delete", json!(["com.tmp"]));
    assert_eq!(reply[0], 50, "{reply}");
    assert_eq!(member.recv().expect("GOODBYE")[2], "wamp.close.close_realm");
    assert!(router.realm(&"com.tmp".into()).is_none());
}

#[test]
fn group_membership_changes_apply_to_live_sessions() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    call(&mut root, "bondy.group.add", json!([{"name": "readers"}]));
    let grant = json!([{"permissions": ["wamp.subscribe"], "uri": "com.", "match": "prefix", "roles": ["readers"]}]);
    assert_eq!(call(&mut root, "bondy.grant.create", grant)[0], 50);
    call(&mut root, "bondy.user.add", json!([{"username": "dora", "password": "pw"}]));
    let (mut dora, _) = login(&router, "junction.admin", "dora", "pw");
    dora.send(r#"[32, 1, {}, "com.news"]"#);
    assert_eq!(dora.recv().unwrap()[4], "wamp.error.not_authorized");
    assert_eq!(call(&mut root, "bondy.user.add_group", json!(["dora", "readers"]))[0], 50);
    dora.send(r#"[32, 2, {}, "com.news"]"#);
    assert_eq!(dora.recv().unwrap()[0], 33);
    assert_eq!(call(&mut root, "bondy.user.remove_group", json!(["dora", "readers"]))[0], 50);
    dora.send(r#"[32, 3, {}, "com.sports"]"#);
    assert_eq!(dora.recv().unwrap()[4], "wamp.error.not_authorized");
}

#[test]
fn revoking_some_permissions_for_some_roles_keeps_the_rest_of_the_grant() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    call(&mut root, "bondy.realm.create", json!([{"uri": "com.shop", "authmethods": ["ticket"]}]));
    let to_nobody =
        json!(["com.shop", {"permissions": ["wamp.call"], "uri": "any", "roles": ["ann", "all"]}]);
    let refused = call(&mut root, "bondy.grant.create", to_nobody);
    assert_eq!(refused[4], "bondy.error.unknown_roles", "{refused}");
    for name in ["ann", "bob"] {
        let user = json!(["com.shop", {"username": name}]);
        assert_eq!(call(&mut root, "bondy.user.add", user)[0], 50);
    }
    let both = json!(["com.shop", {
        "permissions": ["wamp.register", "wamp.unregister"],
        "resources": [{"uri": "com.shop.", "match": "prefix"}, {"uri": "com.stock", "match": "exact"}],
        "roles": ["ann", "bob"],
    }]);
    assert_eq!(call(&mut root, "bondy.grant.create", both)[0], 50);
    let revoke = json!(["com.shop", {"permissions": ["wamp.unregister"], "uri": "com.shop.", "match": "prefix", "roles": ["ann"]}]);
    assert_eq!(call(&mut root, "bondy.grant.revoke", revoke)[0], 50);
    let mut grants: Vec<Json> = call(&mut root, "bondy.realm.grants", json!(["com.shop"]))[3][0]
        .as_array()
        .unwrap()
        .clone();
    grants.sort_by_key(|g| g.to_string());
    let mut expected = vec![
        json!({"permissions": ["wamp.register"], "uri": "com.shop.", "match": "prefix", "roles": ["ann"]}),
        json!({"permissions": ["wamp.register", "wamp.unregister"], "uri": "com.shop.", "match": "prefix", "roles": ["bob"]}),
        json!({"permissions": ["wamp.register", "wamp.unregister"], "uri": "com.stock", "match": "exact", "roles": ["ann", "bob"]}),
    ];
    expected.sort_by_key(|g| g.to_string());
    assert_eq!(grants, expected);
}

#[test]
fn a_realm_with_users_is_deleted_only_with_force_and_groups_cannot_take_reserved_names() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    call(&mut root, "bondy.realm.create", json!([{"uri": "com.tmp", "authmethods": ["ticket"]}]));
    call(&mut root, "bondy.user.add", json!(["com.tmp", {"username": "eve", "password": "pw"}]));
    assert_eq!(
        call(&mut root, "bondy.group.add", json!(["com.tmp", {"name": "anonymous"}]))[4],
        "wamp.error.invalid_argument"
    );
    assert_eq!(
        call(&mut root, "bondy.realm.delete", json!(["com.tmp"]))[4],
        "bondy.error.active_users"
    );
    root.send(&json!([48, 9, {}, "bondy.realm.delete", ["com.tmp"], {"force": true}]).to_string());
    assert_eq!(root.recv().unwrap()[0], 50);
    assert!(router.realm(&"com.tmp".into()).is_none());
}

#[test]
fn realm_updates_apply_to_new_joins_and_live_sessions() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    call(&mut root, "bondy.realm.create", json!([{"uri": "com.live", "authmethods": ["ticket"]}]));
    let mut refused = Client::connect(&router);
    refused.send(r#"[1, "com.live", {"roles": {"caller": {}}}]"#);
    assert_eq!(refused.recv().unwrap()[0], 3, "anonymous is not admitted yet");
    let changes = json!(["com.live", {
        "description": "now open", "authmethods": ["anonymous", "ticket"],
        "security_enabled": false, "disclose_caller": true, "max_call_timeout_ms": 5000,
    }]);
    let updated = call(&mut root, "bondy.realm.update", changes);
    assert_eq!(updated[0], 50, "{updated}");
    let described = &updated[3][0];
    assert_eq!(described["description"], "now open");
    assert_eq!(described["authmethods"], json!(["anonymous", "ticket"]));
    assert_eq!(
        (described["disclose_caller"].clone(), described["max_call_timeout_ms"].clone()),
        (json!(true), json!(5000))
    );
    // Anonymous sessions are admitted now, and a callee sees who calls without disclose_me.
    let (mut callee, _) = Client::join(&router, "com.live");
    let (mut caller, _) = Client::join(&router, "com.live");
    callee.send(r#"[64, 1, {}, "com.live.echo"]"#);
    assert_eq!(callee.recv().unwrap()[0], 65);
    caller.send(r#"[48, 2, {}, "com.live.echo"]"#);
    let invocation = callee.recv().unwrap();
    assert_eq!(invocation[0], 68);
    assert!(invocation[3].get("caller").is_some(), "{invocation}");
    // The snapshot (what the store keeps) has them too.
    let realm = router.realm(&"com.live".into()).unwrap();
    assert_eq!(realm.snapshot().max_call_timeout, Some(std::time::Duration::from_secs(5)));
}

#[test]
fn revoking_a_grant_withdraws_the_subscriptions_and_registrations_it_allowed() {
    let router = router();
    let (mut root, _) = login(&router, "junction.admin", "root", "rootpw");
    call(&mut root, "bondy.user.add", json!([{"username": "fay", "password": "pw"}]));
    let grant = json!([{"permissions": ["wamp.subscribe", "wamp.register"], "uri": "com.", "match": "prefix", "roles": ["fay"]}]);
    assert_eq!(call(&mut root, "bondy.grant.create", grant.clone())[0], 50);
    let mut fay = Client::connect(&router);
    let hello = json!([1, "junction.admin", {"authid": "fay", "authmethods": ["ticket"], "roles": {
        "subscriber": {"features": {"subscription_revocation": true}},
        "callee": {"features": {"registration_revocation": true}},
    }}]);
    fay.send(&hello.to_string());
    assert_eq!(fay.recv().unwrap()[0], 4);
    fay.send(r#"[5, "pw", {}]"#);
    assert_eq!(fay.recv().unwrap()[0], 2);
    fay.send(r#"[32, 1, {}, "com.news"]"#);
    let subscription = fay.recv().unwrap()[2].clone();
    fay.send(r#"[64, 2, {}, "com.echo"]"#);
    let registration = fay.recv().unwrap()[2].clone();

    assert_eq!(call(&mut root, "bondy.grant.revoke", grant)[0], 50);
    let unsubscribed = fay.recv().expect("UNSUBSCRIBED");
    assert_eq!(
        unsubscribed,
        json!([35, 0, {"subscription": subscription, "reason": "wamp.error.not_authorized"}])
    );
    let unregistered = fay.recv().expect("UNREGISTERED");
    assert_eq!(
        unregistered,
        json!([67, 0, {"registration": registration, "reason": "wamp.error.not_authorized"}])
    );
    let realm = router.realm(&"junction.admin".into()).unwrap();
    assert_eq!(realm.broker.subscription_count(), 0);
}
