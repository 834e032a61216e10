//! MessagePack.

use bytes::Bytes;

use super::{
    Container, DataOut, DecodeError, ElementReader, EncodeError, MAX_DEPTH, Serializer, data_for,
};
use crate::message::Element;
use crate::payload::Data;
use crate::value::{Dict, Value};

pub(crate) struct Reader<'a> {
    source: &'a Bytes,
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(source: &'a Bytes) -> Result<Self, DecodeError> {
        let mut rest: &[u8] = source;
        let remaining =
            rmp::decode::read_array_len(&mut rest).map_err(|_| DecodeError::NotAMessage)?;
        Ok(Self { source, rest, remaining })
    }
}

impl ElementReader for Reader<'_> {
    fn next_value(&mut self) -> Result<Option<Value>, DecodeError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        read_value(&mut self.rest, 0).map(Some)
    }

    fn next_raw(&mut self, container: Container) -> Result<Option<Data>, DecodeError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let start = self.rest;
        // Markers: fixarray, array 16/32 and bin 8/16/32; fixmap and map 16/32.
        let shape_ok = matches!(
            (container, start.first()),
            (Container::ListOrBinary, Some(0x90..=0x9f | 0xdc | 0xdd | 0xc4..=0xc6))
                | (Container::Dict, Some(0x80..=0x8f | 0xde | 0xdf))
        );
        if !shape_ok {
            return Err(container.shape_error());
        }
        skip_value(&mut self.rest, 0)?;
        let used = start.len() - self.rest.len();
        Ok(Some(Data::Encoded {
            serializer: Serializer::MsgPack,
            bytes: self.source.slice_ref(&start[..used]),
        }))
    }

    fn has_more(&mut self) -> Result<bool, DecodeError> {
        if self.remaining == 0 && !self.rest.is_empty() {
            return Err(malformed("trailing bytes after the message"));
        }
        Ok(self.remaining > 0)
    }
}

pub(crate) fn decode_value(mut bytes: &[u8]) -> Result<Value, DecodeError> {
    let value = read_value(&mut bytes, 0)?;
    if !bytes.is_empty() {
        return Err(malformed("trailing bytes after the value"));
    }
    Ok(value)
}

