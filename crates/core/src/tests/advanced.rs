//! Advanced Profile features, in-process.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::harness::{Client, router, router_with};
use crate::options::MatchPolicy;
use crate::realm::HistoryConfig;
use crate::{RealmConfig, Status};

fn callee_roles(features: Json) -> Json {
    json!({"callee": {"features": features}, "caller": {}, "publisher": {}, "subscriber": {}})
}

/// A caller that announced progressive call invocations.
fn streaming_caller() -> Json {
    json!({"caller": {"features": {"progressive_call_invocations": true}}})
}

fn register(callee: &mut Client, options: Json, procedure: &str) -> Json {
    callee.send(&json!([64, 1, options, procedure]).to_string());
    let reply = callee.recv().expect("REGISTERED");
    assert_eq!(reply[0], 65, "{reply}");
    reply[2].clone()
}

#[test]
fn call_timeout_fails_the_call_and_interrupts_the_callee_even_if_it_never_answers() {
    let router = router();
    let (mut callee, _) =
        Client::join_with_roles(&router, "realm1", callee_roles(json!({"call_canceling": true})));
    let (mut caller, _) = Client::join(&router, "realm1");
    register(&mut callee, json!({}), "com.slow");
    caller.send(r#"[48, 7, {"timeout": 200}, "com.slow"]"#);
    let invocation = callee.recv().expect("INVOCATION");
    assert_eq!(invocation[3]["timeout"], 200);
    let before = Instant::now();
    assert!(router.expire(before).is_some(), "a deadline is pending");
    caller.assert_silent();
    assert_eq!(router.expire(before + Duration::from_secs(1)), None);
    let error = caller.recv().expect("ERROR");
    assert_eq!((error[2].clone(), error[4].clone()), (json!(7), json!("wamp.error.timeout")));
    assert_eq!(
        callee.recv().expect("INTERRUPT"),
        json!([69, 1, {"mode": "killnowait", "reason": "wamp.error.timeout"}])
    );
    // The late answer is dropped.
    callee.send(r#"[70, 1, {}, ["late"]]"#);
    caller.assert_silent();
}

#[test]
fn realm_default_and_maximum_call_timeouts_apply() {
    let realm = RealmConfig {
        default_call_timeout: Some(Duration::from_millis(500)),
        max_call_timeout: Some(Duration::from_secs(2)),
        ..RealmConfig::open("realm1")
    };
    let router = router_with(vec![realm]);
    let (mut callee, _) = Client::join(&router, "realm1");
    let (mut caller, _) = Client::join(&router, "realm1");
    register(&mut callee, json!({}), "com.slow");
    caller.send(r#"[48, 1, {}, "com.slow"]"#);
    assert_eq!(callee.recv().expect("INVOCATION")[3]["timeout"], 500);
    caller.send(r#"[48, 2, {"timeout": 60000}, "com.slow"]"#);
    assert_eq!(callee.recv().expect("INVOCATION")[3]["timeout"], 2000);
}

#[test]
fn caller_is_disclosed_by_realm_policy_by_disclose_me_or_by_the_registration() {
    let disclosing = router_with(vec![RealmConfig::open("realm1")]);
    let (mut callee, _) = Client::join(&disclosing, "realm1");
    let (mut caller, caller_id) = Client::join(&disclosing, "realm1");
    register(&mut callee, json!({}), "com.who");
    caller.send(r#"[48, 1, {}, "com.who"]"#);
    let details = callee.recv().expect("INVOCATION")[3].clone();
    assert_eq!(details["caller"], caller_id);
    assert_eq!(details["caller_authrole"], "anonymous");

    let router = router();
    let (mut callee, _) = Client::join(&router, "realm1");
    let (mut caller, caller_id) = Client::join(&router, "realm1");
    register(&mut callee, json!({}), "com.who");
    caller.send(r#"[48, 1, {}, "com.who"]"#);
    assert!(callee.recv().expect("INVOCATION")[3].get("caller").is_none());
    caller.send(r#"[48, 2, {"disclose_me": true}, "com.who"]"#);
    assert_eq!(callee.recv().expect("INVOCATION")[3]["caller"], caller_id);
    register(&mut callee, json!({"disclose_caller": true}), "com.who2");
    caller.send(r#"[48, 3, {}, "com.who2"]"#);
    assert_eq!(callee.recv().expect("INVOCATION")[3]["caller"], caller_id);
}

#[test]
fn publisher_is_disclosed_by_realm_policy() {
    let router = router_with(vec![RealmConfig::open("realm1")]);
    let (mut sub, _) = Client::join(&router, "realm1");
    let (mut publisher, publisher_id) = Client::join(&router, "realm1");
    sub.send(r#"[32, 1, {}, "com.t"]"#);
    sub.recv();
    publisher.send(r#"[16, 1, {}, "com.t"]"#);
    assert_eq!(sub.recv().expect("EVENT")[3]["publisher"], publisher_id);
}

#[test]
fn progressive_call_invocations_stream_chunks_to_one_invocation() {
    let router = router();
    let roles = callee_roles(json!({"progressive_call_invocations": true, "call_canceling": true}));
    let (mut callee, _) = Client::join_with_roles(&router, "realm1", roles);
    let (mut caller, _) = Client::join_with_roles(&router, "realm1", streaming_caller());
    register(&mut callee, json!({}), "com.upload");
    caller.send(r#"[48, 5, {"progress": true}, "com.upload", ["chunk1"]]"#);
    caller.send(r#"[48, 5, {"progress": true}, "com.upload", ["chunk2"]]"#);
    caller.send(r#"[48, 5, {}, "com.upload", ["last"]]"#);
    let first = callee.recv().expect("INVOCATION");
    assert_eq!(
        (first[1].clone(), first[3]["progress"].clone(), first[4].clone()),
        (json!(1), json!(true), json!(["chunk1"]))
    );
    assert_eq!(
        callee.recv().expect("INVOCATION"),
        json!([68, 1, first[2], {"progress": true}, ["chunk2"]])
    );
    assert_eq!(callee.recv().expect("INVOCATION"), json!([68, 1, first[2], {}, ["last"]]));
    callee.send(r#"[70, 1, {}, ["stored"]]"#);
    assert_eq!(caller.recv().expect("RESULT"), json!([50, 5, {}, ["stored"]]));
    // A chunk after the final one reuses a request id that is no longer in flight: a new call.
    assert_eq!(caller.try_send(r#"[48, 6, {}, "com.upload"]"#), Status::Open);
}

#[test]
fn progressive_call_invocation_to_a_callee_without_the_feature_is_refused() {
    let router = router();
    let (mut callee, _) = Client::join(&router, "realm1");
    let (mut caller, _) = Client::join_with_roles(&router, "realm1", streaming_caller());
    register(&mut callee, json!({}), "com.upload");
    caller.send(r#"[48, 5, {"progress": true}, "com.upload", ["chunk1"]]"#);
    assert_eq!(caller.recv().expect("ERROR")[4], "wamp.error.feature_not_supported");
}

#[test]
fn sharded_calls_with_the_same_key_reach_the_same_callee() {
    let router = router();
    let mut callees: Vec<Client> = (0..3).map(|_| Client::join(&router, "realm1").0).collect();
    for c in &mut callees {
        register(c, json!({"invoke": "roundrobin"}), "com.shard");
    }
    let (mut caller, _) = Client::join(&router, "realm1");
    for request in 1..=6 {
        caller.send(&format!(
            r#"[48, {request}, {{"runmode": "partition", "rkey": "sensor-42"}}, "com.shard"]"#
        ));
    }
    let counts: Vec<usize> =
        callees.iter().map(|c| std::iter::from_fn(|| c.recv()).count()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 6);
    assert_eq!(counts.iter().filter(|n| **n > 0).count(), 1, "{counts:?}");
}

#[test]
fn force_reregister_revokes_the_old_callee_with_unregistered_zero() {
    let router = router();
    let (mut old, _) = Client::join_with_roles(
        &router,
        "realm1",
        callee_roles(json!({"registration_revocation": true})),
    );
    let (mut new, new_id) = Client::join(&router, "realm1");
    let old_registration = register(&mut old, json!({}), "com.svc");
    register(&mut new, json!({"force_reregister": true}), "com.svc");
    let revoked = old.recv().expect("UNREGISTERED");
    assert_eq!(revoked[0], 67);
    assert_eq!(revoked[1], 0);
    assert_eq!(revoked[2]["registration"], old_registration);
    let (mut q, _) = Client::join(&router, "realm1");
    q.send(r#"[48, 1, {}, "wamp.registration.match", ["com.svc"]]"#);
    let current = q.recv().expect("RESULT")[3][0].clone();
    q.send(&format!(r#"[48, 2, {{}}, "wamp.registration.list_callees", [{current}]]"#));
    assert_eq!(q.recv().expect("RESULT")[3][0], json!([new_id]));
}

#[test]
fn remove_callee_revokes_only_callees_that_announced_revocation_by_message() {
    let router = router();
    let (mut announced, announced_id) = Client::join_with_roles(
        &router,
        "realm1",
        callee_roles(json!({"registration_revocation": true})),
    );
    let registration = register(&mut announced, json!({"invoke": "first"}), "com.svc");
    let (mut admin, _) = Client::join(&router, "realm1");
    admin.send(&format!(r#"[48, 1, {{}}, "wamp.registration.remove_callee", [{registration}, {announced_id}], {{"reason": "maintenance"}}]"#));
    assert_eq!(admin.recv().expect("RESULT"), json!([50, 1, {}]));
    assert_eq!(
        announced.recv().expect("UNREGISTERED"),
        json!([67, 0, {"registration": registration, "reason": "maintenance"}])
    );
    admin.send(r#"[48, 2, {}, "com.svc"]"#);
    assert_eq!(admin.recv().expect("ERROR")[4], "wamp.error.no_such_procedure");
}

#[test]
fn unavailable_callee_reroutes_to_the_next_then_no_available_callee() {
    let router = router();
    let (mut a, _) = Client::join(&router, "realm1");
    let (mut b, _) = Client::join(&router, "realm1");
    register(&mut a, json!({"invoke": "first"}), "com.busy");
    register(&mut b, json!({"invoke": "first"}), "com.busy");
    let (mut caller, _) = Client::join(&router, "realm1");
    caller.send(r#"[48, 1, {}, "com.busy", [1]]"#);
    assert_eq!(a.recv().expect("INVOCATION")[4], json!([1]));
    a.send(r#"[8, 68, 1, {}, "wamp.error.unavailable"]"#);
    let rerouted = b.recv().expect("INVOCATION");
    assert_eq!(rerouted[4], json!([1]));
    b.send(r#"[8, 68, 1, {}, "wamp.error.unavailable"]"#);
    let error = caller.recv().expect("ERROR");
    assert_eq!(error[4], "wamp.error.no_available_callee");
}

#[test]
fn concurrency_limit_refuses_calls_beyond_it_until_one_finishes() {
    let router = router();
    let (mut callee, _) = Client::join(&router, "realm1");
    let (mut caller, _) = Client::join(&router, "realm1");
    register(&mut callee, json!({"concurrency": 1}), "com.one");
    caller.send(r#"[48, 1, {}, "com.one"]"#);
    caller.send(r#"[48, 2, {}, "com.one"]"#);
    let error = caller.recv().expect("ERROR");
    assert_eq!(
        (error[2].clone(), error[4].clone()),
        (json!(2), json!("wamp.error.no_available_callee"))
    );
    callee.recv();
    callee.send(r#"[70, 1, {}]"#);
    assert_eq!(caller.recv().expect("RESULT")[1], 1);
    caller.send(r#"[48, 3, {}, "com.one"]"#);
    assert_eq!(callee.recv().expect("INVOCATION")[0], 68);
}

#[test]
fn cancel_kill_waits_for_the_callee_and_skip_does_not_interrupt() {
    let router = router();
    let (mut callee, _) = Client::join(&router, "realm1");
    let (mut caller, _) = Client::join(&router, "realm1");
    register(&mut callee, json!({}), "com.long");
    caller.send(r#"[48, 1, {}, "com.long"]"#);
    callee.recv();
    caller.send(r#"[49, 1, {"mode": "kill"}]"#);
    assert_eq!(callee.recv().expect("INTERRUPT"), json!([69, 1, {"mode": "kill"}]));
    caller.assert_silent();
    callee.send(r#"[8, 68, 1, {}, "wamp.error.canceled"]"#);
    assert_eq!(caller.recv().expect("ERROR")[4], "wamp.error.canceled");
    caller.send(r#"[48, 2, {}, "com.long"]"#);
    callee.recv();
    caller.send(r#"[49, 2, {"mode": "skip"}]"#);
    assert_eq!(caller.recv().expect("ERROR")[4], "wamp.error.canceled");
    callee.assert_silent();
}

#[test]
fn retained_event_is_delivered_on_subscribe_with_get_retained() {
    let router = router();
    let (mut publisher, _) = Client::join(&router, "realm1");
    publisher.send(r#"[16, 1, {"retain": true}, "com.status", ["online"]]"#);
    publisher.send(r#"[16, 2, {"retain": true}, "com.status", ["busy"]]"#);
    let (mut late, _) = Client::join(&router, "realm1");
    late.send(r#"[32, 1, {"get_retained": true}, "com.status"]"#);
    let sid = late.recv().expect("SUBSCRIBED")[2].clone();
    let event = late.recv().expect("retained EVENT");
    assert_eq!(event[1], sid);
    assert_eq!(event[3]["retained"], true);
    assert_eq!(event[4], json!(["busy"]));
    late.assert_silent();
    let (mut plain, _) = Client::join(&router, "realm1");
    plain.send(r#"[32, 1, {}, "com.status"]"#);
    plain.recv();
    plain.assert_silent();
}

#[test]
fn event_history_is_queried_with_filters_and_skips_session_lists() {
    let history = HistoryConfig { topic: "com.log".into(), policy: MatchPolicy::Prefix, limit: 3 };
    let router = router_with(vec![RealmConfig {
        event_history: vec![history],
        ..RealmConfig::open("realm1")
    }]);
    let (mut sub, sub_id) = Client::join(&router, "realm1");
    sub.send(r#"[32, 1, {"match": "prefix"}, "com.log"]"#);
    let sid = sub.recv().expect("SUBSCRIBED")[2].clone();
    let (mut publisher, _) = Client::join(&router, "realm1");
    for n in 1..=4 {
        publisher.send(&format!(r#"[16, {n}, {{}}, "com.log.app", [{n}]]"#));
    }
    publisher.send(&format!(r#"[16, 9, {{"eligible": [{sub_id}]}}, "com.log.app", [99]]"#));
    publisher.send(r#"[16, 10, {"eligible_authrole": ["admin"]}, "com.log.app", [100]]"#);
    while sub.recv().is_some() {}
    let (mut q, _) = Client::join(&router, "realm1");
    q.send(&format!(r#"[48, 1, {{}}, "wamp.subscription.get_events", [{sid}]]"#));
    let events = q.recv().expect("RESULT")[3][0].clone();
    let args: Vec<Json> = events.as_array().unwrap().iter().map(|e| e["args"].clone()).collect();
    // Limit 3 per topic: 99 named a session and was not stored; 100 was stored (pushing out
    // 1 and 2) but is for admins only.
    assert_eq!(args, vec![json!([3]), json!([4])]);
    assert_eq!(events[0]["subscription"], sid);
    assert_eq!(events[0]["details"]["topic"], "com.log.app");
    assert!(events[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    q.send(&format!(
        r#"[48, 2, {{}}, "wamp.subscription.get_events", [{sid}], {{"reverse": true, "limit": 1}}]"#
    ));
    assert_eq!(q.recv().expect("RESULT")[3][0][0]["args"], json!([4]));
    let first = events[0]["publication"].clone();
    q.send(&format!(r#"[48, 3, {{}}, "wamp.subscription.get_events", [{sid}], {{"after_publication": {first}}}]"#));
    assert_eq!(
        q.recv().expect("RESULT")[3][0].as_array().unwrap().len(),
        events.as_array().unwrap().len() - 1
    );
    q.send(&format!(r#"[48, 4, {{}}, "wamp.subscription.get_events", [{sid}], {{"from_time": "2999-01-01T00:00:00Z"}}]"#));
    assert_eq!(q.recv().expect("RESULT")[3][0], json!([]));
}

#[test]
fn remove_subscriber_revokes_with_unsubscribed_zero() {
    let router = router();
    let roles = json!({"subscriber": {"features": {"subscription_revocation": true}}});
    let (mut sub, sub_id) = Client::join_with_roles(&router, "realm1", roles);
    sub.send(r#"[32, 1, {}, "com.t"]"#);
    let sid = sub.recv().expect("SUBSCRIBED")[2].clone();
    let (mut admin, _) = Client::join(&router, "realm1");
    admin.send(&format!(
        r#"[48, 1, {{}}, "wamp.subscription.remove_subscriber", [{sid}, {sub_id}]]"#
    ));
    assert_eq!(admin.recv().expect("RESULT"), json!([50, 1, {}]));
    assert_eq!(
        sub.recv().expect("UNSUBSCRIBED"),
        json!([35, 0, {"subscription": sid, "reason": "wamp.close.removed"}])
    );
    admin.send(r#"[16, 2, {}, "com.t"]"#);
    sub.assert_silent();
}

#[test]
fn payload_passthru_is_forwarded_untouched_and_checked_on_both_ends() {
    let router = router();
    let ppt = json!({"payload_passthru_mode": true});
    let roles = json!({"caller": {"features": ppt}, "callee": {"features": ppt}, "publisher": {"features": ppt}, "subscriber": {"features": ppt}});
    let (mut callee, _) = Client::join_with_roles(&router, "realm1", roles.clone());
    let (mut caller, _) = Client::join_with_roles(&router, "realm1", roles);
    register(&mut callee, json!({}), "com.e2e");
    caller.send(r#"[48, 1, {"ppt_scheme": "wamp", "ppt_serializer": "cbor", "ppt_cipher": "xsalsa20poly1305", "ppt_keyid": "k1"}, "com.e2e", ["\u0000AAEC"]]"#);
    let invocation = callee.recv().expect("INVOCATION");
    assert_eq!(invocation[3]["ppt_scheme"], "wamp");
    assert_eq!(invocation[3]["ppt_keyid"], "k1");
    assert_eq!(invocation[4], json!(["\u{0}AAEC"]));
    callee.send(r#"[70, 1, {"ppt_scheme": "wamp", "ppt_serializer": "cbor"}, ["\u0000AAED"]]"#);
    let result = caller.recv().expect("RESULT");
    assert_eq!(result[2]["ppt_serializer"], "cbor");
    assert_eq!(result[3], json!(["\u{0}AAED"]));

    let (mut plain_callee, _) = Client::join(&router, "realm1");
    register(&mut plain_callee, json!({}), "com.plain");
    caller.send(r#"[48, 2, {"ppt_scheme": "wamp"}, "com.plain", []]"#);
    assert_eq!(caller.recv().expect("ERROR")[4], "wamp.error.feature_not_supported");

    let (mut unannounced, _) = Client::join(&router, "realm1");
    assert_eq!(
        unannounced.try_send(r#"[48, 1, {"ppt_scheme": "wamp"}, "com.e2e", []]"#),
        Status::Closed
    );
    assert_eq!(unannounced.recv().expect("ABORT")[2], "wamp.error.protocol_violation");
}

#[test]
fn timer_waker_is_told_about_a_sooner_deadline() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let router = router();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&wakes);
    router.set_timer_waker(Box::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    let (mut callee, _) = Client::join(&router, "realm1");
    let (mut caller, _) = Client::join(&router, "realm1");
    register(&mut callee, json!({}), "com.slow");
    caller.send(r#"[48, 1, {"timeout": 5000}, "com.slow"]"#);
    caller.send(r#"[48, 2, {"timeout": 9000}, "com.slow"]"#);
    caller.send(r#"[48, 3, {"timeout": 100}, "com.slow"]"#);
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
}

#[test]
fn progressive_invocation_needs_the_caller_feature_and_a_callee_that_can_cancel() {
    let router = router();
    let streaming = json!({"progressive_call_invocations": true, "progressive_call_results": true});
    let (mut no_cancel, _) =
        Client::join_with_roles(&router, "realm1", callee_roles(streaming.clone()));
    register(&mut no_cancel, json!({}), "com.upload");
    let (mut caller, _) = Client::join_with_roles(&router, "realm1", streaming_caller());
    caller.send(r#"[48, 1, {"progress": true}, "com.upload", ["chunk"]]"#);
    assert_eq!(caller.recv().expect("ERROR")[4], "wamp.error.feature_not_supported");
    let (mut unannounced, _) = Client::join_with_roles(&router, "realm1", json!({"caller": {}}));
    assert_eq!(
        unannounced.try_send(r#"[48, 1, {"progress": true}, "com.upload", ["chunk"]]"#),
        Status::Closed
    );
    assert_eq!(unannounced.recv().expect("ABORT")[2], "wamp.error.protocol_violation");
}

#[test]
fn passthru_yield_to_a_caller_without_the_feature_is_an_error_for_both() {
    let router = router();
    let roles = json!({"callee": {"features": {"payload_passthru_mode": true}}});
    let (mut callee, _) = Client::join_with_roles(&router, "realm1", roles);
    let (mut caller, _) = Client::join(&router, "realm1");
    register(&mut callee, json!({}), "com.e2e");
    caller.send(r#"[48, 1, {}, "com.e2e"]"#);
    callee.recv().expect("INVOCATION");
    callee.send(r#"[70, 1, {"ppt_scheme": "wamp"}, ["\u0000AAEC"]]"#);
    let to_callee = callee.recv().expect("ERROR");
    assert_eq!(
        (to_callee[1].clone(), to_callee[4].clone()),
        (json!(70), json!("wamp.error.feature_not_supported"))
    );
    assert_eq!(caller.recv().expect("ERROR")[4], "wamp.error.feature_not_supported");
}
