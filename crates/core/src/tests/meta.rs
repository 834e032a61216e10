use serde_json::{Value as Json, json};

use super::harness::{Client, router};

/// Calls a meta procedure and returns the RESULT or ERROR.
fn call(client: &mut Client, request: u64, procedure: &str, args: Json, kwargs: Json) -> Json {
    client.send(&json!([48, request, {}, procedure, args, kwargs]).to_string());
    client.recv().expect("RESULT or ERROR")
}

fn result(client: &mut Client, procedure: &str, args: Json) -> Json {
    let reply = call(client, 99, procedure, args, json!({}));
    assert_eq!(reply[0], 50, "{procedure}: {reply}");
    reply[3][0].clone()
}

/// Subscribes, then drops the meta events the subscription itself caused for this client.
fn subscribe(client: &mut Client, topic: &str) {
    client.send(&json!([32, 1, {}, topic]).to_string());
    assert_eq!(client.recv().expect("SUBSCRIBED")[0], 33);
    while client.recv().is_some() {}
}

#[test]
fn session_count_list_and_get_see_only_this_realm() {
    let router = router();
    let (mut a, a_id) = Client::join(&router, "realm1");
    let (_b, b_id) = Client::join(&router, "realm1");
    let (_other, other_id) = Client::join(&router, "realm2");
    assert_eq!(result(&mut a, "wamp.session.count", json!([])), 2);
    let mut listed: Vec<u64> =
        serde_json::from_value(result(&mut a, "wamp.session.list", json!([]))).unwrap();
    listed.sort();
    let mut expected = vec![a_id, b_id];
    expected.sort();
    assert_eq!(listed, expected);
    let details = result(&mut a, "wamp.session.get", json!([b_id]));
    assert_eq!(details["session"], b_id);
    assert_eq!(details["authrole"], "anonymous");
    assert_eq!(details["authmethod"], "anonymous");
    assert_eq!(details["transport"]["type"], "inprocess");
    let error = call(&mut a, 5, "wamp.session.get", json!([other_id]), json!({}));
    assert_eq!(error[4], "wamp.error.no_such_session");
}

#[test]
fn session_count_filters_by_authrole() {
    let router = router();
    let (mut a, _) = Client::join(&router, "realm1");
    assert_eq!(result(&mut a, "wamp.session.count", json!([["anonymous"]])), 1);
    assert_eq!(result(&mut a, "wamp.session.count", json!([["admin"]])), 0);
    assert_eq!(result(&mut a, "wamp.session.list", json!([["admin"]])), json!([]));
}

#[test]
fn watcher_sees_on_join_then_on_leave_for_a_dropped_session() {
    let router = router();
    let (mut watcher, _) = Client::join(&router, "realm1");
    subscribe(&mut watcher, "wamp.session.on_join");
    subscribe(&mut watcher, "wamp.session.on_leave");
    let (mut joiner, joiner_id) = Client::join(&router, "realm1");
    let join = watcher.recv().expect("on_join");
    assert_eq!(join[4][0]["session"], joiner_id);
    assert!(join[4][0]["authid"].is_string());
    joiner.disconnect();
    let leave = watcher.recv().expect("on_leave");
    assert_eq!(leave[4], json!([joiner_id, format!("anonymous-{joiner_id}"), "anonymous"]));
    watcher.assert_silent();
}

#[test]
fn kill_sends_goodbye_with_reason_and_message_and_fires_on_leave() {
    let router = router();
    let (mut killer, killer_id) = Client::join(&router, "realm1");
    let (victim, victim_id) = Client::join(&router, "realm1");
    subscribe(&mut killer, "wamp.session.on_leave");
    // The victim leaves during the call: the killer sees on_leave, then the (empty) result.
    let leave = call(
        &mut killer,
        1,
        "wamp.session.kill",
        json!([victim_id]),
        json!({"reason": "com.example.bye", "message": "go away"}),
    );
    assert_eq!(leave[4][0], victim_id);
    assert_eq!(killer.recv().expect("RESULT"), json!([50, 1, {}]));
    assert_eq!(
        victim.recv().expect("GOODBYE"),
        json!([6, {"message": "go away"}, "com.example.bye"])
    );
    assert_eq!(result(&mut killer, "wamp.session.count", json!([])), 1);
    let own = call(&mut killer, 2, "wamp.session.kill", json!([killer_id]), json!({}));
    assert_eq!(own[4], "wamp.error.no_such_session");
}

