//! Slash commands from the same table: the shape the Discord adapter registers, and the way
//! back from a slash interaction to an [`Invocation`] through the text parser.
//!
//! `/guard` has a subcommand group per first word (`rule`, `blacklist`, …; `rule set` is its
//! own group, `rule-set`, to stay within 25 subcommands per group) and a subcommand per
//! remaining words (`/guard rule-set keywords-add`). Single-word commands (`stats`, `why`,
//! `help`) are subcommands of `/guard` itself.

use crate::command::{COMMANDS, CommandSpec, Invocation, ParseError, parse};
use crate::model::Platform;

/// The type of a slash option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlashKind {
    /// Text.
    String,
    /// A whole number.
    Integer,
}

/// One option of a slash subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashOption {
    /// Its name (the parameter's).
    pub name: &'static str,
    /// What to type.
    pub description: String,
    /// Its type.
    pub kind: SlashKind,
    /// Whether it must be given.
    pub required: bool,
}

/// A slash subcommand: one command of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashSubcommand {
    /// Its name within its group.
    pub name: String,
    /// The command's summary (at most 100 characters).
    pub description: String,
    /// Its options, required ones first.
    pub options: Vec<SlashOption>,
    /// The table entry.
    pub spec: &'static CommandSpec,
}

/// A subcommand group, or a subcommand directly under `/guard`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlashEntry {
    /// `/guard <group> <subcommand>`.
    Group {
        /// The group's name.
        name: String,
        /// Its subcommands.
        subcommands: Vec<SlashSubcommand>,
    },
    /// `/guard <subcommand>`.
    Command(SlashSubcommand),
}

/// The group and subcommand names of a spec.
fn names(spec: &CommandSpec) -> (Option<String>, String) {
    let words: Vec<&str> = spec
        .usage
        .split_whitespace()
        .filter(|w| !w.starts_with('<') && !w.starts_with('['))
        .collect();
    match words.as_slice() {
        [single] => (None, (*single).to_owned()),
        ["rule", "set", rest @ ..] => (Some("rule-set".to_owned()), rest.join("-")),
        [group, rest @ ..] => (Some((*group).to_owned()), rest.join("-")),
        [] => (None, String::new()),
    }
}

/// Parameters of a usage: (name, kind, many, required, option flag).
fn params(
    usage: &'static str,
) -> Vec<(&'static str, &'static str, bool, bool, Option<&'static str>)> {
    let mut out = Vec::new();
    let mut words = usage.split_whitespace();
    while let Some(word) = words.next() {
        let (flag, param, required) = if let Some(flag) = word.strip_prefix("[--") {
            (Some(flag), words.next().unwrap_or_default(), false)
        } else if let Some(param) = word.strip_prefix('[') {
            (None, param, false)
        } else if word.starts_with('<') {
            (None, word, true)
        } else {
            continue;
        };
        let inner = param
            .trim_end_matches(']')
            .trim_start_matches('<')
            .trim_end_matches('>');
        let (inner, many) = match inner.strip_suffix("...") {
            Some(stripped) => (stripped, true),
            None => (inner, false),
        };
        let (name, kind) = inner.split_once(':').unwrap_or((inner, "text"));
        out.push((name, kind, many, required, flag));
    }
    out
}

fn describe(kind: &str, many: bool) -> String {
    let what = match kind {
        "rule" => "rule id",
        "member" => "member id (or platform:id)",
        "group" => "group id (or platform:id)",
        "duration" => "duration such as 30s, 10m, 24h, 7d",
        "onoff" => "on or off",
        "kind" => "message kind: text, image, voice, file, …",
        "linkmode" => "deny-listed, allow-listed-only or off",
        "mode" => "enforce or shadow",
        "template" => "retail, education, b2b or finance",
        "removals" => "off, org or personal",
        "format" => "csv or json",
        "rung" => "ladder rung such as delete+warn",
        "domain" => "domain such as example.com",
        "regex" => "regular expression",
        "body" => "the text, one entry per line",
        "int" | "audit" => "number",
        _ => "text",
    };
    if many {
        format!("{what}, several separated by spaces")
    } else {
        what.to_owned()
    }
}

/// Every command as slash subcommands.
pub fn slash_commands() -> Vec<SlashEntry> {
    let mut entries: Vec<SlashEntry> = Vec::new();
    for spec in COMMANDS {
        let (group, name) = names(spec);
        let mut options: Vec<SlashOption> = params(spec.usage)
            .into_iter()
            .map(|(name, kind, many, required, _)| SlashOption {
                name,
                description: describe(kind, many),
                kind: if matches!(kind, "int" | "audit") && !many {
                    SlashKind::Integer
                } else {
                    SlashKind::String
                },
                required,
            })
            .collect();
        // Discord wants required options before optional ones.
        options.sort_by_key(|o| !o.required);
        let subcommand = SlashSubcommand {
            name,
            description: spec.summary.chars().take(100).collect(),
            options,
            spec,
        };
        match group {
            None => entries.push(SlashEntry::Command(subcommand)),
            Some(group) => match entries
                .iter_mut()
                .find(|e| matches!(e, SlashEntry::Group { name, .. } if *name == group))
            {
                Some(SlashEntry::Group { subcommands, .. }) => subcommands.push(subcommand),
                _ => entries.push(SlashEntry::Group {
                    name: group,
                    subcommands: vec![subcommand],
                }),
            },
        }
    }
    entries
}

