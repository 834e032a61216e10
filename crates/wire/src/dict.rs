//! [`Dict`]: a WAMP dictionary, kept as a vector of entries sorted by key.
//!
//! Options and details dictionaries hold a handful of entries, and most are empty. A `BTreeMap`
//! allocated a node of about 650 octets for the first entry and walked it on every insert,
//! lookup and drop: about 1,250 instructions of a routed call (docs/benchmarks.md, "Sixth
//! round"). A sorted vector allocates only what its entries take, finds a key by binary search,
//! and iterates in the same key order, so encodings stay deterministic.

use std::borrow::Cow;
use std::fmt;

use thin_vec::ThinVec;

use crate::value::Value;

/// A dictionary key: the keys the router writes are mostly literals (`"caller"`,
/// `"procedure"`, …), kept without an allocation; keys read off the wire are owned.
pub type Key = Cow<'static, str>;

/// A WAMP dictionary: string keys, any values, iterated in key order.
///
/// One pointer wide (a `ThinVec` keeps its length and capacity with the entries, and an empty
/// one allocates nothing): a CALL with a `Vec` here was 136 octets, just over the 128 that the
/// compiler moves inline, so every move of a message called `memcpy` (about 600 instructions
/// per routed call).
#[derive(Clone, Default, PartialEq)]
pub struct Dict {
    /// Sorted by key, no key twice.
    entries: ThinVec<(Key, Value)>,
}

impl Dict {
    /// An empty dictionary (no allocation).
    pub fn new() -> Self {
        Self { entries: ThinVec::new() }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_ref().cmp(key))
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value under `key`, to change it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// Whether there is a value under `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub fn insert(&mut self, key: Key, value: Value) -> Option<Value> {
        // The router mostly writes keys in order (`caller`, `caller_authid`, …): append.
        if self.entries.last().is_none_or(|(last, _)| *last < key) {
            self.entries.push((key, value));
            return None;
        }
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// Takes the value under `key` out.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// Keeps only the entries for which `keep` says yes.
    pub fn retain(&mut self, mut keep: impl FnMut(&Key, &mut Value) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// The entries, in key order.
    pub fn iter(&self) -> Iter<'_> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The entries in key order, values changeable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Key, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Builds a dictionary from entries in any order; of two entries with one key, the later
    /// wins (as with repeated inserts). Sorts once: inserting entries one by one into a sorted
    /// vector would take quadratic time for a large dictionary read off the wire.
    pub fn from_entries(mut entries: Vec<(Key, Value)>) -> Self {
        if entries.is_empty() {
            // Most options and details dictionaries on the wire are `{}`.
            return Self::new();
        }
        // Stable, so that equal keys keep their order and the last one can be kept.
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut sorted: ThinVec<(Key, Value)> = ThinVec::with_capacity(entries.len());
        for entry in entries {
            match sorted.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => sorted.push(entry),
            }
        }
        Self { entries: sorted }
    }
}

/// The iterator of [`Dict::iter`].
pub type Iter<'a> = std::iter::Map<
    std::slice::Iter<'a, (Key, Value)>,
    fn(&'a (Key, Value)) -> (&'a Key, &'a Value),
>;

impl fmt::Debug for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(Key, Value)> for Dict {
    fn from_iter<I: IntoIterator<Item = (Key, Value)>>(entries: I) -> Self {
        Self::from_entries(entries.into_iter().collect())
    }
}

impl Extend<(Key, Value)> for Dict {
    fn extend<I: IntoIterator<Item = (Key, Value)>>(&mut self, entries: I) {
        let mut all: Vec<(Key, Value)> = std::mem::take(&mut self.entries).into_iter().collect();
        all.extend(entries);
        *self = Self::from_entries(all);
    }
}

impl IntoIterator for Dict {
    type Item = (Key, Value);
    type IntoIter = thin_vec::IntoIter<(Key, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a> IntoIterator for &'a Dict {
    type Item = (&'a Key, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_entries_sorted_and_unique() {
        let mut dict = Dict::new();
        for key in ["b", "c", "a", "b"] {
            dict.insert(key.into(), Value::from(key));
        }
        assert_eq!(dict.keys().map(|k| k.as_ref()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(dict.remove("b"), Some(Value::from("b")));
        assert!(!dict.contains_key("b"));
        assert_eq!(dict.len(), 2);
    }

    #[test]
    fn the_last_of_repeated_keys_wins_when_built_at_once() {
        let dict: Dict = [("k", 1u64), ("a", 2), ("k", 3)]
            .into_iter()
            .map(|(k, v)| (Key::from(k), Value::from(v)))
            .collect();
        assert_eq!(dict.len(), 2);
        assert_eq!(dict.get("k"), Some(&Value::from(3u64)));
        assert_eq!(dict.keys().next().map(|k| k.as_ref()), Some("a"));
    }
}
