//! Typed options of the requests a router receives ("parse, don't validate"). An option of the
//! wrong type is a protocol violation whose message names the option, as the spec's test vectors
//! expect; unknown options are ignored, as the spec allows.

use junction_wire::{Dict, Value};

use crate::error::Error;

/// How a subscription or registration URI is matched (spec, pattern-based subscriptions and
/// registrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MatchPolicy {
    /// The URI must be equal.
    #[default]
    Exact,
    /// The pattern is a string prefix of the URI.
    Prefix,
    /// Empty pattern components match any one component; the component counts are equal.
    Wildcard,
}

impl MatchPolicy {
    /// The option value naming this policy.
    pub fn name(self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
}

/// How a shared registration picks its callee (spec, shared registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvokePolicy {
    /// Only one callee may register.
    #[default]
    Single,
    /// Callees take turns.
    RoundRobin,
    /// A random callee.
    Random,
    /// The callee that registered first.
    First,
    /// The callee that registered last.
    Last,
}

impl InvokePolicy {
    /// The option value naming this policy.
    pub fn name(self) -> &'static str {
        match self {
            InvokePolicy::Single => "single",
            InvokePolicy::RoundRobin => "roundrobin",
            InvokePolicy::Random => "random",
            InvokePolicy::First => "first",
            InvokePolicy::Last => "last",
        }
    }
}

/// PUBLISH.Options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PublishOptions {
    /// Answer with PUBLISHED.
    pub acknowledge: bool,
    /// Leave the publisher out of the recipients (default true).
    pub exclude_me: bool,
    /// Session ids that must not receive the event.
    pub exclude: Vec<u64>,
    /// Authids that must not receive the event.
    pub exclude_authid: Vec<String>,
    /// Authroles that must not receive the event.
    pub exclude_authrole: Vec<String>,
    /// If set, only these session ids may receive the event.
    pub eligible: Option<Vec<u64>>,
    /// If set, only these authids may receive the event.
    pub eligible_authid: Option<Vec<String>>,
    /// If set, only these authroles may receive the event.
    pub eligible_authrole: Option<Vec<String>>,
    /// Disclose the publisher to subscribers.
    pub disclose_me: bool,
    /// Keep the event as the topic's retained event.
    pub retain: bool,
}

/// SUBSCRIBE.Options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeOptions {
    /// How the topic is matched.
    pub match_policy: MatchPolicy,
    /// Deliver the retained event, if any, on subscribe.
    pub get_retained: bool,
}

/// CALL.Options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    /// Milliseconds after which the dealer cancels the call (0: none).
    pub timeout_ms: u64,
    /// The caller accepts progressive results.
    pub receive_progress: bool,
    /// Disclose the caller to the callee.
    pub disclose_me: bool,
    /// More CALL chunks with the same request id follow (progressive call invocations).
    pub progress: bool,
    /// The partition key of a sharded call (`runmode: "partition"`).
    pub partition_key: Option<String>,
}

/// REGISTER.Options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterOptions {
    /// How the procedure is matched.
    pub match_policy: MatchPolicy,
    /// How a shared registration picks its callee.
    pub invoke: InvokePolicy,
    /// Invocations in flight each callee accepts at most (`None`: unlimited).
    pub concurrency: Option<u64>,
    /// The callee wants to know who calls.
    pub disclose_caller: bool,
    /// Revoke whoever holds the procedure and take it over.
    pub force_reregister: bool,
}

