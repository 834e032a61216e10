//! Entry points shared by the fuzz targets (`fuzz/`) and the tests that replay their corpora,
//! so both check the same properties. Not part of the stable API.

use bytes::Bytes;

use crate::Serializer;
use crate::rawsocket::{FrameHeader, Handshake, MAX_LENGTH};

/// Decodes `data` with `serializer`: a message or an error, never a panic. What decodes must
/// re-encode in every serializer (transcoding may refuse a value, e.g. a map key JSON cannot
/// carry) and decode again.
pub fn decode_round_trip(serializer: Serializer, data: &[u8]) {
    let Ok(message) = serializer.decode(&Bytes::copy_from_slice(data)) else { return };
    for target in Serializer::ALL {
        if let Ok(encoded) = target.encode(&message)
            && let Err(error) = target.decode(&encoded)
        {
            panic!("{target:?} cannot decode what it encoded: {error}");
        }
    }
}

/// RawSocket handshakes and frame headers from arbitrary octets: parse or refuse, never panic;
/// a parsed header re-encodes to the same octets.
pub fn rawsocket_framing(data: &[u8]) {
    for chunk in data.chunks_exact(4) {
        let octets = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let _ = Handshake::parse(octets);
        if let Ok(header) = FrameHeader::parse(octets, MAX_LENGTH) {
            assert_eq!(FrameHeader::encode(header.kind, header.length), octets);
        }
    }
}
