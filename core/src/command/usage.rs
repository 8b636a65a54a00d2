//! The usage mini-language of the command table, parsed once per command.
//!
//! A usage is words, `<name:kind>` (one value), `<name:kind...>` (one or more),
//! `[<name:kind>]` and `[<name:kind...>]` (optional), `[--flag <name:kind>]` (an option) and
//! `<name:body>` (the lines after the command line). Each kind knows, in one place, how to
//! read a value, how to describe it and what type a slash option of it has; the text parser,
//! the help and the slash commands all work from the parsed [`Element`]s. A malformed usage
//! or an unknown kind is an error that the table's tests catch.

use std::sync::OnceLock;

use crate::command::slash::SlashKind;
use crate::command::{COMMANDS, CommandSpec, Value, template};
use crate::compile::first_line_of_regex_error;
use crate::detect::links::normalize_domain;
use crate::model::{GroupRef, KindName, MemberRef, Platform, RuleId};
use crate::names::named;
use crate::rule::{LinkMode, ManualRemovals, Mode, Rung};
use crate::time::duration_text;

named! {
    /// The kinds of values a usage can ask for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Kind as "value kind" {
        /// A rule id.
        Rule = "rule",
        /// Free text.
        Text = "text",
        /// A number.
        Int = "int",
        /// A duration.
        Duration = "duration",
        /// A member.
        Member = "member",
        /// A group.
        Group = "group",
        /// A group tag.
        Tag = "tag",
        /// on or off.
        OnOff = "onoff",
        /// An audit entry id.
        Audit = "audit",
        /// A message kind.
        Message = "kind",
        /// A link mode.
        LinkMode = "linkmode",
        /// enforce or shadow.
        Mode = "mode",
        /// A template name.
        Template = "template",
        /// What manual removals do.
        Removals = "removals",
        /// csv or json.
        Format = "format",
        /// A ladder rung.
        Rung = "rung",
        /// A domain.
        Domain = "domain",
        /// A regular expression.
        Regex = "regex",
        /// The lines after the command line.
        Body = "body",
    }
}

impl Kind {
    /// What to type, for help and slash option descriptions.
    pub(crate) fn describe(self, many: bool) -> String {
        let what = match self {
            Kind::Rule => "rule id",
            Kind::Member => "member id (or platform:id)",
            Kind::Group => "group id (or platform:id)",
            Kind::Duration => "duration such as 30s, 10m, 24h, 7d",
            Kind::OnOff => "on or off",
            Kind::Message => "message kind: text, image, voice, file, …",
            Kind::LinkMode => "deny-listed, allow-listed-only or off",
            Kind::Mode => "enforce or shadow",
            Kind::Template => "retail, education, b2b or finance",
            Kind::Removals => "off, org or personal",
            Kind::Format => "csv or json",
            Kind::Rung => "ladder rung such as delete+warn",
            Kind::Domain => "domain such as example.com",
            Kind::Regex => "regular expression",
            Kind::Body => "the text, one entry per line",
            Kind::Int | Kind::Audit => "number",
            Kind::Text | Kind::Tag => "text",
        };
        if many {
            format!("{what}, several separated by spaces")
        } else {
            what.to_owned()
        }
    }

