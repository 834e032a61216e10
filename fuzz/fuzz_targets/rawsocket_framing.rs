//! RawSocket handshakes and frame headers from arbitrary octets: parse or refuse, never panic;
//! a parsed header re-encodes to the same octets.
#![no_main]

use junction_wire::rawsocket::{FrameHeader, Handshake, MAX_LENGTH};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for chunk in data.chunks_exact(4) {
        let octets = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let _ = Handshake::parse(octets);
        if let Ok(header) = FrameHeader::parse(octets, MAX_LENGTH) {
            assert_eq!(FrameHeader::encode(header.kind, header.length), octets);
        }
    }
});
