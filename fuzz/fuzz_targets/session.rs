//! The session state machine driven by arbitrary message sequences (see junction_core::fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| junction_core::fuzzing::drive_session(data));