    /// The values to pick from, for kinds with few.
    pub(crate) fn choices(self) -> &'static [&'static str] {
        match self {
            Kind::OnOff => &["on", "off"],
            Kind::Mode => &["enforce", "shadow"],
            Kind::LinkMode => &["deny-listed", "allow-listed-only", "off"],
            Kind::Template => &["retail", "education", "b2b", "finance"],
            Kind::Removals => &["off", "org", "personal"],
            Kind::Format => &["csv", "json"],
            Kind::Message => &KindName::NAMES,
            _ => &[],
        }
    }

    /// The type of a slash option of this kind.
    pub(crate) fn slash_kind(self, many: bool) -> SlashKind {
        match self {
            Kind::Int | Kind::Audit if !many => SlashKind::Integer,
            _ => SlashKind::String,
        }
    }

    /// Reads one value; `platform` resolves bare member and group ids.
    pub(crate) fn parse(
        self,
        name: &str,
        token: &str,
        platform: Platform,
    ) -> Result<Value, String> {
        let lower = token.to_lowercase();
        Ok(match self {
            Kind::Rule => {
                if !RuleId::is_valid(token) {
                    return Err(format!(
                        "`{token}` is not a rule id (letters, digits, - and _)"
                    ));
                }
                Value::Rule(RuleId::new(token))
            }
            Kind::Text | Kind::Body => Value::Text(token.to_owned()),
            Kind::Tag => {
                if token.trim().is_empty() {
                    return Err(format!("<{name}> cannot be empty"));
                }
                Value::Text(token.to_owned())
            }
            Kind::Int | Kind::Audit => match token.parse::<i64>() {
                Ok(n) if n >= 0 => Value::Int(n),
                _ => return Err(format!("`{token}` is not a number for <{name}>")),
            },
            Kind::Duration => Value::Duration(duration_text::parse(token)?),
            Kind::Member => Value::Member(match token.parse::<MemberRef>() {
                Ok(m) if names_platform(token) => m,
                _ => MemberRef::new(platform, token),
            }),
            Kind::Group => Value::Group(match token.parse::<GroupRef>() {
                Ok(g) if names_platform(token) => g,
                _ => GroupRef::new(platform, token),
            }),
            Kind::OnOff => match lower.as_str() {
                "on" | "yes" | "true" => Value::Bool(true),
                "off" | "no" | "false" => Value::Bool(false),
                _ => return Err(format!("`{token}` is not on or off")),
            },
            Kind::Message => Value::Kind(token.parse::<KindName>().map_err(|e| e.to_string())?),
            Kind::LinkMode => Value::LinkMode(match lower.as_str() {
                "off" => None,
                other => Some(other.replace('-', "_").parse::<LinkMode>().map_err(|_| {
                    format!("`{token}` is not deny-listed, allow-listed-only or off")
                })?),
            }),
            Kind::Mode => Value::Mode(
                lower
                    .parse::<Mode>()
                    .map_err(|_| format!("`{token}` is not enforce or shadow"))?,
            ),
            Kind::Removals => {
                Value::Removals(lower.parse::<ManualRemovals>().map_err(|e| e.to_string())?)
            }
            Kind::Template => match template(&lower) {
                Some(_) => Value::Text(lower),
                None => {
                    return Err(format!(
                        "`{token}` is not a template: retail, education, b2b or finance"
                    ));
                }
            },
            Kind::Format => match lower.as_str() {
                "csv" | "json" => Value::Text(lower),
                _ => return Err(format!("`{token}` is not csv or json")),
            },
            Kind::Rung => Value::Rung(token.parse::<Rung>()?),
            Kind::Domain => Value::Text(normalize_domain(token)?),
            Kind::Regex => {
                regex::RegexBuilder::new(token)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| {
                        format!("bad pattern `{token}`: {}", first_line_of_regex_error(&e))
                    })?;
                Value::Text(token.to_owned())
            }
        })
    }
}

/// Whether a `platform:id` token names a platform (`matrix:@bob:hs`), rather than being a
/// bare id that happens to hold a colon.
fn names_platform(token: &str) -> bool {
    token
        .split_once(':')
        .is_some_and(|(p, _)| p.parse::<Platform>().is_ok())
}

/// One part of a usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Element {
    /// A literal word.
    Word(&'static str),
    /// A value in place.
    Param {
        name: &'static str,
        kind: Kind,
        many: bool,
        optional: bool,
    },
    /// `--flag <value>`, anywhere after the words.
    Option {
        flag: &'static str,
        name: &'static str,
        kind: Kind,
    },
}

/// Parses a usage; a malformed part or an unknown kind is an error.
pub(crate) fn parse_usage(usage: &'static str) -> Result<Vec<Element>, String> {
    let mut out = Vec::new();
    let mut words = usage.split_whitespace();
    while let Some(word) = words.next() {
        let element = if let Some(flag) = word.strip_prefix("[--") {
            let param = words
                .next()
                .and_then(|p| p.strip_suffix(']'))
                .ok_or_else(|| format!("`{usage}`: option --{flag} needs `<name:kind>]`"))?;
            let (name, kind, many) = param_parts(usage, param)?;
            if many {
                return Err(format!("`{usage}`: option --{flag} takes one value"));
            }
            Element::Option { flag, name, kind }
        } else if let Some(param) = word.strip_prefix('[') {
            let param = param
                .strip_suffix(']')
                .ok_or_else(|| format!("`{usage}`: `{word}` is not closed"))?;
            let (name, kind, many) = param_parts(usage, param)?;
            Element::Param {
                name,
                kind,
                many,
                optional: true,
            }
        } else if word.starts_with('<') {
            let (name, kind, many) = param_parts(usage, word)?;
            Element::Param {
                name,
                kind,
                many,
                optional: false,
            }
        } else if word.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            Element::Word(word)
        } else {
            return Err(format!(
                "`{usage}`: `{word}` is neither a word nor a parameter"
            ));
        };
        out.push(element);
    }
    Ok(out)
}

