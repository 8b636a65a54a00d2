//! Checks of a rule set that compiling alone would not make: limits, templates, references.

use regex_automata::MatchKind;
use regex_automata::meta::Regex as MetaRegex;
use regex_automata::util::prefilter::Prefilter;
use regex_syntax::hir::{
    Capture, Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Hir, HirKind,
    Repetition,
};
use rustc_hash::{FxHashMap, FxHashSet};

use super::path::{ConfigPath, Errors};
use super::{CompiledRegex, MAX_DECAY, MAX_FLOOD_MESSAGES, MAX_RUNGS, MAX_WINDOW};
use crate::model::RuleId;
use crate::rule::{DuplicateCheck, FloodCheck, Rule, RuleSet};
use crate::template::Template;

pub(super) fn validate_template(template: &str, path: &ConfigPath, errors: &mut Errors) {
    if let Err(e) = Template::parse(template) {
        errors.push(path, e);
    }
}

pub(super) fn validate_groups(set: &RuleSet, errors: &mut Errors) {
    if let Some(t) = &set.settings.warn_template {
        validate_template(
            t,
            &ConfigPath::root().join("settings").join("warn_template"),
            errors,
        );
    }
    let mut seen = FxHashMap::default();
    for (i, group) in set.groups.iter().enumerate() {
        if let Some(first) = seen.insert(&group.id, i) {
            errors.push(
                &ConfigPath::root().join("groups").join(i).join("id"),
                format!(
                    "group `{}` is already described by groups[{first}]",
                    group.id
                ),
            );
        }
        for (t, tag) in group.tags.iter().enumerate() {
            if tag.trim().is_empty() {
                errors.push(
                    &ConfigPath::root()
                        .join("groups")
                        .join(i)
                        .join("tags")
                        .join(t),
                    "tags cannot be empty",
                );
            }
        }
    }
}

pub(super) fn validate_lists(set: &RuleSet, errors: &mut Errors) {
    for (i, entry) in set.blacklist.iter().enumerate() {
        if let Some(expires) = entry.expires_at
            && expires <= entry.created_at
        {
            errors.push(
                &ConfigPath::root()
                    .join("blacklist")
                    .join(i)
                    .join("expires_at"),
                "expires_at must be after created_at",
            );
        }
    }
    let rule_ids: FxHashSet<&str> = set.rules.iter().map(|r| r.id.as_str()).collect();
    for (i, entry) in set.whitelist.iter().enumerate() {
        for (r, rule) in entry.rules.iter().enumerate() {
            if !rule_ids.contains(rule.as_str()) {
                errors.push(
                    &ConfigPath::root()
                        .join("whitelist")
                        .join(i)
                        .join("rules")
                        .join(r),
                    format!("unknown rule `{rule}`"),
                );
            }
        }
    }
}

/// Regexes run on folded text, which is lower case, so patterns are case-insensitive.
pub(super) fn compile_regexes(
    rule: &RuleId,
    patterns: &[String],
    path: &ConfigPath,
    errors: &mut Errors,
) -> Option<CompiledRegex> {
    const SIZE_LIMIT: usize = 8 << 20;
    if patterns.is_empty() {
        errors.push(path, "no patterns");
        return None;
    }
    let mut each = Vec::with_capacity(patterns.len());
    let mut hirs = Vec::with_capacity(patterns.len());
    let mut ok = true;
    for (i, pattern) in patterns.iter().enumerate() {
        let compiled = for_folded_text(pattern).and_then(|hir| {
            let regex = MetaRegex::builder()
                .configure(MetaRegex::config().nfa_size_limit(Some(SIZE_LIMIT)))
                .build_from_hir(&hir)
                .map_err(|e| meta_error_text(&e))?;
            Ok((hir, regex))
        });
        match compiled {
            Ok((hir, regex)) => {
                each.push((pattern.clone(), regex));
                hirs.push(hir);
            }
            Err(reason) => {
                ok = false;
                errors.push(
                    &path.join(i),
                    format!("bad pattern `{pattern}` in rule `{rule}`: {reason}"),
                );
            }
        }
    }
    if !ok {
        return None;
    }
    match MetaRegex::builder()
        .configure(MetaRegex::config().nfa_size_limit(Some(SIZE_LIMIT * 4)))
        .build_many_from_hir(&hirs)
    {
        Ok(set) => Some(CompiledRegex {
            set,
            each,
            prefixes: Prefilter::from_hirs_prefix(MatchKind::All, &hirs),
        }),
        Err(e) => {
            errors.push(
                path,
                format!(
                    "the patterns together are too large: {}",
                    meta_error_text(&e)
                ),
            );
            None
        }
    }
}