#[test]
fn kill_defaults_to_wamp_close_killed_and_rejects_invalid_reasons() {
    let router = router();
    let (mut killer, _) = Client::join(&router, "realm1");
    let (victim, victim_id) = Client::join(&router, "realm1");
    let bad = call(
        &mut killer,
        1,
        "wamp.session.kill",
        json!([victim_id]),
        json!({"reason": "not a uri"}),
    );
    assert_eq!(bad[4], "wamp.error.invalid_uri");
    victim.assert_silent();
    call(&mut killer, 2, "wamp.session.kill", json!([victim_id]), json!({}));
    assert_eq!(victim.recv().expect("GOODBYE"), json!([6, {}, "wamp.close.killed"]));
}

#[test]
fn kill_all_leaves_the_caller_connected() {
    let router = router();
    let (mut caller, caller_id) = Client::join(&router, "realm1");
    let victims: Vec<_> = (0..3).map(|_| Client::join(&router, "realm1").0).collect();
    assert_eq!(result(&mut caller, "wamp.session.kill_all", json!([])), 3);
    for v in &victims {
        assert_eq!(v.recv().expect("GOODBYE")[2], "wamp.close.killed");
    }
    assert_eq!(result(&mut caller, "wamp.session.list", json!([])), json!([caller_id]));
}

#[test]
fn kill_by_authid_and_authrole_spare_the_caller() {
    let router = router();
    let (mut caller, _) = Client::join(&router, "realm1");
    let (victim, victim_id) = Client::join(&router, "realm1");
    let killed = result(
        &mut caller,
        "wamp.session.kill_by_authid",
        json!([format!("anonymous-{victim_id}")]),
    );
    assert_eq!(killed, json!([victim_id]));
    assert_eq!(victim.recv().expect("GOODBYE")[2], "wamp.close.killed");
    let (_other, _) = Client::join(&router, "realm1");
    assert_eq!(result(&mut caller, "wamp.session.kill_by_authrole", json!(["anonymous"])), 1);
    assert_eq!(result(&mut caller, "wamp.session.count", json!([])), 1);
}

