//! URI matching for pattern-based subscriptions and registrations.

use crate::options::MatchPolicy;

/// Whether `uri` matches `pattern` under `policy`.
///
/// `prefix` is a plain string prefix (`com.a` matches `com.abc`), as the spec defines it;
/// `wildcard` compares component by component, an empty pattern component matching any one.
pub(crate) fn matches(policy: MatchPolicy, pattern: &str, uri: &str) -> bool {
    match policy {
        MatchPolicy::Exact => pattern == uri,
        MatchPolicy::Prefix => uri.starts_with(pattern),
        MatchPolicy::Wildcard => {
            let mut p = pattern.split('.');
            let mut u = uri.split('.');
            loop {
                match (p.next(), u.next()) {
                    (None, None) => return true,
                    (Some(pc), Some(uc)) if pc.is_empty() || pc == uc => {}
                    _ => return false,
                }
            }
        }
    }
}

/// How specific a wildcard pattern is, for the dealer's precedence rule: patterns whose first
/// non-empty components come earliest win. Larger is more specific.
pub(crate) fn wildcard_specificity(pattern: &str) -> Vec<bool> {
    pattern.split('.').map(|c| !c.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_a_string_prefix() {
        assert!(matches(MatchPolicy::Prefix, "com.a", "com.abc"));
        assert!(matches(MatchPolicy::Prefix, "com.a", "com.a.b"));
        assert!(!matches(MatchPolicy::Prefix, "com.b", "com.a"));
    }

    #[test]
    fn wildcard_matches_one_component_per_empty_pattern_component() {
        assert!(matches(MatchPolicy::Wildcard, "com..update", "com.user.update"));
        assert!(!matches(MatchPolicy::Wildcard, "com..update", "com.user.x.update"));
        assert!(!matches(MatchPolicy::Wildcard, "com..update", "com.user.create"));
        assert!(matches(MatchPolicy::Wildcard, ".a.", "x.a.y"));
    }

    #[test]
    fn earlier_fixed_components_are_more_specific() {
        assert!(wildcard_specificity("a..c") > wildcard_specificity(".b.c"));
    }
}
