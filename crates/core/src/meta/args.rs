//! Arguments of a meta procedure call, decoded and checked with errors that name them.

use junction_wire::{Dict, Payload, Uri, UriRules, Value};

use crate::error::Error;

/// The decoded positional and keyword arguments of a meta call.
pub(super) struct Args {
    procedure: String,
    list: Vec<Value>,
    kwargs: Dict,
}

impl Args {
    pub(super) fn new(procedure: &str, payload: &Payload) -> Result<Self, Error> {
        let bad =
            |e: junction_wire::DecodeError| Error::InvalidArgument(format!("{procedure}: {e}"));
        Ok(Self {
            procedure: procedure.to_owned(),
            list: payload.args_list().map_err(bad)?,
            kwargs: payload.kwargs_dict().map_err(bad)?,
        })
    }

    fn wrong(&self, what: &str) -> Error {
        Error::InvalidArgument(format!("{}: {what}", self.procedure))
    }

    /// Positional argument `i`, which must be an id.
    pub(super) fn id(&self, i: usize, name: &str) -> Result<u64, Error> {
        self.list
            .get(i)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.wrong(&format!("argument {} ({name}) must be an id", i + 1)))
    }

    /// Positional argument `i`, which must be a string.
    pub(super) fn string(&self, i: usize, name: &str) -> Result<&str, Error> {
        self.list
            .get(i)
            .and_then(Value::as_str)
            .ok_or_else(|| self.wrong(&format!("argument {} ({name}) must be a string", i + 1)))
    }

    /// Positional argument `i`, which must be a URI (loose rules, no empty components).
    pub(super) fn uri(&self, i: usize, name: &str) -> Result<Uri, Error> {
        let uri = Uri::from(self.string(i, name)?);
        if !uri.is_valid(UriRules::Loose, true) {
            return Err(Error::InvalidUri { uri, reason: "not a valid URI" });
        }
        Ok(uri)
    }

    /// Optional positional argument `i`: a list of strings.
    pub(super) fn strings(&self, i: usize, name: &str) -> Result<Option<Vec<String>>, Error> {
        match self.list.get(i) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::List(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| {
                    self.wrong(&format!("argument {} ({name}) must be a list of strings", i + 1))
                }),
            Some(_) => {
                Err(self.wrong(&format!("argument {} ({name}) must be a list of strings", i + 1)))
            }
        }
    }

    /// Optional positional argument `i`: a dictionary.
    pub(super) fn dict(&self, i: usize, name: &str) -> Result<Dict, Error> {
        match self.list.get(i) {
            None | Some(Value::Null) => Ok(Dict::new()),
            Some(Value::Dict(d)) => Ok(d.clone()),
            Some(_) => {
                Err(self.wrong(&format!("argument {} ({name}) must be a dictionary", i + 1)))
            }
        }
    }

    /// Optional positional argument `i`: a list (any values).
    pub(super) fn list(&self, i: usize, name: &str) -> Result<Vec<Value>, Error> {
        match self.list.get(i) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::List(l)) => Ok(l.clone()),
            Some(_) => Err(self.wrong(&format!("argument {} ({name}) must be a list", i + 1))),
        }
    }

    /// All keyword arguments.
    pub(super) fn kwargs(&self) -> &Dict {
        &self.kwargs
    }

    /// Optional keyword argument `key`: a string.
    pub(super) fn kw_string(&self, key: &str) -> Result<Option<&str>, Error> {
        match self.kwargs.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(&format!("keyword argument {key} must be a string"))),
        }
    }

    /// Optional keyword argument `key`: a dictionary.
    pub(super) fn kw_dict(&self, key: &str) -> Result<Dict, Error> {
        match self.kwargs.get(key) {
            None | Some(Value::Null) => Ok(Dict::new()),
            Some(Value::Dict(d)) => Ok(d.clone()),
            Some(_) => Err(self.wrong(&format!("keyword argument {key} must be a dictionary"))),
        }
    }
}