/// The invocation for a slash interaction: `group` (none for top-level), `subcommand` and
/// the option values as typed. It is rebuilt as a command line and parsed, so slash and text
/// commands are checked by the same code.
pub fn from_slash(
    group: Option<&str>,
    subcommand: &str,
    options: &[(&str, &str)],
    platform: Platform,
) -> Result<Invocation, ParseError> {
    let spec = COMMANDS
        .iter()
        .find(|spec| {
            let (g, name) = names(spec);
            g.as_deref() == group && name == subcommand
        })
        .ok_or_else(|| {
            ParseError(format!(
                "unknown command `{} {subcommand}`: type /guard help",
                group.unwrap_or_default()
            ))
        })?;
    let value = |name: &str| options.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let mut line = String::from("!guard");
    let mut body = String::new();
    let mut words = spec.usage.split_whitespace();
    while let Some(word) = words.next() {
        let (flag, param) = if let Some(flag) = word.strip_prefix("[--") {
            (Some(flag), words.next().unwrap_or_default())
        } else if word.starts_with('<') || word.starts_with('[') {
            (None, word)
        } else {
            line.push(' ');
            line.push_str(word);
            continue;
        };
        let inner = param.trim_start_matches('[').trim_start_matches('<');
        let (name, rest) = inner.split_once(':').unwrap_or((inner, ""));
        let Some(given) = value(name) else { continue };
        if rest.starts_with("body") {
            body = given.to_owned();
        } else if let Some(flag) = flag {
            line.push_str(&format!(" --{flag} {}", quote(given)));
        } else if rest.contains("...") {
            line.push(' ');
            line.push_str(given);
        } else {
            line.push(' ');
            line.push_str(&quote(given));
        }
    }
    if !body.is_empty() {
        line.push('\n');
        line.push_str(&body);
    }
    parse(&line, platform)
}

/// A value as one command-line word.
fn quote(value: &str) -> String {
    if value.is_empty() || value.contains(char::is_whitespace) {
        if value.contains('"') {
            format!("'{value}'")
        } else {
            format!("\"{value}\"")
        }
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandId;

    fn valid_name(name: &str) -> bool {
        (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    }

    #[test]
    fn every_command_is_a_slash_subcommand_within_discord_limits() {
        let entries = slash_commands();
        assert!(entries.len() <= 25);
        let mut count = 0;
        for entry in &entries {
            let subcommands = match entry {
                SlashEntry::Group { name, subcommands } => {
                    assert!(valid_name(name), "{name}");
                    assert!(subcommands.len() <= 25, "{name} has {}", subcommands.len());
                    subcommands.clone()
                }
                SlashEntry::Command(c) => vec![c.clone()],
            };
            for sub in subcommands {
                count += 1;
                assert!(valid_name(&sub.name), "{}", sub.name);
                assert!(!sub.description.is_empty() && sub.description.chars().count() <= 100);
                assert!(sub.options.len() <= 25);
                for option in &sub.options {
                    assert!(valid_name(option.name), "{}", option.name);
                }
                let first_optional = sub
                    .options
                    .iter()
                    .position(|o| !o.required)
                    .unwrap_or(sub.options.len());
                assert!(sub.options[first_optional..].iter().all(|o| !o.required));
            }
        }
        assert_eq!(count, COMMANDS.len());
    }

    #[test]
    fn slash_interactions_parse_like_text_commands() {
        let text = |line: &str| parse(line, Platform::Discord).unwrap();
        let inv = from_slash(
            Some("rule-set"),
            "keywords-add",
            &[("rule", "ads"), ("keywords", "加微信 \"buy now\"")],
            Platform::Discord,
        )
        .unwrap();
        assert_eq!(
            inv,
            text("!guard rule set ads keywords add 加微信 \"buy now\"")
        );
        let inv = from_slash(
            Some("blacklist"),
            "add",
            &[
                ("member", "80351110224678912"),
                ("reason", "raid spam"),
                ("expires", "7d"),
            ],
            Platform::Discord,
        )
        .unwrap();
        assert_eq!(
            inv,
            text("!guard blacklist add 80351110224678912 raid spam --expires 7d")
        );
        let inv = from_slash(None, "stats", &[("days", "30")], Platform::Discord).unwrap();
        assert_eq!(inv.command, CommandId::Stats);
        assert_eq!(inv.args.int("days"), Some(30));
        let inv = from_slash(
            Some("config"),
            "import",
            &[("file", "[[rules]]\nid = \"x\"")],
            Platform::Discord,
        )
        .unwrap();
        assert_eq!(
            inv.args.text("file").as_deref(),
            Some("[[rules]]\nid = \"x\"")
        );
        let err = from_slash(Some("rule"), "delete", &[], Platform::Discord).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing <rule>: usage: !guard rule delete <rule>"
        );
        let err = from_slash(Some("rule"), "frob", &[], Platform::Discord).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown command `rule frob`: type /guard help"
        );
    }
}
