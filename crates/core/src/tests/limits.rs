use std::sync::Arc;

use serde_json::json;

use super::harness::Client;
use crate::{Limits, RealmConfig, Router, RouterConfig, Status};

fn limited(limits: Limits) -> Arc<Router> {
    Router::new(RouterConfig {
        realms: vec![RealmConfig::open("realm1")],
        agent: "test".into(),
        limits,
        admin_realm: None,
    })
}

#[test]
fn sessions_beyond_the_realm_limit_are_aborted_with_a_message() {
    let router = limited(Limits { max_sessions_per_realm: Some(1), ..Limits::default() });
    let (_first, _) = Client::join(&router, "realm1");
    let mut second = Client::connect(&router);
    assert_eq!(second.try_send(r#"[1, "realm1", {"roles": {"caller": {}}}]"#), Status::Closed);
    let abort = second.recv().expect("ABORT");
    assert_eq!(abort[2], "wamp.error.not_authorized");
    assert!(abort[1]["message"].as_str().unwrap().contains("at most 1 sessions on this realm"));
}

#[test]
fn subscriptions_registrations_and_pending_calls_are_limited_per_session() {
    let limits = Limits {
        max_subscriptions: Some(1),
        max_registrations: Some(1),
        max_pending_calls: Some(1),
        ..Limits::default()
    };
    let router = limited(limits);
    let (mut c, _) = Client::join(&router, "realm1");
    c.send(r#"[32, 1, {}, "com.a"]"#);
    assert_eq!(c.recv().unwrap()[0], 33);
    // The same subscription again is not a new one.
    c.send(r#"[32, 2, {}, "com.a"]"#);
    assert_eq!(c.recv().unwrap()[0], 33);
    c.send(r#"[32, 3, {}, "com.b"]"#);
    let refused = c.recv().unwrap();
    assert_eq!(
        (refused[0].clone(), refused[4].clone()),
        (json!(8), json!("wamp.error.not_authorized"))
    );
    c.send(r#"[64, 4, {}, "com.p"]"#);
    assert_eq!(c.recv().unwrap()[0], 65);
    c.send(r#"[64, 5, {}, "com.q"]"#);
    assert_eq!(c.recv().unwrap()[4], "wamp.error.not_authorized");
    let (mut caller, _) = Client::join(&router, "realm1");
    caller.send(r#"[48, 1, {}, "com.p"]"#);
    caller.send(r#"[48, 2, {}, "com.p"]"#);
    let error = caller.recv().unwrap();
    assert_eq!(
        (error[2].clone(), error[4].clone()),
        (json!(2), json!("wamp.error.not_authorized"))
    );
    assert!(error[5][0].as_str().unwrap().contains("pending calls"));
}

#[test]
fn oversize_payloads_get_payload_size_exceeded_and_the_session_stays() {
    let router = limited(Limits { max_payload_size: Some(16), ..Limits::default() });
    let (mut callee, _) = Client::join(&router, "realm1");
    let (mut caller, _) = Client::join(&router, "realm1");
    callee.send(r#"[64, 1, {}, "com.echo"]"#);
    callee.recv();
    caller.send(r#"[48, 1, {}, "com.echo", ["this payload is far too large"]]"#);
    assert_eq!(caller.recv().unwrap()[4], "wamp.error.payload_size_exceeded");
    caller.send(r#"[16, 2, {"acknowledge": true}, "com.t", ["this payload is far too large"]]"#);
    assert_eq!(caller.recv().unwrap()[4], "wamp.error.payload_size_exceeded");
    caller.send(r#"[48, 3, {}, "com.echo", ["ok"]]"#);
    callee.recv().expect("INVOCATION");
    callee.send(r#"[70, 1, {}, ["this result is far too large"]]"#);
    let error = caller.recv().unwrap();
    assert_eq!(
        (error[1].clone(), error[2].clone(), error[4].clone()),
        (json!(48), json!(3), json!("wamp.error.payload_size_exceeded"))
    );
}