/// A pattern as it runs on folded text. It is read case-insensitively, then capital ASCII
/// letters, which folded text never holds, are taken out of its classes: it matches the same
/// folded texts, and `discord` becomes one literal rather than 128 spellings, which the regex
/// engine's literal search finds several times faster.
fn for_folded_text(pattern: &str) -> Result<Hir, String> {
    let hir = regex_syntax::ParserBuilder::new()
        .case_insensitive(true)
        .build()
        .parse(pattern)
        .map_err(|e| last_line_of_error(&e.to_string()))?;
    Ok(without_capitals(&hir))
}

fn without_capitals(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => {
            let mut class = class.clone();
            class.difference(&ClassUnicode::new([ClassUnicodeRange::new('A', 'Z')]));
            Hir::class(Class::Unicode(class))
        }
        HirKind::Class(Class::Bytes(class)) => {
            let mut class = class.clone();
            class.difference(&ClassBytes::new([ClassBytesRange::new(b'A', b'Z')]));
            Hir::class(Class::Bytes(class))
        }
        HirKind::Repetition(repetition) => Hir::repetition(Repetition {
            sub: Box::new(without_capitals(&repetition.sub)),
            ..repetition.clone()
        }),
        HirKind::Capture(capture) => Hir::capture(Capture {
            sub: Box::new(without_capitals(&capture.sub)),
            ..capture.clone()
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(without_capitals).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(without_capitals).collect()),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Look(_) => hir.clone(),
    }
}

fn meta_error_text(e: &regex_automata::meta::BuildError) -> String {
    match e.size_limit() {
        Some(limit) => format!("the compiled pattern is larger than {limit} bytes"),
        None => last_line_of_error(&e.to_string()),
    }
}

/// regex errors draw the pattern with a caret over several lines; the last line says what.
pub(crate) fn first_line_of_regex_error(e: &regex::Error) -> String {
    last_line_of_error(&e.to_string())
}

fn last_line_of_error(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_owned())
        .unwrap_or_else(|| text.to_owned())
}

pub(super) fn validate_flood(f: &FloodCheck, path: &ConfigPath, errors: &mut Errors) {
    match (f.messages, f.per) {
        (Some(_), None) => errors.push(
            &path.join("per"),
            "`messages` needs `per`, the window (for example per = \"10s\")",
        ),
        (None, Some(_)) => errors.push(
            &path.join("messages"),
            "`per` needs `messages`, the most messages allowed",
        ),
        (Some(n), Some(per)) => {
            if n == 0 || n > MAX_FLOOD_MESSAGES {
                errors.push(
                    &path.join("messages"),
                    format!("must be between 1 and {MAX_FLOOD_MESSAGES}"),
                );
            }
            if per > MAX_WINDOW {
                errors.push(&path.join("per"), "must be at most 24h");
            }
        }
        (None, None) => {}
    }
    for (field, value) in [
        ("max_chars", f.max_chars),
        ("max_lines", f.max_lines),
        ("max_mentions", f.max_mentions),
    ] {
        if value == Some(0) {
            errors.push(&path.join(field), "must be at least 1");
        }
    }
    if f == &FloodCheck::default() {
        errors.push(
            path,
            "set messages and per, max_chars, max_lines or max_mentions",
        );
    }
}

pub(super) fn validate_duplicates(d: &DuplicateCheck, path: &ConfigPath, errors: &mut Errors) {
    if d.members.is_none() && d.groups.is_none() {
        errors.push(path, "set `members`, `groups` or both");
    }
    for (field, value) in [("members", d.members), ("groups", d.groups)] {
        if let Some(n) = value
            && !(2..=64).contains(&n)
        {
            errors.push(&path.join(field), "must be between 2 and 64");
        }
    }
    if d.window > MAX_WINDOW {
        errors.push(&path.join("window"), "must be at most 24h");
    }
}

pub(super) fn validate_ladder(rule: &Rule, path: &ConfigPath, errors: &mut Errors) {
    let at = path.join("ladder");
    if rule.ladder.is_empty() {
        errors.push(
            &at,
            "a ladder needs at least one rung, such as [\"warn\", \"warn\", \"warn\", \"kick\"]",
        );
    }
    if rule.ladder.len() > MAX_RUNGS {
        errors.push(&at, format!("at most {MAX_RUNGS} rungs"));
    }
    if rule.decay > MAX_DECAY {
        errors.push(&path.join("decay"), "must be at most 365 days");
    }
}