/// Reads typed options out of a dictionary, naming the message and option in errors.
struct Reader<'a> {
    dict: &'a Dict,
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn wrong(&self, key: &str, expected: &str) -> Error {
        Error::ProtocolViolation(format!("{}.Options.{key} must be {expected}", self.message))
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.dict.get(key).filter(|v| **v != Value::Null)
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, Error> {
        self.get(key)
            .map_or(Ok(default), |v| v.as_bool().ok_or_else(|| self.wrong(key, "a boolean")))
    }

    fn uint(&self, key: &str) -> Result<u64, Error> {
        self.get(key)
            .map_or(Ok(0), |v| v.as_u64().ok_or_else(|| self.wrong(key, "a non-negative integer")))
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, Error> {
        self.get(key).map(|v| v.as_str().ok_or_else(|| self.wrong(key, "a string"))).transpose()
    }

    fn ids(&self, key: &str) -> Result<Option<Vec<u64>>, Error> {
        self.get(key)
            .map(|v| {
                v.as_list()
                    .and_then(|l| l.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| self.wrong(key, "a list of session ids"))
            })
            .transpose()
    }

    fn strings(&self, key: &str) -> Result<Option<Vec<String>>, Error> {
        self.get(key)
            .map(|v| {
                v.as_list()
                    .and_then(|l| {
                        l.iter().map(|s| s.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| self.wrong(key, "a list of strings"))
            })
            .transpose()
    }

    fn list(&self, key: &str) -> Result<(), Error> {
        match self.get(key) {
            Some(v) if v.as_list().is_none() => Err(self.wrong(key, "a list")),
            _ => Ok(()),
        }
    }

    fn match_policy(&self) -> Result<MatchPolicy, Error> {
        Ok(match self.string("match")? {
            None | Some("exact") => MatchPolicy::Exact,
            Some("prefix") => MatchPolicy::Prefix,
            Some("wildcard") => MatchPolicy::Wildcard,
            Some(_) => return Err(self.wrong("match", "\"exact\", \"prefix\" or \"wildcard\"")),
        })
    }
}

impl PublishOptions {
    /// Parses PUBLISH.Options.
    pub fn parse(dict: &Dict) -> Result<Self, Error> {
        let r = Reader { dict, message: "PUBLISH" };
        // Checked for shape only: they are not acted on yet, but a wrong type is still an error.
        r.list("forward_for")?;
        r.string("transaction_hash")?;
        if let Some(algo) = r.string("enc_algo")?
            && algo != "cryptobox"
        {
            return Err(r.wrong("enc_algo", "\"cryptobox\""));
        }
        Ok(Self {
            acknowledge: r.bool("acknowledge", false)?,
            exclude_me: r.bool("exclude_me", true)?,
            exclude: r.ids("exclude")?.unwrap_or_default(),
            exclude_authid: r.strings("exclude_authid")?.unwrap_or_default(),
            exclude_authrole: r.strings("exclude_authrole")?.unwrap_or_default(),
            eligible: r.ids("eligible")?,
            eligible_authid: r.strings("eligible_authid")?,
            eligible_authrole: r.strings("eligible_authrole")?,
            disclose_me: r.bool("disclose_me", false)?,
            retain: r.bool("retain", false)?,
        })
    }
}

impl SubscribeOptions {
    /// Parses SUBSCRIBE.Options.
    pub fn parse(dict: &Dict) -> Result<Self, Error> {
        let r = Reader { dict, message: "SUBSCRIBE" };
        r.list("forward_for")?;
        Ok(Self { match_policy: r.match_policy()?, get_retained: r.bool("get_retained", false)? })
    }
}

impl CallOptions {
    /// Parses CALL.Options.
    pub fn parse(dict: &Dict) -> Result<Self, Error> {
        // Most calls set no option: five look-ups saved on every call.
        if dict.is_empty() {
            return Ok(Self::default());
        }
        let r = Reader { dict, message: "CALL" };
        let partition_key = match r.string("runmode")? {
            None => None,
            Some("partition") => {
                let key = r.string("rkey")?;
                Some(key.ok_or_else(|| r.wrong("rkey", "a string when runmode is partition"))?)
            }
            Some(_) => return Err(r.wrong("runmode", "\"partition\"")),
        };
        Ok(Self {
            timeout_ms: r.uint("timeout")?,
            receive_progress: r.bool("receive_progress", false)?,
            disclose_me: r.bool("disclose_me", false)?,
            progress: r.bool("progress", false)?,
            partition_key: partition_key.map(str::to_owned),
        })
    }
}

impl RegisterOptions {
    /// Parses REGISTER.Options.
    pub fn parse(dict: &Dict) -> Result<Self, Error> {
        let r = Reader { dict, message: "REGISTER" };
        let invoke = match r.string("invoke")? {
            None | Some("single") => InvokePolicy::Single,
            Some("roundrobin") => InvokePolicy::RoundRobin,
            Some("random") => InvokePolicy::Random,
            Some("first") => InvokePolicy::First,
            Some("last") => InvokePolicy::Last,
            Some(_) => {
                return Err(r.wrong("invoke", "one of single, roundrobin, random, first, last"));
            }
        };
        let concurrency = match r.uint("concurrency")? {
            0 => None,
            n => Some(n),
        };
        Ok(Self {
            match_policy: r.match_policy()?,
            invoke,
            concurrency,
            disclose_caller: r.bool("disclose_caller", false)?,
            force_reregister: r.bool("force_reregister", false)?,
        })
    }
}
