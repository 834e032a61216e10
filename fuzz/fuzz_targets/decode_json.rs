//! Any bytes: decoding must return a message or an error, never panic; what decodes must
//! re-encode in every serializer, and decode again.
#![no_main]

use bytes::Bytes;
use junction_wire::Serializer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(message) = Serializer::Json.decode(&bytes) {
        for target in Serializer::ALL {
            // Transcoding may fail (e.g. a map key JSON cannot carry) but must not panic.
            if let Ok(encoded) = target.encode(&message) {
                target.decode(&encoded).expect("what we encode decodes");
            }
        }
    }
});
