//! Warning texts with placeholders: `{member}`, `{rule}`, `{check}`, `{count}`, `{next}`.
//!
//! A template is parsed once, when rules compile (an unknown placeholder or an unclosed `{`
//! is a configuration error), and filled in one pass: a member whose display name is
//! `{rule}` stays `{rule}`, because what is filled in is never read again.

use std::fmt::Write as _;

use crate::names::named;

named! {
    /// A placeholder of a warning template.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Field as "placeholder" {
        /// The member's display name (or id).
        Member = "member",
        /// The rule's name.
        Rule = "rule",
        /// The check that matched.
        Check = "check",
        /// The member's violations of the rule inside its decay window, this one included.
        Count = "count",
        /// The next rung of the ladder.
        Next = "next",
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    /// Bytes of literal text, so a filled text is allocated once.
    literal_len: usize,
}

/// Room for the values of a filled template's placeholders before its text grows again: a
/// name, a rule, a check, a count and a rung are usually shorter.
const FIELD_ROOM: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(Field),
}

impl Template {
    /// Parses a template, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or("a `{` is never closed")?;
            let name = &after[..close];
            // Exact: `{Member}` is text, not a placeholder.
            let field = Field::ALL
                .into_iter()
                .find(|f| f.as_str() == name)
                .ok_or_else(|| {
                    let known: Vec<String> =
                        Field::NAMES.iter().map(|n| format!("{{{n}}}")).collect();
                    format!("unknown placeholder `{{{name}}}`: use {}", known.join(", "))
                })?;
            parts.push(Part::Field(field));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let literal_len = parts
            .iter()
            .map(|p| match p {
                Part::Text(text) => text.len(),
                Part::Field(_) => 0,
            })
            .sum();
        Ok(Template { parts, literal_len })
    }

    /// The text with every placeholder filled by `value`, in one pass.
    pub fn fill(&self, mut value: impl FnMut(Field, &mut String)) -> String {
        let mut out = String::with_capacity(self.literal_len + FIELD_ROOM);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => value(*field, &mut out),
            }
        }
        out
    }
}

/// Writes `value` into a template being filled.
pub fn put(out: &mut String, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in_one_pass() {
        let template = Template::parse("{member}: {rule} ({check}) #{count}, next {next}").unwrap();
        let filled = template.fill(|field, out| match field {
            Field::Member => out.push_str("{rule}"),
            Field::Rule => out.push_str("No ads"),
            Field::Check => out.push_str("keyword"),
            Field::Count => put(out, 2),
            Field::Next => out.push_str("kick"),
        });
        assert_eq!(filled, "{rule}: No ads (keyword) #2, next kick");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert_eq!(
            Template::parse("hi {member").unwrap_err(),
            "a `{` is never closed"
        );
        assert_eq!(
            Template::parse("hi {name}").unwrap_err(),
            "unknown placeholder `{name}`: use {member}, {rule}, {check}, {count}, {next}"
        );
        assert_eq!(Template::parse("plain").unwrap().fill(|_, _| {}), "plain");
    }
}
