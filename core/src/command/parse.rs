//! The text parser: `!guard …` (or `/guard …`) into an [`Invocation`], driven by the table.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::command::usage::{Element, Kind, elements};
use crate::command::{COMMANDS, CommandId, CommandSpec, display_usage, literal_path};
use crate::model::{GroupRef, KindName, MemberRef, Platform, RuleId};
use crate::rule::{LinkMode, ManualRemovals, Mode, Rung};

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Which command.
    pub command: CommandId,
    /// Its arguments by name.
    pub args: Args,
}

/// One argument's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A rule id.
    Rule(RuleId),
    /// Free text or an id.
    Text(String),
    /// A number.
    Int(i64),
    /// A duration.
    Duration(Duration),
    /// A member.
    Member(MemberRef),
    /// A group.
    Group(GroupRef),
    /// on / off.
    Bool(bool),
    /// A message kind.
    Kind(KindName),
    /// A ladder rung.
    Rung(Rung),
    /// enforce / shadow.
    Mode(Mode),
    /// How links are judged; `None` turns the link check off.
    LinkMode(Option<LinkMode>),
    /// What a manual removal does to the blacklist.
    Removals(ManualRemovals),
    /// Several values (`<name:kind...>`).
    List(Vec<Value>),
}

/// Arguments by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(BTreeMap<&'static str, Value>);

impl Args {
    /// The raw value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Every value of a list argument (empty when absent).
    pub fn list(&self, name: &str) -> &[Value] {
        match self.0.get(name) {
            Some(Value::List(values)) => values,
            _ => &[],
        }
    }

    /// Text; a list of words is joined with spaces.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::List(words) => Some(
                words
                    .iter()
                    .filter_map(Value::as_text)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            value => value.as_text().map(str::to_owned),
        }
    }

    /// Every text of a list argument.
    pub fn texts(&self, name: &str) -> Vec<String> {
        self.list(name)
            .iter()
            .filter_map(Value::as_text)
            .map(str::to_owned)
            .collect()
    }
}

