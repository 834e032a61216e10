//! Dictionaries as JSON documents, for records kept outside WAMP messages (the store, the
//! cluster directory): user metadata, session details, registration options.

use serde_json::Value as Json;

use crate::{Dict, Value};

/// A dictionary as a JSON object. Binary strings become lists of bytes: the records that
/// use this carry none that matter.
pub fn from_dict(dict: &Dict) -> Json {
    Json::Object(dict.iter().map(|(k, v)| (k.to_string(), from_value(v))).collect())
}

fn from_value(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => Json::from(*f),
        Value::Str(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::Array(b.iter().map(|b| Json::from(*b)).collect()),
        Value::List(l) => Json::Array(l.iter().map(from_value).collect()),
        Value::Dict(d) => from_dict(d),
    }
}

/// A JSON object as a dictionary (anything else gives an empty one).
pub fn to_dict(json: &Json) -> Dict {
    match json {
        Json::Object(map) => map.iter().map(|(k, v)| (k.clone().into(), to_value(v))).collect(),
        _ => Dict::new(),
    }
}

fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_u64().map(Value::UInt))
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or_default())),
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(a) => Value::List(a.iter().map(to_value).collect()),
        Json::Object(_) => Value::Dict(to_dict(json)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict;

    #[test]
    fn dictionaries_survive_the_round_trip() {
        let d = dict! {
            "n" => 5u64, "big" => Value::UInt(u64::MAX), "f" => Value::Float(1.5), "s" => "x",
            "l" => Value::List(vec![Value::Null, Value::Bool(true)]),
            "d" => dict! { "inner" => Value::Int(-3) },
        };
        assert_eq!(to_dict(&from_dict(&d)), d);
    }
}
