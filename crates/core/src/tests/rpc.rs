use serde_json::json;

use super::harness::{Client, router};

/// A callee with `com.add` registered, and a caller, on realm1.
fn callee_and_caller() -> (std::sync::Arc<crate::Router>, Client, Client, u64) {
    let router = router();
    let (mut callee, _) = Client::join(&router, "realm1");
    let (caller, _) = Client::join(&router, "realm1");
    callee.send(r#"[64, 1, {}, "com.add"]"#);
    let registered = callee.recv().expect("REGISTERED");
    assert_eq!(registered[0], 65);
    let registration = registered[2].as_u64().expect("id");
    (router, callee, caller, registration)
}

#[test]
fn call_reaches_the_callee_and_its_yield_reaches_the_caller() {
    let (_router, mut callee, mut caller, registration) = callee_and_caller();
    caller.send(r#"[48, 5, {}, "com.add", [2, 3], {"x": true}]"#);
    let invocation = callee.recv().expect("INVOCATION");
    assert_eq!(invocation, json!([68, 1, registration, {}, [2, 3], {"x": true}]));
    callee.send(r#"[70, 1, {}, [5]]"#);
    assert_eq!(caller.recv().expect("RESULT"), json!([50, 5, {}, [5]]));
}

#[test]
fn invocation_request_ids_count_up_from_one_per_callee() {
    let (_router, callee, mut caller, _) = callee_and_caller();
    for request in 1..=3 {
        caller.send(&format!(r#"[48, {request}, {{}}, "com.add"]"#));
        assert_eq!(callee.recv().expect("INVOCATION")[1], request);
    }
}

#[test]
fn call_to_unknown_procedure_returns_no_such_procedure() {
    let router = router();
    let (mut caller, _) = Client::join(&router, "realm1");
    caller.send(r#"[48, 1, {}, "com.nothing"]"#);
    let error = caller.recv().expect("ERROR");
    assert_eq!(error[0], 8);
    assert_eq!(error[1], 48);
    assert_eq!(error[4], "wamp.error.no_such_procedure");
    assert!(error[5][0].as_str().expect("message").contains("com.nothing"));
}

#[test]
fn second_register_of_a_procedure_gets_procedure_already_exists() {
    let (router, _callee, _, _) = callee_and_caller();
    let (mut other, _) = Client::join(&router, "realm1");
    other.send(r#"[64, 1, {}, "com.add"]"#);
    assert_eq!(other.recv().expect("ERROR")[4], "wamp.error.procedure_already_exists");
}

#[test]
fn register_in_the_wamp_namespace_gets_invalid_uri() {
    let router = router();
    let (mut callee, _) = Client::join(&router, "realm1");
    callee.send(r#"[64, 1, {}, "wamp.session.get"]"#);
    assert_eq!(callee.recv().expect("ERROR")[4], "wamp.error.invalid_uri");
}

#[test]
fn unregister_of_unknown_registration_gets_no_such_registration() {
    let (_router, mut callee, mut caller, registration) = callee_and_caller();
    callee.send(r#"[66, 2, 12345]"#);
    assert_eq!(callee.recv().expect("ERROR")[4], "wamp.error.no_such_registration");
    callee.send(&format!("[66, 3, {registration}]"));
    assert_eq!(callee.recv().expect("UNREGISTERED"), json!([67, 3]));
    caller.send(r#"[48, 1, {}, "com.add"]"#);
    assert_eq!(caller.recv().expect("ERROR")[4], "wamp.error.no_such_procedure");
}

#[test]
fn application_error_passes_through_with_args_and_kwargs() {
    let (_router, mut callee, mut caller, _) = callee_and_caller();
    caller.send(r#"[48, 7, {}, "com.add", ["a"]]"#);
    callee.recv();
    callee.send(r#"[8, 68, 1, {"x": 1}, "com.error.bad_input", ["not a number"], {"field": "a"}]"#);
    assert_eq!(
        caller.recv().expect("ERROR"),
        json!([8, 48, 7, {"x": 1}, "com.error.bad_input", ["not a number"], {"field": "a"}])
    );
}

#[test]
fn callee_leaving_fails_its_pending_calls_with_canceled() {
    let (_router, mut callee, mut caller, _) = callee_and_caller();
    caller.send(r#"[48, 3, {}, "com.add"]"#);
    callee.recv();
    callee.disconnect();
    let error = caller.recv().expect("ERROR");
    assert_eq!(error[2], 3);
    assert_eq!(error[4], "wamp.error.canceled");
}

#[test]
fn caller_leaving_interrupts_and_forgets_its_invocations() {
    let (_router, mut callee, mut caller, _) = callee_and_caller();
    caller.send(r#"[48, 3, {}, "com.add"]"#);
    callee.recv();
    caller.disconnect();
    assert_eq!(callee.recv().expect("INTERRUPT"), json!([69, 1, {"mode": "killnowait"}]));
    // The late answer is dropped without harming the callee.
    assert_eq!(callee.try_send(r#"[70, 1, {}, [5]]"#), crate::Status::Open);
}

#[test]
fn callee_leaving_fails_its_pending_calls_in_request_order() {
    let (_router, mut callee, mut caller, _) = callee_and_caller();
    for request in [7, 3, 5] {
        caller.send(&format!(r#"[48, {request}, {{}}, "com.add"]"#));
        callee.recv();
    }
    callee.disconnect();
    let failed: Vec<_> = (0..3).map(|_| caller.recv().expect("ERROR")[2].clone()).collect();
    assert_eq!(failed, [json!(7), json!(3), json!(5)]);
}

#[test]
fn sessions_that_left_leave_nothing_in_the_table_of_calls() {
    let (router, mut callee, mut caller, _) = callee_and_caller();
    let realm = router.realm(&"realm1".into()).expect("realm1");
    caller.send(r#"[48, 1, {}, "com.add"]"#);
    caller.send(r#"[48, 2, {}, "com.add"]"#);
    callee.recv();
    callee.recv();
    callee.send(r#"[70, 1, {}, [5]]"#);
    caller.recv();
    // Both stay indexed (the caller's call 2 is in flight).
    assert_eq!(realm.dealer.sessions_with_calls(), 2);
    caller.disconnect();
    // The late answer to call 2 finds nothing, and the callee's emptied index is kept.
    callee.send(r#"[70, 2, {}, [5]]"#);
    callee.disconnect();
    assert_eq!(realm.dealer.sessions_with_calls(), 0);
}

#[test]
fn yield_for_an_invocation_never_issued_is_a_protocol_violation() {
    let (_router, mut callee, _caller, _) = callee_and_caller();
    assert_eq!(callee.try_send(r#"[70, 99, {}]"#), crate::Status::Closed);
    assert_eq!(callee.recv().expect("ABORT")[2], "wamp.error.protocol_violation");
}

#[test]
fn progressive_results_reach_a_caller_that_asked_for_them() {
    let (_router, mut callee, mut caller, _) = callee_and_caller();
    caller.send(r#"[48, 1, {"receive_progress": true}, "com.add"]"#);
    assert_eq!(callee.recv().expect("INVOCATION")[3], json!({"receive_progress": true}));
    callee.send(r#"[70, 1, {"progress": true}, ["p1"]]"#);
    callee.send(r#"[70, 1, {}, ["done"]]"#);
    assert_eq!(caller.recv().expect("RESULT"), json!([50, 1, {"progress": true}, ["p1"]]));
    assert_eq!(caller.recv().expect("RESULT"), json!([50, 1, {}, ["done"]]));
}

#[test]
fn cancel_killnowait_answers_the_caller_and_interrupts_the_callee() {
    let (_router, callee, mut caller, _) = callee_and_caller();
    caller.send(r#"[48, 1, {}, "com.add"]"#);
    callee.recv();
    caller.send(r#"[49, 1, {"mode": "killnowait"}]"#);
    assert_eq!(caller.recv().expect("ERROR")[4], "wamp.error.canceled");
    assert_eq!(callee.recv().expect("INTERRUPT"), json!([69, 1, {"mode": "killnowait"}]));
}

#[test]
fn shared_registration_round_robins_between_callees() {
    let router = router();
    let (mut a, _) = Client::join(&router, "realm1");
    let (mut b, _) = Client::join(&router, "realm1");
    let (mut caller, _) = Client::join(&router, "realm1");
    a.send(r#"[64, 1, {"invoke": "roundrobin"}, "com.rr"]"#);
    b.send(r#"[64, 1, {"invoke": "roundrobin"}, "com.rr"]"#);
    assert_eq!(a.recv().expect("REGISTERED")[2], b.recv().expect("REGISTERED")[2]);
    for request in 1..=4 {
        caller.send(&format!(r#"[48, {request}, {{}}, "com.rr"]"#));
    }
    assert_eq!([a.recv(), a.recv(), a.recv()].iter().filter(|m| m.is_some()).count(), 2);
    assert_eq!([b.recv(), b.recv(), b.recv()].iter().filter(|m| m.is_some()).count(), 2);
    let (mut c, _) = Client::join(&router, "realm1");
    c.send(r#"[64, 1, {"invoke": "random"}, "com.rr"]"#);
    assert_eq!(c.recv().expect("ERROR")[4], "wamp.error.procedure_already_exists");
}

#[test]
fn exact_registration_wins_over_prefix_and_longest_prefix_over_shorter() {
    let router = router();
    let (mut exact, _) = Client::join(&router, "realm1");
    let (mut short, _) = Client::join(&router, "realm1");
    let (mut long, _) = Client::join(&router, "realm1");
    let (mut caller, _) = Client::join(&router, "realm1");
    exact.send(r#"[64, 1, {}, "com.a.b.c"]"#);
    short.send(r#"[64, 1, {"match": "prefix"}, "com.a"]"#);
    long.send(r#"[64, 1, {"match": "prefix"}, "com.a.b"]"#);
    for c in [&exact, &short, &long] {
        c.recv();
    }
    caller.send(r#"[48, 1, {}, "com.a.b.c"]"#);
    assert_eq!(exact.recv().expect("INVOCATION")[0], 68);
    caller.send(r#"[48, 2, {}, "com.a.b.d"]"#);
    assert_eq!(long.recv().expect("INVOCATION")[3]["procedure"], "com.a.b.d");
    caller.send(r#"[48, 3, {}, "com.a.x"]"#);
    assert_eq!(short.recv().expect("INVOCATION")[3]["procedure"], "com.a.x");
}
