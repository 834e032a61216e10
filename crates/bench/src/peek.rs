//! Reads the leading integers of a serialized WAMP message without decoding the rest: the
//! message type code, and the request id of a RESULT (`[50, Request, ...]`) or an ERROR
//! (`[8, Type, Request, ...]`). This is all the relay and the busiest load-generator roles look
//! at, so that neither spends its CPU on decoding what it does not need.

use junction_wire::Serializer;

/// The message type code (`[TYPE, ...]`), or `None` when the bytes do not start like a WAMP
/// message.
pub fn message_type(serializer: Serializer, bytes: &[u8]) -> Option<u64> {
    let [code] = leading(serializer, bytes)?;
    Some(code)
}

/// The first `N` elements of the message array, when they are all unsigned integers.
pub fn leading<const N: usize>(serializer: Serializer, bytes: &[u8]) -> Option<[u64; N]> {
    let mut out = [0; N];
    let mut rest = match serializer {
        Serializer::Json => bytes.trim_ascii_start().strip_prefix(b"[")?,
        Serializer::MsgPack => match bytes.split_first()? {
            (0x91..=0x9F, rest) => rest,
            (0xDC, rest) => rest.get(2..)?,
            (0xDD, rest) => rest.get(4..)?,
            _ => return None,
        },
        Serializer::Cbor => match bytes.split_first()? {
            (0x81..=0x97 | 0x9F, rest) => rest,
            (0x98, rest) => rest.get(1..)?,
            (0x99, rest) => rest.get(2..)?,
            (0x9A, rest) => rest.get(4..)?,
            _ => return None,
        },
        _ => return None,
    };
    for slot in &mut out {
        let (value, tail) = match serializer {
            Serializer::Json => json_uint(rest)?,
            Serializer::MsgPack => msgpack_uint(rest)?,
            _ => cbor_uint(rest)?,
        };
        *slot = value;
        rest = tail;
    }
    Some(out)
}

/// An unsigned integer followed by a separator (`,` or `]`), whitespace allowed around both.
fn json_uint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.trim_ascii_start();
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 16 {
        return None;
    }
    let (number, rest) = digits.split_at(len);
    let value = number.iter().fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    let rest = rest.trim_ascii_start();
    let rest = rest.strip_prefix(b",").or_else(|| rest.strip_prefix(b"]").map(|_| &[][..]))?;
    Some((value, rest))
}

fn msgpack_uint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (&marker, rest) = bytes.split_first()?;
    let width = match marker {
        0x00..=0x7F => return Some((u64::from(marker), rest)),
        0xCC => 1,
        0xCD => 2,
        0xCE => 4,
        0xCF => 8,
        _ => return None,
    };
    Some((big_endian(rest.get(..width)?), rest.get(width..)?))
}

fn cbor_uint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (&marker, rest) = bytes.split_first()?;
    let width = match marker {
        0x00..=0x17 => return Some((u64::from(marker), rest)),
        0x18 => 1,
        0x19 => 2,
        0x1A => 4,
        0x1B => 8,
        _ => return None,
    };
    Some((big_endian(rest.get(..width)?), rest.get(width..)?))
}

fn big_endian(octets: &[u8]) -> u64 {
    octets.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

#[cfg(test)]
mod tests {
    use junction_wire::message::Yield;
    use junction_wire::{Dict, Message, Payload, RequestId, Serializer};

    use super::*;

    #[test]
    fn type_code_is_read_in_every_serializer() {
        let message: Message = Yield {
            request: RequestId::new(7).unwrap(),
            options: Dict::new(),
            payload: Payload::default(),
        }
        .into();
        for serializer in Serializer::ALL {
            let bytes = serializer.encode(&message).unwrap();
            assert_eq!(message_type(serializer, &bytes), Some(70), "{serializer:?}");
        }
    }

    #[test]
    fn request_id_of_a_result_and_an_error_is_read_in_every_serializer() {
        use junction_wire::message::{Error, Result as CallResult};
        use junction_wire::{MessageType, Uri};
        let request = RequestId::new(300_000).unwrap();
        let result: Message =
            CallResult { request, details: Dict::new(), payload: Payload::default() }.into();
        let error: Message = Error {
            request_type: MessageType::Call,
            request,
            details: Dict::new(),
            error: Uri::new("wamp.error.no_such_procedure"),
            payload: Payload::default(),
        }
        .into();
        for serializer in Serializer::ALL {
            let bytes = serializer.encode(&result).unwrap();
            assert_eq!(leading(serializer, &bytes), Some([50, 300_000]), "{serializer:?}");
            let bytes = serializer.encode(&error).unwrap();
            assert_eq!(leading(serializer, &bytes), Some([8, 48, 300_000]), "{serializer:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_a_message_array_give_none() {
        assert_eq!(message_type(Serializer::Json, b"{\"a\":1}"), None);
        assert_eq!(message_type(Serializer::MsgPack, &[0x80]), None);
        assert_eq!(message_type(Serializer::Cbor, &[0xA0]), None);
        assert_eq!(message_type(Serializer::Cbor, &[]), None);
    }
}
