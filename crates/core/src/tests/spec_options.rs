//! The spec's option-validation vectors (`samples` with `wmsg`) for the messages a router
//! receives: PUBLISH and SUBSCRIBE. Valid options are accepted; invalid ones abort the session
//! with `wamp.error.protocol_violation` and a message naming the option.

use std::path::Path;

use serde_json::Value as Json;

use super::harness::{Client, router};
use crate::Status;

fn run(file: &str) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wire/tests/vectors/singlemessage/basic")
        .join(file);
    let doc: Json =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("vector file")).expect("JSON");
    let mut checked = 0;
    for sample in doc["samples"].as_array().expect("samples") {
        let Some(wmsg) = sample.get("wmsg") else {
            continue;
        };
        let description = sample["description"].as_str().unwrap_or_default();
        if wmsg.get(4).is_some_and(Json::is_string) {
            continue; // Autobahn's old `enc_algo` payload format (a bare string payload)
        }
        let router = router();
        let (mut client, _) = Client::join(&router, "realm1");
        let status = client.try_send(&wmsg.to_string());
        // Drain the normal answer (SUBSCRIBED) or take the ABORT.
        let reply = client.recv();
        match sample.get("expected_error") {
            Some(expected) => {
                assert_eq!(status, Status::Closed, "{description}");
                let abort = reply.expect("ABORT");
                assert_eq!(abort[2], "wamp.error.protocol_violation", "{description}");
                let needle = expected["contains"].as_str().expect("contains");
                assert!(
                    abort[1]["message"].as_str().expect("message").contains(needle),
                    "{description}: {abort}"
                );
            }
            None => assert_eq!(status, Status::Open, "{description}: {reply:?}"),
        }
        checked += 1;
    }
    checked
}

#[test]
fn publish_options_vectors_are_accepted_or_refused_as_the_spec_says() {
    assert!(run("publish.json") > 20);
}

#[test]
fn subscribe_options_vectors_are_accepted_or_refused_as_the_spec_says() {
    assert!(run("subscribe.json") > 5);
}