/// Typed access to one argument (`rule`, `int`, …) and to every value of a list argument
/// (`rungs`, `kinds`, `groups`), for each kind of value.
macro_rules! typed_args {
    ($(
        $(#[$doc:meta])* $one:ident $(/ $many:ident)?: $variant:ident -> $ty:ty, $read:expr;
    )+) => {
        impl Args {
            $(
                $(#[$doc])*
                pub fn $one(&self, name: &str) -> Option<$ty> {
                    match self.0.get(name)? {
                        Value::$variant(v) => Some($read(v)),
                        _ => None,
                    }
                }

                $(
                    #[doc = concat!("Every value of a list argument, as [`Args::", stringify!($one), "`].")]
                    pub fn $many(&self, name: &str) -> Vec<$ty> {
                        self.list(name)
                            .iter()
                            .filter_map(|value| match value {
                                Value::$variant(v) => Some($read(v)),
                                _ => None,
                            })
                            .collect()
                    }
                )?
            )+
        }
    };
}

typed_args! {
    /// A rule id.
    rule: Rule -> RuleId, RuleId::clone;
    /// A number.
    int: Int -> i64, |n: &i64| *n;
    /// A duration.
    duration: Duration -> Duration, |d: &Duration| *d;
    /// A member.
    member: Member -> MemberRef, MemberRef::clone;
    /// A group.
    group / groups: Group -> GroupRef, GroupRef::clone;
    /// on / off.
    flag: Bool -> bool, |b: &bool| *b;
    /// enforce / shadow.
    mode: Mode -> Mode, |m: &Mode| *m;
    /// A link mode; `None` turns the link check off.
    link_mode: LinkMode -> Option<LinkMode>, |m: &Option<LinkMode>| *m;
    /// What a manual removal does.
    removals: Removals -> ManualRemovals, |r: &ManualRemovals| *r;
    /// A ladder rung.
    rung / rungs: Rung -> Rung, Rung::clone;
    /// A message kind.
    kind / kinds: Kind -> KindName, |k: &KindName| *k;
}

impl Value {
    fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// A value the command table promises a command but the parse did not give: the table and
/// the command's handler disagree, which is never the member's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("internal error: the command has no <{0}>; please report it")]
pub struct MissingArg(pub &'static str);

/// A required argument, or the mismatch that it is missing.
pub fn need<T>(value: Option<T>, name: &'static str) -> Result<T, MissingArg> {
    value.ok_or(MissingArg(name))
}

/// Why a command line was refused. The message says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Splits a command line into words; quotes ("…", '…', “…”) keep spaces inside a word.
fn tokenize(line: &str) -> Result<Vec<String>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let close = match c {
            '"' => Some('"'),
            '\'' => Some('\''),
            '“' => Some('”'),
            _ => None,
        };
        let mut token = String::new();
        if let Some(close) = close {
            chars.next();
            loop {
                match chars.next() {
                    Some(c) if c == close => break,
                    Some(c) => token.push(c),
                    None => return Err(ParseError(format!("a quote {c} is never closed"))),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                token.push(c);
                chars.next();
            }
        }
        tokens.push(token);
    }
    Ok(tokens)
}

/// The prefixes a command line may start with.
pub const PREFIXES: [&str; 2] = ["!guard", "/guard"];

/// Parses a `!guard …` message. `platform` resolves bare member and group ids.
pub fn parse(text: &str, platform: Platform) -> Result<Invocation, ParseError> {
    let text = text.trim_start();
    let (line, body) = text.split_once('\n').unwrap_or((text, ""));
    let rest = PREFIXES
        .iter()
        .find_map(|p| {
            line.get(..p.len())
                .filter(|head| head.eq_ignore_ascii_case(p))
                .map(|_| &line[p.len()..])
        })
        .ok_or_else(|| ParseError("commands start with !guard (or /guard)".to_owned()))?;
    let tokens = tokenize(rest)?;
    if tokens.is_empty() {
        return Ok(Invocation {
            command: CommandId::Help,
            args: Args::default(),
        });
    }
    let mut best: Option<(usize, &CommandSpec, Failure)> = None;
    for spec in COMMANDS {
        match match_spec(spec, &tokens, body, platform) {
            Ok(args) => {
                return Ok(Invocation {
                    command: spec.id,
                    args,
                });
            }
            Err((matched, failure)) => {
                if best.as_ref().is_none_or(|(m, _, _)| matched > *m) {
                    best = Some((matched, spec, failure));
                }
            }
        }
    }
    let Some((matched, spec, failure)) = best else {
        return Err(unknown(&tokens, 0));
    };
    if matched < FULL {
        return Err(unknown(&tokens, matched));
    }
    Err(ParseError(match failure {
        Failure::Missing(name) => {
            format!("missing <{name}>: usage: !guard {}", display_usage(spec))
        }
        Failure::Extra(token) => format!(
            "unexpected `{token}`: usage: !guard {}",
            display_usage(spec)
        ),
        Failure::Bad(message) => format!("{message}: usage: !guard {}", display_usage(spec)),
        Failure::Word => unknown(&tokens, matched).0,
    }))
}

/// Ranks a failure of a spec whose every literal word matched above any other.
const FULL: usize = usize::MAX / 2;

fn unknown(tokens: &[String], matched_words: usize) -> ParseError {
    let typed = tokens.join(" ");
    if matched_words == 0 {
        return ParseError(format!(
            "unknown command `{}`: type !guard help for the list",
            tokens[0]
        ));
    }
    let prefix = tokens[..matched_words].join(" ").to_lowercase();
    let similar: Vec<String> = COMMANDS
        .iter()
        .filter(|c| literal_path(c).starts_with(&prefix))
        .map(display_usage)
        .collect();
    ParseError(format!(
        "unknown command `{typed}`: did you mean\n{}",
        similar
            .iter()
            .map(|u| format!("  !guard {u}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// How a spec failed to match, for choosing the most helpful message.
#[derive(Debug)]
enum Failure {
    /// A literal word differs.
    Word,
    /// A required value is missing.
    Missing(&'static str),
    /// A token is left over.
    Extra(String),
    /// A value is malformed.
    Bad(String),
}

/// Matches tokens against one spec. On failure: how many literal words matched (every word
/// matched ranks above any partial match, so its own message wins) and why.
fn match_spec(
    spec: &CommandSpec,
    tokens: &[String],
    body: &str,
    platform: Platform,
) -> Result<Args, (usize, Failure)> {
    let elements = elements(spec);
    let all_words = elements
        .iter()
        .filter(|e| matches!(e, Element::Word(_)))
        .count();
    let mut args = Args::default();
    let mut i = 0;
    let mut words = 0;
    let full = |words: usize| if words == all_words { FULL } else { words };
    let positionals_end = tokens
        .iter()
        .position(|t| t.starts_with("--"))
        .unwrap_or(tokens.len());
    for element in elements {
        match *element {
            Element::Word(w) => {
                if tokens.get(i).is_some_and(|t| t.eq_ignore_ascii_case(w)) {
                    words += 1;
                    i += 1;
                } else {
                    return Err((words, Failure::Word));
                }
            }
            Element::Param {
                name,
                kind: Kind::Body,
                ..
            } => {
                if body.trim().is_empty() {
                    return Err((full(words), Failure::Missing(name)));
                }
                args.0.insert(name, Value::Text(body.to_owned()));
            }
            Element::Param {
                name,
                kind,
                many,
                optional,
            } => {
                let end = if many {
                    positionals_end.max(i)
                } else {
                    (i + 1).min(positionals_end.max(i))
                };
                let taken = &tokens[i.min(tokens.len())..end.min(tokens.len())];
                if taken.is_empty() {
                    if optional {
                        continue;
                    }
                    return Err((full(words), Failure::Missing(name)));
                }
                let values = taken
                    .iter()
                    .map(|t| kind.parse(name, t, platform))
                    .collect::<Result<Vec<_>, _>>();
                let values = match values {
                    Ok(v) => v,
                    // A bad value before all literal words are seen may just be another command.
                    Err(message) if words < all_words => {
                        return Err((words, Failure::Bad(message)));
                    }
                    Err(message) => return Err((full(words), Failure::Bad(message))),
                };
                i += taken.len();
                let value = if many {
                    Value::List(values)
                } else {
                    values.into_iter().next().unwrap_or(Value::List(Vec::new()))
                };
                args.0.insert(name, value);
            }
            Element::Option { .. } => {}
        }
    }
    // Options, in any order, after the positional words.
    while i < tokens.len() {
        let token = &tokens[i];
        let option = elements.iter().find_map(|e| match e {
            Element::Option { flag, name, kind } if token.strip_prefix("--") == Some(*flag) => {
                Some((*name, *kind))
            }
            _ => None,
        });
        let Some((name, kind)) = option else {
            return Err((full(words), Failure::Extra(token.clone())));
        };
        let Some(raw) = tokens.get(i + 1) else {
            return Err((full(words), Failure::Missing(name)));
        };
        let parsed = kind
            .parse(name, raw, platform)
            .map_err(|m| (full(words), Failure::Bad(m)))?;
        args.0.insert(name, parsed);
        i += 2;
    }
    Ok(args)
}
