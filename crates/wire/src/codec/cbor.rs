//! CBOR (RFC 8949), decoded and encoded with `minicbor`.

use bytes::Bytes;
use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use super::{
    Container, DataOut, DecodeError, ElementReader, EncodeError, MAX_DEPTH, Serializer, data_for,
};
use crate::message::Element;
use crate::payload::Data;
use crate::value::{Dict, Value};

pub(crate) struct Reader<'a> {
    source: &'a Bytes,
    decoder: Decoder<'a>,
    /// Elements left in a definite-length array; `None` for an indefinite one (ends at Break).
    remaining: Option<u64>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(source: &'a Bytes) -> Result<Self, DecodeError> {
        let mut decoder = Decoder::new(source);
        let remaining = decoder.array().map_err(|_| DecodeError::NotAMessage)?;
        Ok(Self { source, decoder, remaining })
    }

    /// Whether another element follows, consuming the Break of an indefinite array.
    fn advance(&mut self) -> Result<bool, DecodeError> {
        match &mut self.remaining {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None => {
                if self.decoder.datatype().map_err(malformed)? == Type::Break {
                    self.decoder.skip().map_err(malformed)?;
                    self.remaining = Some(0);
                    Ok(false)
                } else {
                    Ok(true)
                }
            }
        }
    }
}

impl ElementReader for Reader<'_> {
    fn next_value(&mut self) -> Result<Option<Value>, DecodeError> {
        if !self.advance()? {
            return Ok(None);
        }
        read_value(&mut self.decoder, 0).map(Some)
    }

    fn next_raw(&mut self, container: Container) -> Result<Option<Data>, DecodeError> {
        if !self.advance()? {
            return Ok(None);
        }
        let shape_ok = matches!(
            (container, self.decoder.datatype().map_err(malformed)?),
            (
                Container::ListOrBinary,
                Type::Array | Type::ArrayIndef | Type::Bytes | Type::BytesIndef
            ) | (Container::Dict, Type::Map | Type::MapIndef)
        );
        if !shape_ok {
            return Err(container.shape_error());
        }
        let start = self.decoder.position();
        skip(&mut self.decoder, 0)?;
        let end = self.decoder.position();
        Ok(Some(Data::Encoded {
            serializer: Serializer::Cbor,
            bytes: self.source.slice(start..end),
        }))
    }

    fn has_more(&mut self) -> Result<bool, DecodeError> {
        let more = match self.remaining {
            Some(n) => n > 0,
            None => self.decoder.datatype().map_err(malformed)? != Type::Break,
        };
        if !more && self.remaining.is_none() {
            self.decoder.skip().map_err(malformed)?;
        }
        if !more && self.decoder.position() != self.decoder.input().len() {
            return Err(DecodeError::Malformed {
                serializer: Serializer::Cbor,
                reason: "trailing bytes after the message".into(),
            });
        }
        Ok(more)
    }
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut d = Decoder::new(bytes);
    let value = read_value(&mut d, 0)?;
    if d.position() != bytes.len() {
        return Err(DecodeError::Malformed {
            serializer: Serializer::Cbor,
            reason: "trailing bytes after the value".into(),
        });
    }
    Ok(value)
}

fn malformed(e: minicbor::decode::Error) -> DecodeError {
    DecodeError::Malformed { serializer: Serializer::Cbor, reason: e.to_string() }
}

/// Steps over one value without building it, bounded in depth.
fn skip(d: &mut Decoder<'_>, depth: usize) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    match d.datatype().map_err(malformed)? {
        Type::Array => {
            let n = d.array().map_err(malformed)?.unwrap_or(0);
            (0..n).try_for_each(|_| skip(d, depth + 1))
        }
        Type::Map => {
            let n = d.map().map_err(malformed)?.unwrap_or(0);
            (0..n.saturating_mul(2)).try_for_each(|_| skip(d, depth + 1))
        }
        Type::ArrayIndef | Type::MapIndef => {
            d.skip().map_err(malformed)?;
            Ok(())
        }
        Type::Tag => {
            d.tag().map_err(malformed)?;
            skip(d, depth + 1)
        }
        _ => d.skip().map_err(malformed),
    }
}

