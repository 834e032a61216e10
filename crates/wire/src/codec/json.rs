//! JSON. Binary strings travel as `"\u0000" + base64` (spec, "Binary conversion of JSON strings").

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::value::RawValue;

use super::{
    Container, DataOut, DecodeError, ElementReader, EncodeError, MAX_DEPTH, Serializer, data_for,
};
use crate::message::{Element, MAX_ELEMENTS};
use crate::payload::Data;
use crate::value::{Dict, Value};

pub(crate) struct Reader<'a> {
    source: &'a Bytes,
    elements: std::vec::IntoIter<&'a RawValue>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(source: &'a Bytes) -> Result<Self, DecodeError> {
        // Checked whole, once: parsed from bytes, serde_json checks each element's text again
        // as it slices it out (about 600 instructions per routed call).
        let text = std::str::from_utf8(source).map_err(|e| DecodeError::Malformed {
            serializer: Serializer::Json,
            reason: e.to_string(),
        })?;
        let Elements(elements) = serde_json::from_str(text).map_err(|e| malformed(&e))?;
        Ok(Self { source, elements: elements.into_iter() })
    }
}

/// The elements of the message array, not parsed yet. Read like a `Vec<&RawValue>`, but into a
/// vector sized once: serde's `Vec` starts empty and grew twice (to 4, then 8) for most messages.
struct Elements<'a>(Vec<&'a RawValue>);

impl<'de> serde::Deserialize<'de> for Elements<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Elements<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // What serde's `Vec` says, so errors read as before.
                f.write_str("a sequence")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut elements = Vec::with_capacity(MAX_ELEMENTS);
                while let Some(element) = seq.next_element()? {
                    elements.push(element);
                }
                Ok(Elements(elements))
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

impl ElementReader for Reader<'_> {
    fn next_value(&mut self) -> Result<Option<Value>, DecodeError> {
        let Some(raw) = self.elements.next() else { return Ok(None) };
        if let Some(value) = simple_value(raw.get()) {
            return Ok(Some(value));
        }
        let json: serde_json::Value = serde_json::from_str(raw.get()).map_err(|e| malformed(&e))?;
        Ok(Some(match json {
            // Top-level strings are URIs, methods and signatures, never binary: the "\u0000" +
            // base64 convention applies inside dictionaries and payloads only. (Found by
            // fuzzing: a CBOR reason starting with NUL came back from JSON as bytes.)
            serde_json::Value::String(s) => Value::from(s),
            other => from_json(other, 0)?,
        }))
    }

    fn next_raw(&mut self, container: Container) -> Result<Option<Data>, DecodeError> {
        let Some(raw) = self.elements.next() else {
            return Ok(None);
        };
        let text = raw.get();
        let shape_ok = match (container, text.as_bytes().first()) {
            (Container::ListOrBinary, Some(b'[')) | (Container::Dict, Some(b'{')) => true,
            // A transparent payload: a binary string, i.e. "\u0000" and valid base64.
            (Container::ListOrBinary, Some(b'"')) => {
                text.starts_with("\"\\u0000")
                    && matches!(decode_value(text.as_bytes())?, Value::Bytes(_))
            }
            _ => false,
        };
        if !shape_ok {
            return Err(container.shape_error());
        }
        Ok(Some(Data::Encoded {
            serializer: Serializer::Json,
            bytes: self.source.slice_ref(text.as_bytes()),
        }))
    }

    fn has_more(&mut self) -> Result<bool, DecodeError> {
        Ok(self.elements.len() > 0)
    }
}

/// The header elements of nearly every message, read without building a `serde_json::Value`
/// first: a non-negative integer (message codes and ids), a string without escapes (URIs) and an
/// empty dictionary (options and details). `raw` is one element of an array that was already
/// parsed, so it is valid JSON without surrounding whitespace; anything else is `None` and takes
/// the general path, which gives the same value.
fn simple_value(raw: &str) -> Option<Value> {
    match raw.as_bytes().first()? {
        b'0'..=b'9' if raw.bytes().all(|b| b.is_ascii_digit()) => {
            // Above u64::MAX, serde_json reads a float: left to the general path.
            let n: u64 = raw.parse().ok()?;
            Some(i64::try_from(n).map_or(Value::UInt(n), Value::Int))
        }
        b'"' if !raw.contains('\\') => {
            Some(Value::Str(raw.strip_prefix('"')?.strip_suffix('"')?.into()))
        }
        b'{' if raw == "{}" => Some(Value::Dict(Dict::new())),
        _ => None,
    }
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    from_json(json, 0)
}

/// The key serde_json reads as a raw value when it comes first in an object. Accepted in
/// another place, it would come first once the router re-encodes the dictionary (keys sorted),
/// and the router's own output would not decode: refused wherever it is, in JSON read and
/// written (found by fuzzing).
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

fn reserved_key() -> DecodeError {
    DecodeError::Malformed {
        serializer: Serializer::Json,
        reason: format!("the dictionary key {RAW_VALUE_KEY:?} is reserved"),
    }
}

