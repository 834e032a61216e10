//! Decoding arbitrary bytes with the json codec (see junction_wire::fuzzing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| junction_wire::fuzzing::decode_round_trip(junction_wire::Serializer::Json, data));
