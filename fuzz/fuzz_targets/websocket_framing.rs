//! The WebSocket link's framing (RFC 6455, server side) from arbitrary client octets (see
//! junction_transport::fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| junction_transport::fuzzing::websocket_frames(data));
