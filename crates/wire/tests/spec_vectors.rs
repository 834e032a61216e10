//! Runs every single-message test vector of the WAMP spec (`tests/vectors`, copied from the spec's
//! `testsuite/`) through every serializer we speak: each byte variant we can decode must give the
//! expected attributes, and re-encoding (in every serializer) must give the same message back.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use junction_wire::{Message, Serializer};
use serde_json::Value as Json;

/// Where each expected attribute stands in the message array, per message type.
fn position(message_type: &str, attribute: &str) -> Option<usize> {
    let fields: &[&str] = match message_type {
        "HELLO" => &["realm", "details"],
        "WELCOME" => &["session_id", "details"],
        "ABORT" | "GOODBYE" => &["details", "reason"],
        "CHALLENGE" => &["method", "extra"],
        "AUTHENTICATE" => &["signature", "extra"],
        "ERROR" => &["request_type", "request_id", "details", "error", "args", "kwargs"],
        "PUBLISH" => &["request_id", "options", "topic", "args", "kwargs"],
        "PUBLISHED" => &["request_id", "publication_id"],
        "SUBSCRIBE" => &["request_id", "options", "topic"],
        "SUBSCRIBED" | "UNSUBSCRIBE" => &["request_id", "subscription_id"],
        "UNSUBSCRIBED" | "UNREGISTERED" => &["request_id"],
        "EVENT" => &["subscription", "publication", "details", "args", "kwargs"],
        "CALL" => &["request_id", "options", "procedure", "args", "kwargs"],
        "CANCEL" | "INTERRUPT" => &["request_id", "options"],
        "RESULT" => &["request_id", "details", "args", "kwargs"],
        "REGISTER" => &["request_id", "options", "procedure"],
        "REGISTERED" | "UNREGISTER" => &["request_id", "registration_id"],
        "INVOCATION" => &["request_id", "registration_id", "details", "args", "kwargs"],
        "YIELD" => &["request_id", "options", "args", "kwargs"],
        _ => return None,
    };
    fields.iter().position(|f| *f == attribute).map(|i| i + 1)
}

/// The message as plain JSON (our JSON encoding read back by serde_json), an independent view.
fn as_json(message: &Message) -> Vec<Json> {
    let bytes = Serializer::Json.encode(message).expect("encodes as JSON");
    serde_json::from_slice(&bytes).expect("our JSON is valid JSON")
}

fn check_attributes(
    file: &Path,
    message_type: &str,
    expected: &serde_json::Map<String, Json>,
    msg: &Message,
) {
    let array = as_json(msg);
    for (attribute, want) in expected {
        if attribute == "message_type" {
            assert_eq!(Some(msg.message_type().code()), want.as_u64(), "{}", file.display());
            continue;
        }
        let transparent = expected.get("payload").is_some_and(|p| !p.is_null());
        if transparent && attribute == "args" {
            continue; // the transparent payload stands where Arguments would
        }
        if attribute == "payload" {
            let at = position(message_type, "args").expect("payload-bearing message");
            let is_binary =
                array.get(at).and_then(Json::as_str).is_some_and(|s| s.starts_with('\0'));
            assert_eq!(is_binary, transparent, "{}: transparent payload", file.display());
            continue;
        }
        let got = match (message_type, attribute.as_str()) {
            ("HELLO" | "WELCOME", "roles") => array.get(2).and_then(|d| d.get("roles")).cloned(),
            _ => match position(message_type, attribute) {
                Some(i) => array.get(i).cloned(),
                None => continue, // e.g. `payload`, an attribute of payload-transparency mode
            },
        };
        let got = got.unwrap_or(Json::Null);
        // An absent payload element reads as null; an empty placeholder list as an absent one.
        let got = if attribute == "args" && got == Json::Array(vec![]) && want.is_null() {
            Json::Null
        } else {
            got
        };
        assert_eq!(&got, want, "{}: attribute {attribute}", file.display());
    }
}

fn vector_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/singlemessage");
    let mut files = Vec::new();
    for profile in ["basic", "advanced"] {
        for entry in std::fs::read_dir(root.join(profile)).expect("vector folder exists") {
            files.push(entry.expect("readable").path());
        }
    }
    files.sort();
    files
}

#[test]
fn every_spec_vector_decodes_in_every_serializer_and_round_trips() {
    let mut checked = 0;
    for file in vector_files() {
        let doc: Json =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("readable")).expect("JSON");
        let message_type = doc["wamp_message_type"].as_str().expect("type name");
        if message_type == "EVENT_RECEIVED" {
            continue; // An autobahn extension message (code 337) a router does not accept.
        }
        for sample in doc["samples"].as_array().expect("samples") {
            let (Some(serializers), Some(expected)) =
                (sample.get("serializers"), sample["expected_attributes"].as_object())
            else {
                continue; // option-validation samples are router checks, run in junction-core
            };
            for serializer in Serializer::ALL {
                let Some(variants) = serializers.get(serializer.name()).and_then(Json::as_array)
                else {
                    continue;
                };
                let mut decoded = Vec::new();
                for variant in variants {
                    let bytes = Bytes::from(
                        hex::decode(variant["bytes_hex"].as_str().expect("hex"))
                            .expect("valid hex"),
                    );
                    match serializer.decode(&bytes) {
                        Ok(msg) => decoded.push(msg),
                        Err(e) => panic!(
                            "{} ({}): {:?} variant failed: {e}",
                            file.display(),
                            sample["description"],
                            serializer
                        ),
                    }
                }
                for msg in decoded {
                    check_attributes(&file, message_type, expected, &msg);
                    for target in Serializer::ALL {
                        let bytes = target.encode(&msg).expect("encodes");
                        let back = target.decode(&bytes).expect("decodes what it encoded");
                        assert_eq!(
                            as_json(&back),
                            as_json(&msg),
                            "{}: {serializer:?} → {target:?}",
                            file.display()
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} variants checked");
}
