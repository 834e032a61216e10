//! Replays the committed `session` fuzz corpus (`fuzz/corpus/session`) through the same checks
//! as the fuzz target.

use std::path::Path;

#[test]
fn session_corpus_replays_without_panics_and_the_bystander_survives() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/session");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let input = std::fs::read(entry.expect("readable entry").path()).expect("readable file");
        junction_core::fuzzing::drive_session(&input);
        count += 1;
    }
    assert!(count > 0, "empty corpus");
}
