//! RawSocket handshakes and frame headers from arbitrary octets (see junction_wire::fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| junction_wire::fuzzing::rawsocket_framing(data));
