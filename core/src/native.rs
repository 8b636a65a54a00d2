//! What of a keyword rule a platform's own keyword filter can enforce before anyone sees the
//! message (Discord AutoMod), within that filter's limits, and what stays with groupguard's
//! own checks after the fact.
//!
//! Discord matches case-insensitively, `*k*` anywhere, a bare `k` as a whole word, and Rust
//! regexes on the raw text. It does not fold look-alike letters, strip spacing or convert
//! traditional characters, so those evasions are caught only by groupguard itself.

use crate::rule::Rule;

/// A native filter's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeLimits {
    /// Keywords per filter rule.
    pub keywords: usize,
    /// Characters per keyword, wildcards included.
    pub keyword_chars: usize,
    /// Regular expressions per filter rule.
    pub regexes: usize,
    /// Characters per regular expression.
    pub regex_chars: usize,
}

/// Discord AutoMod's keyword rules.
pub const DISCORD_AUTOMOD: NativeLimits = NativeLimits {
    keywords: 1_000,
    keyword_chars: 60,
    regexes: 10,
    regex_chars: 260,
};

/// A rule's part that a native filter enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeFilter {
    /// Keywords in the filter's syntax: `*k*` anywhere, `k` as a whole word.
    pub keywords: Vec<String>,
    /// Regular expressions, case-insensitive.
    pub regexes: Vec<String>,
    /// What stays with groupguard's own checks, in words.
    pub left_out: Vec<String>,
}

impl NativeFilter {
    /// The part of `rule` a filter with `limits` can enforce; `None` when it has no keywords
    /// or patterns at all.
    pub fn of(rule: &Rule, limits: &NativeLimits) -> Option<NativeFilter> {
        if rule.keywords.is_none() && rule.regex.is_none() {
            return None;
        }
        let substrings = rule.keywords.iter().flat_map(|k| &k.substrings);
        let words = rule.keywords.iter().flat_map(|k| &k.words);
        let patterns = rule.regex.iter().flat_map(|r| &r.patterns);
        let mut filter = NativeFilter::default();
        let mut too_long = 0;
        let mut unrepresentable = 0;
        let candidates = substrings
            .map(|k| format!("*{}*", k.trim()))
            .chain(words.map(|w| w.trim().to_owned()));
        for keyword in candidates {
            // A `*` inside a keyword would be read as a wildcard.
            if keyword.trim_matches('*').contains('*') {
                unrepresentable += 1;
            } else if keyword.chars().count() > limits.keyword_chars {
                too_long += 1;
            } else {
                filter.keywords.push(keyword);
            }
        }
        let beyond = filter.keywords.len().saturating_sub(limits.keywords);
        filter.keywords.truncate(limits.keywords);
        let mut long_patterns = 0;
        for pattern in patterns {
            let pattern = format!("(?i){pattern}");
            if pattern.chars().count() > limits.regex_chars {
                long_patterns += 1;
            } else {
                filter.regexes.push(pattern);
            }
        }
        let patterns_beyond = filter.regexes.len().saturating_sub(limits.regexes);
        filter.regexes.truncate(limits.regexes);
        let mut left = |n: usize, what: &str| {
            if n > 0 {
                filter.left_out.push(format!("{n} {what}"));
            }
        };
        left(beyond, "keywords beyond the filter's limit");
        left(too_long, "keywords too long for the filter");
        left(unrepresentable, "keywords with a literal *");
        left(patterns_beyond, "patterns beyond the filter's limit");
        left(long_patterns, "patterns too long for the filter");
        filter
            .left_out
            .push("evasions (spacing, look-alike letters, traditional characters)".to_owned());
        let other = [
            (rule.phone.is_some(), "phone numbers"),
            (rule.links.is_some(), "links"),
            (rule.flood.is_some(), "flood"),
            (rule.duplicates.is_some(), "duplicates"),
            (!rule.banned_kinds.is_empty(), "message kinds"),
            (rule.mini_programs.is_some(), "mini-programs"),
        ];
        filter.left_out.extend(
            other
                .into_iter()
                .filter(|(on, _)| *on)
                .map(|(_, what)| what.to_owned()),
        );
        Some(filter)
    }

    /// A note for `rule show`: what is mirrored and what stays with groupguard.
    pub fn describe(&self) -> String {
        format!(
            "Discord AutoMod (guilds with automod on) blocks {} keywords and {} patterns before \
             anyone sees them; groupguard itself still checks {}",
            self.keywords.len(),
            self.regexes.len(),
            self.left_out.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rulefile;

    fn rule(text: &str) -> Rule {
        rulefile::parse(text).unwrap().rules.remove(0)
    }

    #[test]
    fn keywords_become_wildcards_or_whole_words_within_the_limits() {
        let long = "x".repeat(70);
        let many: Vec<String> = (0..1_005).map(|i| format!("\"kw{i}\"")).collect();
        let r = rule(&format!(
            "[[rules]]\nid = \"ads\"\nkeywords = {{ substrings = [\"代购\", \"{long}\", \"a*b\", {}], words = [\"sex\"] }}\n\
             regex = {{ patterns = [\"v[x]\\\\d+\"] }}\nphone = {{}}\n",
            many.join(", ")
        ));
        let filter = NativeFilter::of(&r, &DISCORD_AUTOMOD).unwrap();
        assert_eq!(filter.keywords.len(), 1_000);
        assert_eq!(filter.keywords[0], "*代购*");
        assert_eq!(filter.regexes, ["(?i)v[x]\\d+"]);
        assert_eq!(
            filter.left_out,
            [
                "7 keywords beyond the filter's limit",
                "1 keywords too long for the filter",
                "1 keywords with a literal *",
                "evasions (spacing, look-alike letters, traditional characters)",
                "phone numbers"
            ]
        );
        let flood = rule("[[rules]]\nid = \"f\"\nflood = { messages = 5, per = \"10s\" }\n");
        assert_eq!(NativeFilter::of(&flood, &DISCORD_AUTOMOD), None);
    }
}
