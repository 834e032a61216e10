use serde_json::json;

use super::harness::{Client, router};
use crate::Status;

#[test]
fn subscribers_of_one_topic_share_one_subscription_id() {
    let router = router();
    let (mut a, _) = Client::join(&router, "realm1");
    let (mut b, _) = Client::join(&router, "realm1");
    a.send(r#"[32, 1, {}, "com.topic"]"#);
    b.send(r#"[32, 7, {}, "com.topic"]"#);
    let sa = a.recv().expect("SUBSCRIBED");
    let sb = b.recv().expect("SUBSCRIBED");
    assert_eq!((sa[0].clone(), sa[1].clone()), (json!(33), json!(1)));
    assert_eq!(sb[1], 7);
    assert_eq!(sa[2], sb[2]);
}

#[test]
fn event_reaches_subscribers_but_not_the_publisher_by_default() {
    let router = router();
    let (mut sub, _) = Client::join(&router, "realm1");
    let (mut publisher, _) = Client::join(&router, "realm1");
    sub.send(r#"[32, 1, {}, "com.topic"]"#);
    publisher.send(r#"[32, 1, {}, "com.topic"]"#);
    let sid = sub.recv().expect("SUBSCRIBED")[2].clone();
    publisher.recv();
    publisher.send(r#"[16, 2, {}, "com.topic", [1, "two"], {"k": "v"}]"#);
    let event = sub.recv().expect("EVENT");
    assert_eq!(event[0], 36);
    assert_eq!(event[1], sid);
    assert_eq!(event[4], json!([1, "two"]));
    assert_eq!(event[5], json!({"k": "v"}));
    publisher.assert_silent();
}

#[test]
fn exclude_me_false_delivers_to_the_publisher_too() {
    let router = router();
    let (mut c, _) = Client::join(&router, "realm1");
    c.send(r#"[32, 1, {}, "com.topic"]"#);
    c.recv();
    c.send(r#"[16, 2, {"exclude_me": false}, "com.topic", ["x"]]"#);
    assert_eq!(c.recv().expect("EVENT")[4], json!(["x"]));
}

#[test]
fn acknowledged_publish_gets_published_with_the_publication_id_of_the_event() {
    let router = router();
    let (mut sub, _) = Client::join(&router, "realm1");
    let (mut publisher, _) = Client::join(&router, "realm1");
    sub.send(r#"[32, 1, {}, "com.topic"]"#);
    sub.recv();
    publisher.send(r#"[16, 9, {"acknowledge": true}, "com.topic"]"#);
    let published = publisher.recv().expect("PUBLISHED");
    assert_eq!(published[0], 17);
    assert_eq!(published[1], 9);
    assert_eq!(sub.recv().expect("EVENT")[2], published[2]);
}

#[test]
fn unacknowledged_publish_gets_no_reply() {
    let router = router();
    let (mut publisher, _) = Client::join(&router, "realm1");
    publisher.send(r#"[16, 9, {}, "com.topic"]"#);
    publisher.assert_silent();
}

#[test]
fn invalid_topic_gets_invalid_uri_and_the_session_stays_up() {
    let router = router();
    let (mut c, _) = Client::join(&router, "realm1");
    assert_eq!(c.try_send(r#"[32, 1, {}, "com..topic"]"#), Status::Open);
    let error = c.recv().expect("ERROR");
    assert_eq!(error[0], 8);
    assert_eq!(error[1], 32);
    assert_eq!(error[4], "wamp.error.invalid_uri");
    assert_eq!(c.try_send(r#"[16, 2, {"acknowledge": true}, "bad topic"]"#), Status::Open);
    assert_eq!(c.recv().expect("ERROR")[4], "wamp.error.invalid_uri");
    assert_eq!(
        c.try_send(r#"[16, 3, {"acknowledge": true}, "wamp.session.on_join"]"#),
        Status::Open
    );
    assert_eq!(c.recv().expect("ERROR")[4], "wamp.error.invalid_uri");
    c.send(r#"[32, 4, {}, "com.topic"]"#);
    assert_eq!(c.recv().expect("SUBSCRIBED")[0], 33);
}

#[test]
fn unsubscribe_stops_delivery_and_a_second_unsubscribe_gets_no_such_subscription() {
    let router = router();
    let (mut sub, _) = Client::join(&router, "realm1");
    let (mut publisher, _) = Client::join(&router, "realm1");
    sub.send(r#"[32, 1, {}, "com.topic"]"#);
    let sid = sub.recv().expect("SUBSCRIBED")[2].as_u64().expect("id");
    sub.send(&format!("[34, 2, {sid}]"));
    assert_eq!(sub.recv().expect("UNSUBSCRIBED"), json!([35, 2]));
    publisher.send(r#"[16, 1, {}, "com.topic"]"#);
    sub.assert_silent();
    sub.send(&format!("[34, 3, {sid}]"));
    assert_eq!(sub.recv().expect("ERROR")[4], "wamp.error.no_such_subscription");
}

#[test]
fn subscriber_on_another_realm_gets_no_event() {
    let router = router();
    let (mut other, _) = Client::join(&router, "realm2");
    let (mut publisher, _) = Client::join(&router, "realm1");
    other.send(r#"[32, 1, {}, "com.topic"]"#);
    other.recv();
    publisher.send(r#"[16, 1, {}, "com.topic"]"#);
    other.assert_silent();
}

#[test]
fn leaving_session_loses_its_subscriptions() {
    let router = router();
    let (mut sub, _) = Client::join(&router, "realm1");
    sub.send(r#"[32, 1, {}, "com.topic"]"#);
    sub.recv();
    sub.disconnect();
    let realm = router.realm(&"realm1".into()).expect("realm");
    assert_eq!(realm.broker.subscription_count(), 0);
    assert_eq!(realm.session_count(), 0);
}

#[test]
fn black_and_white_lists_combine() {
    let router = router();
    let (mut a, a_id) = Client::join(&router, "realm1");
    let (mut b, b_id) = Client::join(&router, "realm1");
    let (mut publisher, _) = Client::join(&router, "realm1");
    for c in [&mut a, &mut b] {
        c.send(r#"[32, 1, {}, "com.topic"]"#);
        c.recv();
    }
    publisher.send(&format!(r#"[16, 1, {{"exclude": [{a_id}]}}, "com.topic"]"#));
    a.assert_silent();
    assert_eq!(b.recv().expect("EVENT")[0], 36);
    publisher.send(&format!(r#"[16, 2, {{"eligible": [{a_id}, {b_id}], "exclude_authrole": ["anonymous"]}}, "com.topic"]"#));
    a.assert_silent();
    b.assert_silent();
}

#[test]
fn prefix_and_wildcard_subscriptions_get_the_topic_in_details() {
    let router = router();
    let (mut sub, _) = Client::join(&router, "realm1");
    let (mut publisher, _) = Client::join(&router, "realm1");
    sub.send(r#"[32, 1, {"match": "prefix"}, "com.app"]"#);
    sub.send(r#"[32, 2, {"match": "wildcard"}, "com..update"]"#);
    let prefix = sub.recv().expect("SUBSCRIBED")[2].clone();
    let wildcard = sub.recv().expect("SUBSCRIBED")[2].clone();
    publisher.send(r#"[16, 1, {}, "com.app.update"]"#);
    let mut events = [sub.recv().expect("EVENT"), sub.recv().expect("EVENT")];
    events.sort_by_key(|e| e[1].as_u64());
    let mut expected = [prefix, wildcard];
    expected.sort_by_key(|v| v.as_u64());
    assert_eq!(events.iter().map(|e| e[1].clone()).collect::<Vec<_>>(), expected);
    assert!(events.iter().all(|e| e[3]["topic"] == "com.app.update"));
}
