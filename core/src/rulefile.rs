//! Rule files: TOML in, TOML out.
//!
//! Parsing is strict and reports every problem it can find in one pass, each with its line and
//! column: syntax errors (recovered where the parser can), unknown sections and fields and
//! wrong types (each `[[rules]]`, `[[groups]]` and list entry is read on its own, so one bad
//! rule does not hide the next), then everything the compiler rejects (bad regexes, empty
//! keywords, duplicate ids, …), located by their path in the file.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::compile::{ConfigError, PathSeg};
use crate::engine::Live;
use crate::rule::{RuleSet, Settings};

/// A problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleFileError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The path of the offending value, when known (`rules[2].regex.patterns[1]`).
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: ", self.line, self.column)?;
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

const SECTIONS: [&str; 5] = ["settings", "groups", "rules", "blacklist", "whitelist"];

/// Reads a rule file without compiling it.
pub fn parse(text: &str) -> Result<RuleSet, Vec<RuleFileError>> {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let locate = Locator::new(text);
    if !syntax_errors.is_empty() {
        return Err(syntax_errors
            .iter()
            .map(|e| locate.error(e.span().unwrap_or(0..0), None, e.message().to_owned()))
            .collect());
    }
    let mut errors = Vec::new();
    let mut set = RuleSet::default();
    for (key, value) in root.get_ref() {
        let value = value.clone();
        match &**key.get_ref() {
            "settings" => {
                if let Some(settings) = item::<Settings>(value, "settings", &locate, &mut errors) {
                    set.settings = settings;
                }
            }
            "groups" => set.groups = items(value, "groups", &locate, &mut errors),
            "rules" => set.rules = items(value, "rules", &locate, &mut errors),
            "blacklist" => set.blacklist = items(value, "blacklist", &locate, &mut errors),
            "whitelist" => set.whitelist = items(value, "whitelist", &locate, &mut errors),
            other => errors.push(locate.error(
                key.span(),
                None,
                format!(
                    "unknown section `{other}`: expected one of {}",
                    SECTIONS.join(", ")
                ),
            )),
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        errors.sort_by_key(|e| (e.line, e.column));
        Err(errors)
    }
}

/// Reads and compiles a rule file.
pub fn load(text: &str) -> Result<Live, Vec<RuleFileError>> {
    let set = parse(text)?;
    Live::compile(set).map_err(|errors| locate_config_errors(text, errors))
}

/// Writes a rule set as a rule file that [`parse`] reads back to the same set.
pub fn export(set: &RuleSet) -> String {
    match toml::to_string_pretty(set) {
        Ok(text) => text,
        Err(e) => unreachable!("every rule set is representable in TOML: {e}"),
    }
}

/// Gives compiler errors the line and column of the value they are about.
pub fn locate_config_errors(text: &str, errors: Vec<ConfigError>) -> Vec<RuleFileError> {
    let (root, _) = DeTable::parse_recoverable(text);
    let locate = Locator::new(text);
    errors
        .into_iter()
        .map(|e| {
            let span = span_of(&root, &e.path.0);
            locate.error(span, Some(e.path.to_string()), e.message)
        })
        .collect()
}

/// The span of the deepest value along `path` that exists.
fn span_of(root: &Spanned<DeTable<'_>>, path: &[PathSeg]) -> Range<usize> {
    let mut span = 0..0;
    let mut current: Option<&DeValue<'_>> = None;
    let mut table = Some(root.get_ref());
    for seg in path {
        let next = match (seg, table, current) {
            (PathSeg::Key(k), Some(t), _) => {
                t.iter().find(|(key, _)| key.get_ref() == k).map(|(_, v)| v)
            }
            (PathSeg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        span = next.span();
        current = Some(next.get_ref());
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    span
}

fn item<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    path: &str,
    locate: &Locator<'_>,
    errors: &mut Vec<RuleFileError>,
) -> Option<T> {
    let span = value.span();
    T::deserialize(ValueDeserializer::from(value))
        .map_err(|e| {
            errors.push(locate.error(
                e.span().unwrap_or(span),
                Some(path.to_owned()),
                e.message().to_owned(),
            ));
        })
        .ok()
}

fn items<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    section: &str,
    locate: &Locator<'_>,
    errors: &mut Vec<RuleFileError>,
) -> Vec<T> {
    let span = value.span();
    let DeValue::Array(array) = value.into_inner() else {
        errors.push(locate.error(
            span,
            Some(section.to_owned()),
            format!("`{section}` must be a list of tables, written [[{section}]]"),
        ));
        return Vec::new();
    };
    array
        .iter()
        .enumerate()
        .filter_map(|(i, v)| item(v.clone(), &format!("{section}[{i}]"), locate, errors))
        .collect()
}

/// Turns byte offsets into lines and columns.
struct Locator<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str) -> Locator<'a> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Locator { text, line_starts }
    }

    fn error(&self, span: Range<usize>, path: Option<String>, message: String) -> RuleFileError {
        let offset = span.start.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let line_start = self.line_starts[line - 1];
        let column = self
            .text
            .get(line_start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        RuleFileError {
            line,
            column,
            path,
            message,
        }
    }
}

#[cfg(test)]
mod tests;