fn malformed(e: &serde_json::Error) -> DecodeError {
    DecodeError::Malformed { serializer: Serializer::Json, reason: e.to_string() }
}

fn from_json(json: serde_json::Value, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    Ok(match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => match s.strip_prefix('\0') {
            Some(b64) => BASE64.decode(b64).map(Value::Bytes).unwrap_or_else(|_| Value::from(s)),
            None => Value::from(s),
        },
        serde_json::Value::Array(items) => Value::List(
            items.into_iter().map(|v| from_json(v, depth + 1)).collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => Value::Dict(
            map.into_iter()
                .map(|(k, v)| match k.as_str() {
                    RAW_VALUE_KEY => Err(reserved_key()),
                    _ => Ok((k.into(), from_json(v, depth + 1)?)),
                })
                .collect::<Result<Dict, _>>()?,
        ),
    })
}

/// Appends the message array of `elements` to `out`.
pub(crate) fn encode(elements: &[Element<'_>], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.push(b'[');
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match element {
            Element::UInt(u) => write_json(out, u)?,
            Element::Str(s) => write_json(out, s)?,
            Element::Dict(d) => write_dict(out, d)?,
            Element::EmptyList => out.extend_from_slice(b"[]"),
            Element::Data(data) => match data_for(data, Serializer::Json)? {
                DataOut::Raw(bytes) => out.extend_from_slice(bytes),
                DataOut::Value(v) => write_value(out, &v)?,
            },
        }
    }
    out.push(b']');
    Ok(())
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<(), EncodeError> {
    serde_json::to_writer(out, v).map_err(|e| EncodeError::Unrepresentable(e.to_string()))
}

fn write_dict(out: &mut Vec<u8>, dict: &Dict) -> Result<(), EncodeError> {
    out.push(b'{');
    for (i, (k, v)) in dict.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if k == RAW_VALUE_KEY {
            return Err(EncodeError::Unrepresentable(reserved_key().to_string()));
        }
        write_json(out, k)?;
        out.push(b':');
        write_value(out, v)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), EncodeError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => write_json(out, b)?,
        Value::Int(i) => write_json(out, i)?,
        Value::UInt(u) => write_json(out, u)?,
        Value::Float(f) if f.is_finite() => write_json(out, f)?,
        Value::Float(f) => return Err(EncodeError::Unrepresentable(format!("JSON has no {f}"))),
        Value::Str(s) => write_json(out, &**s)?,
        Value::Bytes(b) => {
            let mut s = String::with_capacity(1 + b.len().div_ceil(3) * 4);
            s.push('\0');
            BASE64.encode_string(b, &mut s);
            write_json(out, &s)?;
        }
        Value::List(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v)?;
            }
            out.push(b']');
        }
        Value::Dict(d) => write_dict(out, d)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `next_value` gives without the shortcut.
    fn general(raw: &str) -> Value {
        match serde_json::from_str(raw).expect("valid JSON") {
            serde_json::Value::String(s) => Value::from(s),
            other => from_json(other, 0).expect("converts"),
        }
    }

    #[test]
    fn header_shortcut_reads_what_the_general_path_reads() {
        let raws = [
            "0",
            "48",
            "9007199254740992",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "\"com.example.echo\"",
            "\"\"",
            "\"é ü\"",
            "{}",
        ];
        for raw in raws {
            assert_eq!(simple_value(raw), Some(general(raw)), "{raw}");
        }
    }

    #[test]
    fn message_that_is_not_utf8_is_malformed() {
        let bytes = Bytes::from_static(b"[48,1,{},\"com.\xff\"]");
        assert!(matches!(
            Serializer::Json.decode(&bytes),
            Err(DecodeError::Malformed { serializer: Serializer::Json, .. })
        ));
    }

    #[test]
    fn message_with_elements_beyond_its_type_or_beyond_any_type_has_too_many() {
        for text in [
            r#"[48,1,{},"a",[],{},1]"#,
            r#"[48,1,{},"a",[],{},1,2]"#,
            r#"[48,1,{},"a",[],{},1,2,3,4,5,6,7,8,9]"#,
        ] {
            assert_eq!(
                Serializer::Json.decode(&Bytes::from(text)),
                Err(DecodeError::TooManyElements { message: "CALL" }),
                "{text}"
            );
        }
        // Elements past the kept ones are still checked to be JSON.
        assert!(matches!(
            Serializer::Json.decode(&Bytes::from(r#"[48,1,{},"a",[],{},1,2,nope]"#)),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn header_shortcut_leaves_everything_else_to_the_general_path() {
        let raws = [
            "18446744073709551616",
            "-1",
            "1.5",
            "1e3",
            "\"a\\\"b\"",
            "\"\\u0000AQI=\"",
            "{\"a\":1}",
            "[]",
            "null",
            "true",
        ];
        for raw in raws {
            assert_eq!(simple_value(raw), None, "{raw}");
        }
    }
}
