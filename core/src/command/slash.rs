//! Slash commands from the same table: the shape the Discord adapter registers, and the way
//! back from a slash interaction to an [`Invocation`] through the text parser.
//!
//! `/guard` has a subcommand group per first word (`rule`, `blacklist`, …; `rule set` is its
//! own group, `rule-set`, to stay within 25 subcommands per group) and a subcommand per
//! remaining words (`/guard rule-set keywords-add`). Single-word commands (`stats`, `why`,
//! `help`) are subcommands of `/guard` itself.

use crate::command::usage::{Element, Kind, elements, words};
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
    /// The values to pick from, when there are few (on/off, enforce/shadow, …).
    pub choices: &'static [&'static str],
    /// Whether Discord should ask for suggestions as it is typed (rule ids).
    pub autocomplete: bool,
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
    let words: Vec<&str> = words(spec).collect();
    match words.as_slice() {
        [single] => (None, (*single).to_owned()),
        ["rule", "set", rest @ ..] => (Some("rule-set".to_owned()), rest.join("-")),
        [group, rest @ ..] => (Some((*group).to_owned()), rest.join("-")),
        [] => (None, String::new()),
    }
}

/// Every command as slash subcommands.
pub fn slash_commands() -> Vec<SlashEntry> {
    let mut entries: Vec<SlashEntry> = Vec::new();
    for spec in COMMANDS {
        let (group, name) = names(spec);
        let mut options: Vec<SlashOption> = elements(spec)
            .iter()
            .filter_map(|e| match *e {
                Element::Word(_) => None,
                Element::Param {
                    name,
                    kind,
                    many,
                    optional,
                } => Some(SlashOption {
                    name,
                    description: kind.describe(many),
                    kind: kind.slash_kind(many),
                    required: !optional,
                    choices: if many { &[] } else { kind.choices() },
                    autocomplete: kind == Kind::Rule && !many,
                }),
                Element::Option { name, kind, .. } => Some(SlashOption {
                    name,
                    description: kind.describe(false),
                    kind: kind.slash_kind(false),
                    required: false,
                    choices: kind.choices(),
                    autocomplete: kind == Kind::Rule,
                }),
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
    parse(&slash_text(group, subcommand, options)?, platform)
}

/// The command line a slash interaction stands for (`!guard rule set ads keywords add …`),
/// for platforms that hand commands on as text.
pub fn slash_text(
    group: Option<&str>,
    subcommand: &str,
    options: &[(&str, &str)],
) -> Result<String, ParseError> {
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
    for element in elements(spec) {
        match *element {
            Element::Word(word) => {
                line.push(' ');
                line.push_str(word);
            }
            Element::Param {
                name,
                kind: Kind::Body,
                ..
            } => {
                if let Some(given) = value(name) {
                    body = given.to_owned();
                }
            }
            Element::Param { name, many, .. } => {
                if let Some(given) = value(name) {
                    line.push(' ');
                    // Several values are typed as several words.
                    line.push_str(&if many { given.to_owned() } else { quote(given) });
                }
            }
            Element::Option { flag, name, .. } => {
                if let Some(given) = value(name) {
                    line.push_str(&format!(" --{flag} {}", quote(given)));
                }
            }
        }
    }
    if !body.is_empty() {
        line.push('\n');
        line.push_str(&body);
    }
    Ok(line)
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
