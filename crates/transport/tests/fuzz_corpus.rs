//! Replays the committed `websocket_framing` fuzz corpus (`fuzz/corpus/websocket_framing`)
//! through the same checks as the fuzz target.

use std::path::Path;

#[test]
fn websocket_framing_corpus_replays_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/websocket_framing");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let input = std::fs::read(entry.expect("readable entry").path()).expect("readable file");
        junction_transport::fuzzing::websocket_frames(&input);
        count += 1;
    }
    assert!(count > 0, "empty corpus");
}
