//! RawSocket framing (spec, "WAMP-over-RawSocket"): the 4-octet handshake and the 4-octet frame
//! header. Pure functions over bytes; the transport does the reading.

use crate::codec::Serializer;

/// The magic first octet of every RawSocket handshake.
pub const MAGIC: u8 = 0x7F;

/// The largest message length a peer can ask for: 2^24 octets.
pub const MAX_LENGTH: usize = 1 << 24;

/// A client's handshake request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The serializer number the client asked for (may be one we do not speak).
    pub serializer_id: u8,
    /// The largest message the client will accept, in octets.
    pub max_length: usize,
}

/// Why a handshake is refused; the number is the spec's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The first octet is not `0x7F`: not RawSocket at all, so the connection is dropped.
    #[error("not a RawSocket handshake")]
    NotRawSocket,
    /// Error 1: the serializer is not supported.
    #[error("serializer unsupported")]
    SerializerUnsupported,
    /// Error 3: the reserved octets are not zero.
    #[error("use of reserved bits")]
    ReservedBits,
    /// Error 4: the router has too many connections.
    #[error("maximum connection count reached")]
    ConnectionLimit,
}

impl HandshakeError {
    /// The 4-octet error reply, or `None` when the connection is simply dropped.
    pub fn reply(self) -> Option<[u8; 4]> {
        let code = match self {
            HandshakeError::NotRawSocket => return None,
            HandshakeError::SerializerUnsupported => 1,
            HandshakeError::ReservedBits => 3,
            HandshakeError::ConnectionLimit => 4,
        };
        Some([MAGIC, code << 4, 0, 0])
    }
}

impl Handshake {
    /// Parses a client's 4-octet request.
    pub fn parse(octets: [u8; 4]) -> Result<(Self, Serializer), HandshakeError> {
        if octets[0] != MAGIC {
            return Err(HandshakeError::NotRawSocket);
        }
        if octets[2] != 0 || octets[3] != 0 {
            return Err(HandshakeError::ReservedBits);
        }
        let handshake = Handshake {
            serializer_id: octets[1] & 0x0F,
            max_length: length_for_exponent(octets[1] >> 4),
        };
        let serializer = Serializer::from_rawsocket_id(handshake.serializer_id)
            .ok_or(HandshakeError::SerializerUnsupported)?;
        Ok((handshake, serializer))
    }

    /// The router's 4-octet reply: the client's serializer, and the largest message the router
    /// accepts (rounded down to a power of two the handshake can express).
    pub fn reply(serializer: Serializer, router_max_length: usize) -> [u8; 4] {
        [MAGIC, (exponent_for_length(router_max_length) << 4) | serializer.rawsocket_id(), 0, 0]
    }
}

fn length_for_exponent(exp: u8) -> usize {
    1 << (9 + usize::from(exp & 0x0F))
}

/// The largest exponent whose length does not exceed `max` (at least 2^9).
fn exponent_for_length(max: usize) -> u8 {
    (0u8..16).rev().find(|e| length_for_exponent(*e) <= max).unwrap_or(0)
}

/// The kind of a RawSocket frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A serialized WAMP message.
    Message,
    /// A PING: the peer must answer with a PONG echoing the payload.
    Ping,
    /// A PONG.
    Pong,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame carries.
    pub kind: FrameKind,
    /// The payload length that follows the header.
    pub length: usize,
}

/// Why a frame header is invalid; each ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The reserved high bits are set.
    #[error("reserved bits set in RawSocket frame header")]
    ReservedBits,
    /// The frame type is not 0, 1 or 2.
    #[error("reserved RawSocket frame type {0}")]
    UnknownKind(u8),
    /// The frame is larger than the limit agreed in the handshake.
    #[error("RawSocket frame of {length} octets exceeds the limit of {limit}")]
    TooLong {
        /// The announced length.
        length: usize,
        /// The agreed limit.
        limit: usize,
    },
}