fn malformed(reason: &str) -> DecodeError {
    DecodeError::Malformed { serializer: Serializer::MsgPack, reason: reason.to_owned() }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if rest.len() < n {
        return Err(malformed("truncated"));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

/// The big-endian unsigned integer in the next `N` octets.
fn be_uint<const N: usize>(rest: &mut &[u8]) -> Result<u64, DecodeError> {
    let (head, tail) = rest.split_first_chunk::<N>().ok_or_else(|| malformed("truncated"))?;
    *rest = tail;
    Ok(head.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// A length in the next `N` octets.
fn be_len<const N: usize>(rest: &mut &[u8]) -> Result<usize, DecodeError> {
    be_uint::<N>(rest).map(|n| n as usize)
}

/// What a marker announces: a scalar, a byte run of some length, or a container.
enum Shape {
    Value(Value),
    Str(usize),
    Bin(usize),
    Ext(usize),
    Array(usize),
    Map(usize),
}

/// Reads one marker and the length or scalar that follows it. The marker octets are matched
/// directly (MessagePack spec, "Formats"): through `rmp::Marker` each value took two jump
/// tables, one to name the marker and one to act on it. Always inlined: `skip_value` then
/// builds no values for what it steps over (about 90 instructions per payload).
#[inline(always)]
fn read_shape(rest: &mut &[u8]) -> Result<Shape, DecodeError> {
    let (&marker, tail) = rest.split_first().ok_or_else(|| malformed("truncated"))?;
    *rest = tail;
    Ok(match marker {
        0x00..=0x7f => Shape::Value(Value::Int(i64::from(marker))),
        0x80..=0x8f => Shape::Map(usize::from(marker & 0x0f)),
        0x90..=0x9f => Shape::Array(usize::from(marker & 0x0f)),
        0xa0..=0xbf => Shape::Str(usize::from(marker & 0x1f)),
        0xc0 => Shape::Value(Value::Null),
        0xc1 => return Err(malformed("reserved marker 0xc1")),
        0xc2 => Shape::Value(Value::Bool(false)),
        0xc3 => Shape::Value(Value::Bool(true)),
        0xc4 => Shape::Bin(be_len::<1>(rest)?),
        0xc5 => Shape::Bin(be_len::<2>(rest)?),
        0xc6 => Shape::Bin(be_len::<4>(rest)?),
        // Extensions: a type octet, then the data.
        0xc7 => Shape::Ext(be_len::<1>(rest)? + 1),
        0xc8 => Shape::Ext(be_len::<2>(rest)? + 1),
        0xc9 => Shape::Ext(be_len::<4>(rest)? + 1),
        0xca => Shape::Value(Value::Float(f64::from(f32::from_bits(be_uint::<4>(rest)? as u32)))),
        0xcb => Shape::Value(Value::Float(f64::from_bits(be_uint::<8>(rest)?))),
        0xcc => Shape::Value(Value::from(be_uint::<1>(rest)?)),
        0xcd => Shape::Value(Value::from(be_uint::<2>(rest)?)),
        0xce => Shape::Value(Value::from(be_uint::<4>(rest)?)),
        0xcf => Shape::Value(Value::from(be_uint::<8>(rest)?)),
        0xd0 => Shape::Value(Value::Int(i64::from(be_uint::<1>(rest)? as u8 as i8))),
        0xd1 => Shape::Value(Value::Int(i64::from(be_uint::<2>(rest)? as u16 as i16))),
        0xd2 => Shape::Value(Value::Int(i64::from(be_uint::<4>(rest)? as u32 as i32))),
        0xd3 => Shape::Value(Value::Int(be_uint::<8>(rest)? as i64)),
        // fixext 1, 2, 4, 8, 16: a type octet and that many octets.
        0xd4..=0xd8 => Shape::Ext((1 << (marker - 0xd4)) + 1),
        0xd9 => Shape::Str(be_len::<1>(rest)?),
        0xda => Shape::Str(be_len::<2>(rest)?),
        0xdb => Shape::Str(be_len::<4>(rest)?),
        0xdc => Shape::Array(be_len::<2>(rest)?),
        0xdd => Shape::Array(be_len::<4>(rest)?),
        0xde => Shape::Map(be_len::<2>(rest)?),
        0xdf => Shape::Map(be_len::<4>(rest)?),
        0xe0..=0xff => Shape::Value(Value::Int(i64::from(marker as i8))),
    })
}

fn read_value(rest: &mut &[u8], depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    // One-octet values first: message types and small ids, and the empty options and details
    // of most messages.
    match rest.split_first() {
        Some((&small @ 0x00..=0x7F, tail)) => {
            *rest = tail;
            return Ok(Value::Int(i64::from(small)));
        }
        Some((0x80, tail)) => {
            *rest = tail;
            return Ok(Value::Dict(Dict::new()));
        }
        _ => {}
    }
    Ok(match read_shape(rest)? {
        Shape::Value(v) => v,
        Shape::Str(n) => {
            let s = std::str::from_utf8(take(rest, n)?)
                .map_err(|_| malformed("string is not UTF-8"))?;
            Value::Str(s.into())
        }
        Shape::Bin(n) => Value::Bytes(take(rest, n)?.to_vec()),
        Shape::Ext(_) => return Err(malformed("extension types are not part of WAMP")),
        Shape::Array(n) => {
            // Each element takes at least one byte: do not trust a huge announced length.
            let mut items = Vec::with_capacity(n.min(rest.len()));
            for _ in 0..n {
                items.push(read_value(rest, depth + 1)?);
            }
            Value::List(items)
        }
        Shape::Map(n) => {
            // Each entry takes at least two bytes: do not trust a huge announced length.
            let mut entries = Vec::with_capacity(n.min(rest.len() / 2));
            for _ in 0..n {
                let key = read_key(rest)?;
                entries.push((key.into(), read_value(rest, depth + 1)?));
            }
            Value::Dict(Dict::from_entries(entries))
        }
    })
}

/// Reads a dictionary key, which must be a string.
fn read_key(rest: &mut &[u8]) -> Result<String, DecodeError> {
    let Shape::Str(n) = read_shape(rest)? else {
        return Err(DecodeError::NonStringKey);
    };
    let key = std::str::from_utf8(take(rest, n)?).map_err(|_| malformed("string is not UTF-8"))?;
    Ok(key.to_owned())
}

/// Steps over one value without building it (payload elements are routed, not read).
fn skip_value(rest: &mut &[u8], depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    match read_shape(rest)? {
        Shape::Value(_) => {}
        Shape::Str(n) | Shape::Bin(n) | Shape::Ext(n) => {
            take(rest, n)?;
        }
        Shape::Array(n) => {
            for _ in 0..n {
                skip_value(rest, depth + 1)?;
            }
        }
        Shape::Map(n) => {
            for _ in 0..n.saturating_mul(2) {
                skip_value(rest, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Appends the message array of `elements` to `out`.
pub(crate) fn encode(elements: &[Element<'_>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    write(rmp::encode::write_array_len(out, len32(elements.len())?))?;
    for element in elements {
        match element {
            Element::UInt(u) => write(rmp::encode::write_uint(out, *u))?,
            Element::Str(s) => write(rmp::encode::write_str(out, s))?,
            Element::Dict(d) => write_dict(out, d)?,
            Element::EmptyList => write(rmp::encode::write_array_len(out, 0))?,
            Element::Data(data) => match data_for(data, Serializer::MsgPack)? {
                DataOut::Raw(bytes) => out.extend_from_slice(bytes),
                DataOut::Value(v) => write_value(out, &v)?,
            },
        }
    }
    Ok(())
}

fn len32(n: usize) -> Result<u32, EncodeError> {
    u32::try_from(n)
        .map_err(|_| EncodeError::Unrepresentable("collection too large for MessagePack".into()))
}

/// Writing to a `Vec` cannot fail; any error is reported rather than unwrapped all the same.
fn write<T, E: std::fmt::Debug>(r: Result<T, E>) -> Result<(), EncodeError> {
    r.map(|_| ()).map_err(|e| EncodeError::Unrepresentable(format!("{e:?}")))
}

fn write_dict(out: &mut Vec<u8>, dict: &Dict) -> Result<(), EncodeError> {
    write(rmp::encode::write_map_len(out, len32(dict.len())?))?;
    for (k, v) in dict {
        write(rmp::encode::write_str(out, k))?;
        write_value(out, v)?;
    }
    Ok(())
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), EncodeError> {
    match value {
        Value::Null => write(rmp::encode::write_nil(out)),
        Value::Bool(b) => write(rmp::encode::write_bool(out, *b)),
        Value::Int(i) if *i >= 0 => write(rmp::encode::write_uint(out, *i as u64)),
        Value::Int(i) => write(rmp::encode::write_sint(out, *i)),
        Value::UInt(u) => write(rmp::encode::write_uint(out, *u)),
        Value::Float(f) => write(rmp::encode::write_f64(out, *f)),
        Value::Str(s) => write(rmp::encode::write_str(out, s)),
        Value::Bytes(b) => write(rmp::encode::write_bin(out, b)),
        Value::List(items) => {
            write(rmp::encode::write_array_len(out, len32(items.len())?))?;
            items.iter().try_for_each(|v| write_value(out, v))
        }
        Value::Dict(d) => write_dict(out, d),
    }
}
