//! WAMP URIs and their validation (spec, Basic Profile "URIs").

use std::fmt;
use std::sync::Arc;

/// A URI as it appeared on the wire. Which rules it must satisfy depends on where it is used (a
/// pattern subscription may have empty components; an exact one may not), so validation is a
/// separate step: see [`Uri::is_valid`].
///
/// Cloning is cheap: routing tables and events share one allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uri(Arc<str>);

/// Which character set URI components may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UriRules {
    /// Any character but whitespace, `.` and `#` (the spec's default for routers).
    #[default]
    Loose,
    /// Only `[0-9a-z_]`.
    Strict,
}

impl Uri {
    /// Wraps a string without checking it.
    pub fn new(s: impl Into<Arc<str>>) -> Self {
        Self(s.into())
    }

    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this URI is well formed under `rules`. `allow_empty_components` is for pattern
    /// matches (`prefix`, `wildcard`), where `com..update` has an empty component.
    pub fn is_valid(&self, rules: UriRules, allow_empty_components: bool) -> bool {
        // One pass over the octets rather than one per component: checked on every CALL and
        // PUBLISH, and the per-character Unicode test cost about 350 instructions per call.
        let text: &str = &self.0;
        if !allow_empty_components
            && (text.is_empty()
                || text.starts_with('.')
                || text.ends_with('.')
                || text.contains(".."))
        {
            return false;
        }
        match rules {
            // Any character but whitespace and `#` (the dots separate components).
            UriRules::Loose if text.is_ascii() => !text
                .bytes()
                .any(|b| matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | b'#')),
            UriRules::Loose => !text.chars().any(|ch| ch.is_whitespace() || ch == '#'),
            UriRules::Strict => text
                .bytes()
                .all(|b| b == b'.' || b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_'),
        }
    }

    /// Whether the URI lies in the `wamp.` namespace, which only the router may use.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with("wamp.")
    }

    /// The dot-separated components.
    pub fn components(&self) -> std::str::Split<'_, char> {
        self.0.split('.')
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for Uri {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(s: &str, rules: UriRules, empty: bool) -> bool {
        Uri::from(s).is_valid(rules, empty)
    }

    #[test]
    fn loose_rules_accept_spec_examples_and_refuse_whitespace_hash_and_empty_components() {
        assert!(valid("com.myapp.mytopic1", UriRules::Loose, false));
        assert!(valid("com.MyApp.Über-topic", UriRules::Loose, false));
        assert!(!valid("com.my app", UriRules::Loose, false));
        assert!(!valid("com.#app", UriRules::Loose, false));
        assert!(!valid("com..topic", UriRules::Loose, false));
        assert!(!valid("com.topic.", UriRules::Loose, false));
        assert!(!valid("", UriRules::Loose, false));
    }

    #[test]
    fn empty_components_are_allowed_only_for_patterns() {
        assert!(valid("com..topic", UriRules::Loose, true));
        assert!(valid("com.myapp.", UriRules::Loose, true));
        assert!(!valid("com. .topic", UriRules::Loose, true));
    }

    #[test]
    fn strict_rules_allow_only_lowercase_digits_and_underscore() {
        assert!(valid("com.my_app.topic2", UriRules::Strict, false));
        assert!(!valid("com.MyApp", UriRules::Strict, false));
        assert!(!valid("com.my-app", UriRules::Strict, false));
    }

    /// The definition `is_valid` implements in one pass: split into components, check each.
    fn valid_by_components(s: &str, rules: UriRules, empty: bool) -> bool {
        if !empty && s.is_empty() {
            return false;
        }
        let component_ok = |c: &str| match rules {
            UriRules::Loose => !c.chars().any(|ch| ch.is_whitespace() || ch == '#'),
            UriRules::Strict => {
                c.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_')
            }
        };
        s.split('.').all(|c| (empty || !c.is_empty()) && component_ok(c))
    }

    #[test]
    fn one_pass_check_agrees_with_the_per_component_definition() {
        let uris = [
            "",
            ".",
            "..",
            "a",
            "a.",
            ".a",
            "a..b",
            "a.b.c",
            "com.example.add",
            "com.my app",
            "com.#app",
            "com.app#",
            "a\tb",
            "a\u{0b}b",
            "a\u{0c}b",
            "a\rb",
            "a\nb",
            "a\u{85}b",
            "a\u{a0}b",
            "a\u{2003}b",
            "com.Über",
            "com.über_2",
            "UPPER.case",
            "x_1.y_2",
            "a-b.c",
        ];
        for uri in uris {
            for rules in [UriRules::Loose, UriRules::Strict] {
                for empty in [false, true] {
                    assert_eq!(
                        valid(uri, rules, empty),
                        valid_by_components(uri, rules, empty),
                        "{uri:?} {rules:?} {empty}"
                    );
                }
            }
        }
    }

    #[test]
    fn wamp_namespace_is_reserved() {
        assert!(Uri::from("wamp.session.get").is_reserved());
        assert!(!Uri::from("com.wamp.x").is_reserved());
    }
}