impl FrameHeader {
    /// Parses a header, refusing frames longer than `limit` before anything is buffered.
    pub fn parse(octets: [u8; 4], limit: usize) -> Result<Self, FrameError> {
        let first = octets[0];
        if first & 0xF0 != 0 {
            return Err(FrameError::ReservedBits);
        }
        let kind = match first & 0x07 {
            0 => FrameKind::Message,
            1 => FrameKind::Ping,
            2 => FrameKind::Pong,
            other => return Err(FrameError::UnknownKind(other)),
        };
        let low =
            (usize::from(octets[1]) << 16) | (usize::from(octets[2]) << 8) | usize::from(octets[3]);
        let length = if first & 0x08 != 0 { MAX_LENGTH + low } else { low };
        if length > limit {
            return Err(FrameError::TooLong { length, limit });
        }
        Ok(Self { kind, length })
    }

    /// Encodes a header for a payload of `length` octets (at most 2^24).
    pub fn encode(kind: FrameKind, length: usize) -> [u8; 4] {
        let t = match kind {
            FrameKind::Message => 0,
            FrameKind::Ping => 1,
            FrameKind::Pong => 2,
        };
        let x = if length >= MAX_LENGTH { 0x08 } else { 0 };
        let low = length & 0x00FF_FFFF;
        [t | x, (low >> 16) as u8, (low >> 8) as u8, low as u8]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_with_json_and_max_length_is_accepted() {
        let (hs, ser) = Handshake::parse([0x7F, 0xF1, 0, 0]).expect("valid");
        assert_eq!(ser, Serializer::Json);
        assert_eq!(hs.max_length, 1 << 24);
        let (hs, ser) = Handshake::parse([0x7F, 0x02, 0, 0]).expect("valid");
        assert_eq!(ser, Serializer::MsgPack);
        assert_eq!(hs.max_length, 512);
    }

    #[test]
    fn handshake_with_unknown_serializer_gets_error_one() {
        let err = Handshake::parse([0x7F, 0xF5, 0, 0]).unwrap_err();
        assert_eq!(err, HandshakeError::SerializerUnsupported);
        assert_eq!(err.reply(), Some([0x7F, 0x10, 0, 0]));
    }

    #[test]
    fn handshake_with_reserved_octets_gets_error_three() {
        assert_eq!(
            Handshake::parse([0x7F, 0xF1, 0, 1]).unwrap_err().reply(),
            Some([0x7F, 0x30, 0, 0])
        );
    }

    #[test]
    fn reply_rounds_router_limit_down_to_a_power_of_two() {
        assert_eq!(Handshake::reply(Serializer::Cbor, 1 << 20), [0x7F, 0xB3, 0, 0]);
        assert_eq!(Handshake::reply(Serializer::Json, 1_000_000), [0x7F, 0xA1, 0, 0]);
        assert_eq!(Handshake::reply(Serializer::Json, 100), [0x7F, 0x01, 0, 0]);
    }

    #[test]
    fn frame_header_round_trips_including_the_sixteen_mebibyte_case() {
        for (kind, len) in
            [(FrameKind::Message, 0), (FrameKind::Ping, 300), (FrameKind::Pong, MAX_LENGTH)]
        {
            let header = FrameHeader::encode(kind, len);
            assert_eq!(
                FrameHeader::parse(header, MAX_LENGTH),
                Ok(FrameHeader { kind, length: len })
            );
        }
    }

    #[test]
    fn frame_over_the_limit_or_with_reserved_bits_is_refused() {
        assert_eq!(
            FrameHeader::parse([0, 0, 2, 1], 512),
            Err(FrameError::TooLong { length: 513, limit: 512 })
        );
        assert_eq!(FrameHeader::parse([0x10, 0, 0, 1], 512), Err(FrameError::ReservedBits));
        assert_eq!(FrameHeader::parse([0x03, 0, 0, 1], 512), Err(FrameError::UnknownKind(3)));
    }
}