fn read_value(d: &mut Decoder<'_>, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    Ok(match d.datatype().map_err(malformed)? {
        Type::Bool => Value::Bool(d.bool().map_err(malformed)?),
        Type::Null | Type::Undefined => {
            d.skip().map_err(malformed)?;
            Value::Null
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Value::from(d.u64().map_err(malformed)?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => Value::Int(d.i64().map_err(malformed)?),
        Type::Int => {
            let i: i128 = d.int().map_err(malformed)?.into();
            i64::try_from(i).map(Value::Int).map_err(|_| DecodeError::Malformed {
                serializer: Serializer::Cbor,
                reason: "integer out of range".into(),
            })?
        }
        Type::F16 => Value::Float(f64::from(d.f16().map_err(malformed)?)),
        Type::F32 => Value::Float(f64::from(d.f32().map_err(malformed)?)),
        Type::F64 => Value::Float(d.f64().map_err(malformed)?),
        Type::Bytes => Value::Bytes(d.bytes().map_err(malformed)?.to_vec()),
        Type::BytesIndef => {
            let mut out = Vec::new();
            for chunk in d.bytes_iter().map_err(malformed)? {
                out.extend_from_slice(chunk.map_err(malformed)?);
            }
            Value::Bytes(out)
        }
        Type::String => Value::Str(d.str().map_err(malformed)?.into()),
        Type::StringIndef => {
            let mut out = String::new();
            for chunk in d.str_iter().map_err(malformed)? {
                out.push_str(chunk.map_err(malformed)?);
            }
            Value::Str(out.into())
        }
        Type::Array | Type::ArrayIndef => {
            let len = d.array().map_err(malformed)?;
            let mut items = Vec::new();
            read_items(d, len, |d| {
                items.push(read_value(d, depth + 1)?);
                Ok(())
            })?;
            Value::List(items)
        }
        Type::Map | Type::MapIndef => {
            let len = d.map().map_err(malformed)?;
            let mut entries = Vec::new();
            read_items(d, len, |d| {
                let Value::Str(key) = read_value(d, depth + 1)? else {
                    return Err(DecodeError::NonStringKey);
                };
                entries.push((String::from(&*key).into(), read_value(d, depth + 1)?));
                Ok(())
            })?;
            Value::Dict(Dict::from_entries(entries))
        }
        Type::Tag => {
            // Tags (dates, bignums, …) carry no meaning for WAMP: keep the tagged value.
            d.tag().map_err(malformed)?;
            read_value(d, depth + 1)?
        }
        other => {
            return Err(DecodeError::Malformed {
                serializer: Serializer::Cbor,
                reason: format!("unsupported item {other}"),
            });
        }
    })
}

/// Calls `item` for each element of a definite (`Some(len)`) or indefinite (`None`) container.
fn read_items<'b>(
    d: &mut Decoder<'b>,
    len: Option<u64>,
    mut item: impl FnMut(&mut Decoder<'b>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    match len {
        Some(n) => (0..n).try_for_each(|_| item(d)),
        None => loop {
            if d.datatype().map_err(malformed)? == Type::Break {
                return d.skip().map_err(malformed);
            }
            item(d)?;
        },
    }
}

type Enc = Encoder<Vec<u8>>;

fn enc_err<E: std::fmt::Display>(e: minicbor::encode::Error<E>) -> EncodeError {
    EncodeError::Unrepresentable(e.to_string())
}

/// Appends the message array of `elements` to `out`.
pub(crate) fn encode(elements: &[Element<'_>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut e = Encoder::new(std::mem::take(out));
    e.array(elements.len() as u64).map_err(enc_err)?;
    for element in elements {
        match element {
            Element::UInt(u) => {
                e.u64(*u).map_err(enc_err)?;
            }
            Element::Str(s) => {
                e.str(s).map_err(enc_err)?;
            }
            Element::Dict(d) => write_dict(&mut e, d)?,
            Element::EmptyList => {
                e.array(0).map_err(enc_err)?;
            }
            Element::Data(data) => match data_for(data, Serializer::Cbor)? {
                DataOut::Raw(bytes) => e.writer_mut().extend_from_slice(bytes),
                DataOut::Value(v) => write_value(&mut e, &v)?,
            },
        }
    }
    *out = e.into_writer();
    Ok(())
}

fn write_dict(e: &mut Enc, dict: &Dict) -> Result<(), EncodeError> {
    e.map(dict.len() as u64).map_err(enc_err)?;
    for (k, v) in dict {
        e.str(k).map_err(enc_err)?;
        write_value(e, v)?;
    }
    Ok(())
}

fn write_value(e: &mut Enc, value: &Value) -> Result<(), EncodeError> {
    match value {
        Value::Null => e.null().map(drop),
        Value::Bool(b) => e.bool(*b).map(drop),
        Value::Int(i) => e.i64(*i).map(drop),
        Value::UInt(u) => e.u64(*u).map(drop),
        Value::Float(f) => e.f64(*f).map(drop),
        Value::Str(s) => e.str(s).map(drop),
        Value::Bytes(b) => e.bytes(b).map(drop),
        Value::List(items) => {
            e.array(items.len() as u64).map_err(enc_err)?;
            return items.iter().try_for_each(|v| write_value(e, v));
        }
        Value::Dict(d) => return write_dict(e, d),
    }
    .map_err(enc_err)
}
