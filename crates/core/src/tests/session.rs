use serde_json::json;

use super::harness::{Client, router};
use crate::Status;

#[test]
fn welcome_describes_the_session_and_announces_router_roles() {
    let router = router();
    let mut client = Client::connect(&router);
    assert_eq!(
        client.try_send(r#"[1, "realm1", {"roles": {"caller": {}}, "agent": "test-agent"}]"#),
        Status::Open
    );
    let welcome = client.recv().expect("WELCOME");
    let details = &welcome[2];
    assert_eq!(details["realm"], "realm1");
    assert_eq!(details["authrole"], "anonymous");
    assert_eq!(details["authmethod"], "anonymous");
    assert_eq!(details["authprovider"], "junction");
    assert!(details["authid"].is_string());
    assert!(details["roles"]["broker"]["features"].is_object());
    assert!(details["roles"]["dealer"]["features"].is_object());
    assert_eq!(client.session.info().expect("established").agent.as_deref(), Some("test-agent"));
}

#[test]
fn hello_for_unknown_realm_aborts_with_no_such_realm_naming_it() {
    let router = router();
    let mut client = Client::connect(&router);
    assert_eq!(client.try_send(r#"[1, "nope", {"roles": {"caller": {}}}]"#), Status::Closed);
    let abort = client.recv().expect("ABORT");
    assert_eq!(abort[0], 3);
    assert_eq!(abort[2], "wamp.error.no_such_realm");
    assert!(abort[1]["message"].as_str().expect("message").contains("\"nope\""));
}

#[test]
fn hello_without_roles_is_a_protocol_violation() {
    let router = router();
    let mut client = Client::connect(&router);
    assert_eq!(client.try_send(r#"[1, "realm1", {}]"#), Status::Closed);
    assert_eq!(client.recv().expect("ABORT")[2], "wamp.error.protocol_violation");
}

#[test]
fn hello_offering_only_other_auth_methods_gets_no_matching_auth_method() {
    let router = router();
    let mut client = Client::connect(&router);
    assert_eq!(
        client.try_send(r#"[1, "realm1", {"roles": {"caller": {}}, "authmethods": ["ticket"]}]"#),
        Status::Closed
    );
    let abort = client.recv().expect("ABORT");
    assert_eq!(abort[2], "wamp.error.no_matching_auth_method");
    assert!(abort[1]["message"].as_str().expect("message").contains("ticket"));
}

#[test]
fn call_before_hello_is_a_protocol_violation() {
    let router = router();
    let mut client = Client::connect(&router);
    assert_eq!(client.try_send(r#"[48, 1, {}, "com.example.add"]"#), Status::Closed);
    let abort = client.recv().expect("ABORT");
    assert_eq!(abort[0], 3);
    assert_eq!(abort[2], "wamp.error.protocol_violation");
    assert!(abort[1]["message"].as_str().expect("message").contains("expected HELLO, got CALL"));
}

#[test]
fn hello_twice_is_a_protocol_violation_and_detaches_the_session() {
    let router = router();
    let (mut client, _) = Client::join(&router, "realm1");
    client.send(r#"[32, 1, {}, "com.topic"]"#);
    client.recv();
    assert_eq!(client.try_send(r#"[1, "realm1", {"roles": {"caller": {}}}]"#), Status::Closed);
    assert_eq!(client.recv().expect("ABORT")[2], "wamp.error.protocol_violation");
    let realm = router.realm(&"realm1".into()).expect("realm");
    assert_eq!(realm.session_count(), 0);
    assert_eq!(realm.broker.subscription_count(), 0);
}

#[test]
fn client_goodbye_is_answered_with_goodbye_and_out() {
    let router = router();
    let (mut client, _) = Client::join(&router, "realm1");
    assert_eq!(client.try_send(r#"[6, {}, "wamp.close.normal"]"#), Status::Closed);
    assert_eq!(client.recv().expect("GOODBYE"), json!([6, {}, "wamp.close.goodbye_and_out"]));
    assert_eq!(router.session_count(), 0);
}

#[test]
fn closing_a_realm_sends_goodbye_and_waits_for_the_reply() {
    let router = router();
    let (mut client, _) = Client::join(&router, "realm1");
    router.realm(&"realm1".into()).expect("realm").close_all(
        "wamp.close.system_shutdown",
        "bye",
        std::time::SystemTime::now(),
    );
    let goodbye = client.recv().expect("GOODBYE");
    assert_eq!(goodbye[0], 6);
    assert_eq!(goodbye[2], "wamp.close.system_shutdown");
    // The driver turns the queued Close into the GOODBYE it writes; the session then waits.
    let written = client.session.close(
        crate::Now::read(),
        junction_wire::message::Goodbye {
            details: Default::default(),
            reason: "wamp.close.system_shutdown".into(),
        },
    );
    assert!(written.is_some());
    assert_eq!(router.session_count(), 0);
    assert_eq!(client.try_send(r#"[48, 1, {}, "ignored.after.goodbye"]"#), Status::Open);
    assert_eq!(client.try_send(r#"[6, {}, "wamp.close.goodbye_and_out"]"#), Status::Closed);
}

#[test]
fn malformed_bytes_abort_with_protocol_violation() {
    let router = router();
    let (mut client, _) = Client::join(&router, "realm1");
    let error = junction_wire::DecodeError::UnknownType(99);
    assert_eq!(client.session.reject(crate::Now::read(), &error), Status::Closed);
    let abort = client.recv().expect("ABORT");
    assert_eq!(abort[2], "wamp.error.protocol_violation");
    assert!(abort[1]["message"].as_str().expect("message").contains("unknown message type 99"));
    assert_eq!(router.session_count(), 0);
}

#[test]
fn messages_only_a_router_sends_are_protocol_violations_from_a_client() {
    for m in [
        r#"[36, 1, 2, {}]"#,
        r#"[50, 1, {}]"#,
        r#"[2, 1, {}]"#,
        r#"[8, 48, 1, {}, "wamp.error.x"]"#,
    ] {
        let router = router();
        let (mut client, _) = Client::join(&router, "realm1");
        assert_eq!(client.try_send(m), Status::Closed, "{m}");
        assert_eq!(client.recv().expect("ABORT")[2], "wamp.error.protocol_violation", "{m}");
    }
}
