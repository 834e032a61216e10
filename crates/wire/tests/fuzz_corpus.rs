//! Replays the committed fuzz corpora (`fuzz/corpus/`) through the same checks as the fuzz
//! targets, so every input that once found a bug stays fixed.

use std::path::Path;

use junction_wire::{Serializer, fuzzing};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| std::fs::read(entry.expect("readable entry").path()).expect("readable file"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "empty corpus {}", dir.display());
    inputs
}

#[test]
fn decode_corpora_replay_without_panics() {
    for (target, serializer) in [
        ("decode_json", Serializer::Json),
        ("decode_msgpack", Serializer::MsgPack),
        ("decode_cbor", Serializer::Cbor),
    ] {
        for input in corpus(target) {
            fuzzing::decode_round_trip(serializer, &input);
        }
    }
}

#[test]
fn rawsocket_framing_corpus_replays_without_panics() {
    for input in corpus("rawsocket_framing") {
        fuzzing::rawsocket_framing(&input);
    }
}