#[test]
fn killed_session_cannot_subscribe_afterwards() {
    let router = router();
    let (mut killer, _) = Client::join(&router, "realm1");
    let (mut victim, victim_id) = Client::join(&router, "realm1");
    call(&mut killer, 1, "wamp.session.kill", json!([victim_id]), json!({}));
    victim.recv();
    victim.send(r#"[32, 1, {}, "com.topic"]"#);
    victim.assert_silent();
    assert_eq!(router.realm(&"realm1".into()).unwrap().broker.subscription_count(), 0);
}

#[test]
fn testaments_fire_in_order_on_disconnect_unless_flushed() {
    let router = router();
    let (mut watcher, _) = Client::join(&router, "realm1");
    subscribe(&mut watcher, "com.testament");
    let (mut dying, _) = Client::join(&router, "realm1");
    let add = |c: &mut Client, n: u64, scope: &str| {
        let reply = call(
            c,
            n,
            "wamp.session.add_testament",
            json!(["com.testament", [n], {}]),
            json!({"scope": scope}),
        );
        assert_eq!(reply, json!([50, n, {}]));
    };
    add(&mut dying, 1, "destroyed");
    add(&mut dying, 2, "detached");
    add(&mut dying, 3, "destroyed");
    dying.disconnect();
    let order: Vec<Json> = (0..3).map(|_| watcher.recv().expect("EVENT")[4][0].clone()).collect();
    assert_eq!(order, vec![json!(2), json!(1), json!(3)]);

    let (mut flushed, _) = Client::join(&router, "realm1");
    add(&mut flushed, 4, "destroyed");
    assert_eq!(
        call(&mut flushed, 5, "wamp.session.flush_testaments", json!([]), json!({})),
        json!([50, 5, {}])
    );
    flushed.disconnect();
    watcher.assert_silent();
}

#[test]
fn testament_with_an_invalid_scope_is_an_error() {
    let router = router();
    let (mut c, _) = Client::join(&router, "realm1");
    let reply = call(
        &mut c,
        1,
        "wamp.session.add_testament",
        json!(["com.t", [], {}]),
        json!({"scope": "forever"}),
    );
    assert_eq!(reply[4], "wamp.error.invalid_argument");
}

#[test]
fn registration_meta_events_come_in_the_spec_order_with_details() {
    let router = router();
    let (mut watcher, _) = Client::join(&router, "realm1");
    for topic in ["on_create", "on_register", "on_unregister", "on_delete"] {
        subscribe(&mut watcher, &format!("wamp.registration.{topic}"));
    }
    let (mut callee, callee_id) = Client::join(&router, "realm1");
    callee.send(r#"[64, 1, {"match": "prefix"}, "com.app"]"#);
    let registration = callee.recv().expect("REGISTERED")[2].clone();
    let created = watcher.recv().expect("on_create");
    assert_eq!(created[4][0], callee_id);
    assert_eq!(created[4][1]["id"], registration);
    assert_eq!(created[4][1]["uri"], "com.app");
    assert_eq!(created[4][1]["match"], "prefix");
    assert_eq!(created[4][1]["invoke"], "single");
    assert!(created[4][1]["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(watcher.recv().expect("on_register")[4], json!([callee_id, registration]));
    callee.disconnect();
    assert_eq!(watcher.recv().expect("on_unregister")[4], json!([callee_id, registration]));
    assert_eq!(watcher.recv().expect("on_delete")[4], json!([callee_id, registration]));
}

#[test]
fn subscription_meta_events_and_procedures() {
    let router = router();
    let (mut watcher, _) = Client::join(&router, "realm1");
    for topic in ["on_create", "on_subscribe", "on_unsubscribe", "on_delete"] {
        subscribe(&mut watcher, &format!("wamp.subscription.{topic}"));
    }
    let (mut a, a_id) = Client::join(&router, "realm1");
    let (mut b, b_id) = Client::join(&router, "realm1");
    a.send(r#"[32, 1, {}, "com.topic"]"#);
    let sid = a.recv().expect("SUBSCRIBED")[2].as_u64().unwrap();
    b.send(r#"[32, 1, {}, "com.topic"]"#);
    b.recv();
    assert_eq!(watcher.recv().expect("on_create")[4][1]["uri"], "com.topic");
    assert_eq!(watcher.recv().expect("on_subscribe")[4], json!([a_id, sid]));
    assert_eq!(watcher.recv().expect("on_subscribe")[4], json!([b_id, sid]));

    let (mut q, _) = Client::join(&router, "realm1");
    assert_eq!(result(&mut q, "wamp.subscription.lookup", json!(["com.topic"])), sid);
    assert_eq!(result(&mut q, "wamp.subscription.lookup", json!(["com.none"])), Json::Null);
    assert_eq!(result(&mut q, "wamp.subscription.match", json!(["com.topic"])), json!([sid]));
    assert_eq!(result(&mut q, "wamp.subscription.match", json!(["com.none"])), Json::Null);
    assert_eq!(result(&mut q, "wamp.subscription.count_subscribers", json!([sid])), 2);
    let mut subscribers: Vec<u64> =
        serde_json::from_value(result(&mut q, "wamp.subscription.list_subscribers", json!([sid])))
            .unwrap();
    subscribers.sort();
    let mut expected = vec![a_id, b_id];
    expected.sort();
    assert_eq!(subscribers, expected);
    assert_eq!(result(&mut q, "wamp.subscription.get", json!([sid]))["match"], "exact");
    let list = result(&mut q, "wamp.subscription.list", json!([]));
    assert!(list["exact"].as_array().unwrap().contains(&json!(sid)));
    assert_eq!(list["prefix"], json!([]));
    assert_eq!(
        call(&mut q, 7, "wamp.subscription.get", json!([1]), json!({}))[4],
        "wamp.error.no_such_subscription"
    );

    a.send(&format!("[34, 2, {sid}]"));
    a.recv();
    assert_eq!(watcher.recv().expect("on_unsubscribe")[4], json!([a_id, sid]));
    b.disconnect();
    assert_eq!(watcher.recv().expect("on_unsubscribe")[4], json!([b_id, sid]));
    assert_eq!(watcher.recv().expect("on_delete")[4], json!([b_id, sid]));
}

#[test]
fn registration_procedures_describe_registrations() {
    let router = router();
    let (mut callee, callee_id) = Client::join(&router, "realm1");
    callee.send(r#"[64, 1, {}, "com.app.add"]"#);
    let exact = callee.recv().expect("REGISTERED")[2].clone();
    callee.send(r#"[64, 2, {"match": "prefix"}, "com.app"]"#);
    let prefix = callee.recv().expect("REGISTERED")[2].clone();
    let (mut q, _) = Client::join(&router, "realm1");
    assert_eq!(result(&mut q, "wamp.registration.lookup", json!(["com.app.add"])), exact);
    assert_eq!(
        result(&mut q, "wamp.registration.lookup", json!(["com.app", {"match": "prefix"}])),
        prefix
    );
    assert_eq!(result(&mut q, "wamp.registration.match", json!(["com.app.add"])), exact);
    assert_eq!(result(&mut q, "wamp.registration.match", json!(["com.app.sub"])), prefix);
    assert_eq!(result(&mut q, "wamp.registration.match", json!(["org.none"])), Json::Null);
    assert_eq!(
        result(&mut q, "wamp.registration.list_callees", json!([exact])),
        json!([callee_id])
    );
    assert_eq!(result(&mut q, "wamp.registration.count_callees", json!([prefix])), 1);
    assert_eq!(result(&mut q, "wamp.registration.get", json!([exact]))["uri"], "com.app.add");
    let list = result(&mut q, "wamp.registration.list", json!([]));
    assert_eq!(list["exact"], json!([exact]));
    assert_eq!(list["prefix"], json!([prefix]));
    assert_eq!(
        call(&mut q, 3, "wamp.registration.count_callees", json!([1]), json!({}))[4],
        "wamp.error.no_such_registration"
    );
}

#[test]
fn unknown_meta_procedure_and_bad_arguments_are_errors() {
    let router = router();
    let (mut c, _) = Client::join(&router, "realm1");
    assert_eq!(
        call(&mut c, 1, "wamp.session.nope", json!([]), json!({}))[4],
        "wamp.error.no_such_procedure"
    );
    assert_eq!(
        call(&mut c, 2, "wamp.session.get", json!(["x"]), json!({}))[4],
        "wamp.error.invalid_argument"
    );
    assert_eq!(
        call(&mut c, 3, "wamp.session.count", json!(["x"]), json!({}))[4],
        "wamp.error.invalid_argument"
    );
}

#[test]
fn welcome_announces_the_meta_apis() {
    let router = router();
    let mut c = Client::connect(&router);
    c.send(r#"[1, "realm1", {"roles": {"caller": {}}}]"#);
    let welcome = c.recv().unwrap();
    let roles = &welcome[2]["roles"];
    for feature in ["session_meta_api", "subscription_meta_api"] {
        assert_eq!(roles["broker"]["features"][feature], true, "{feature}");
    }
    for feature in ["session_meta_api", "registration_meta_api", "testament_meta_api"] {
        assert_eq!(roles["dealer"]["features"][feature], true, "{feature}");
    }
}