/// `<name:kind...>` → (name, kind, many).
fn param_parts(usage: &str, param: &'static str) -> Result<(&'static str, Kind, bool), String> {
    let inner = param
        .strip_prefix('<')
        .and_then(|p| p.strip_suffix('>'))
        .ok_or_else(|| format!("`{usage}`: `{param}` is not <name:kind>"))?;
    let (inner, many) = match inner.strip_suffix("...") {
        Some(stripped) => (stripped, true),
        None => (inner, false),
    };
    let (name, kind) = inner
        .split_once(':')
        .ok_or_else(|| format!("`{usage}`: `{param}` has no kind"))?;
    let kind = kind
        .parse::<Kind>()
        .map_err(|_| format!("`{usage}`: `{param}` has the unknown kind `{kind}`"))?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(format!("`{usage}`: `{param}` has a bad name"));
    }
    Ok((name, kind, many))
}

/// The elements of a command's usage, parsed once. A malformed usage has none (and fails the
/// table's tests).
pub(crate) fn elements(spec: &CommandSpec) -> &'static [Element] {
    static PARSED: OnceLock<Vec<Vec<Element>>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        COMMANDS
            .iter()
            .map(|c| parse_usage(c.usage).unwrap_or_default())
            .collect()
    });
    COMMANDS
        .iter()
        .position(|c| c.id == spec.id)
        .map_or(&[], |i| &parsed[i])
}

/// A usage as people read it: `<rule>` instead of `<rule:rule>`.
pub fn display_usage(spec: &CommandSpec) -> String {
    elements(spec)
        .iter()
        .map(|e| match *e {
            Element::Word(w) => w.to_owned(),
            Element::Param {
                name,
                many,
                optional,
                ..
            } => {
                let dots = if many { "..." } else { "" };
                if optional {
                    format!("[<{name}{dots}>]")
                } else {
                    format!("<{name}{dots}>")
                }
            }
            Element::Option { flag, name, .. } => format!("[--{flag} <{name}>]"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A command's literal words (`rule set keywords add` for `rule set <rule> keywords add …`),
/// which help filters by and refusals name.
pub fn literal_path(spec: &CommandSpec) -> String {
    words(spec).collect::<Vec<_>>().join(" ")
}

/// A command's literal words.
pub(crate) fn words(spec: &CommandSpec) -> impl Iterator<Item = &'static str> {
    elements(spec).iter().filter_map(|e| match e {
        Element::Word(w) => Some(*w),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_usage_in_the_table_parses() {
        for spec in COMMANDS {
            let elements = parse_usage(spec.usage).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                matches!(elements.first(), Some(Element::Word(_))),
                "{} starts with a word",
                spec.usage
            );
        }
    }

    #[test]
    fn a_bad_usage_is_an_error_not_free_text() {
        for (usage, error) in [
            ("rule show <rule:rul>", "has the unknown kind `rul`"),
            ("rule show <rule>", "has no kind"),
            ("rule show [<rule:rule>", "is not closed"),
            ("stats [--group <group:group...>]", "takes one value"),
            ("stats [--group]", "needs `<name:kind>]`"),
            ("Rule show", "is neither a word nor a parameter"),
            ("rule show <Rule:rule>", "has a bad name"),
        ] {
            let err = parse_usage(usage).unwrap_err();
            assert!(err.contains(error), "{usage}: {err}");
        }
    }

    #[test]
    fn usages_read_as_people_type_them() {
        let spec = crate::command::spec(crate::command::CommandId::BlacklistAdd);
        assert_eq!(
            display_usage(spec),
            "blacklist add <member> [<reason...>] [--personal <personal>] [--expires <expires>]"
        );
        assert_eq!(literal_path(spec), "blacklist add");
    }
}
