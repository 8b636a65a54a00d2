//! Checks of a rule set that compiling alone would not make: limits, templates, references.

use regex::{RegexBuilder, RegexSetBuilder};
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
    let mut ok = true;
    for (i, pattern) in patterns.iter().enumerate() {
        match RegexBuilder::new(pattern)
            .case_insensitive(true)
            .size_limit(SIZE_LIMIT)
            .build()
        {
            Ok(r) => each.push(r),
            Err(e) => {
                ok = false;
                errors.push(
                    &path.join(i),
                    format!(
                        "bad pattern `{pattern}` in rule `{rule}`: {}",
                        first_line_of_regex_error(&e)
                    ),
                );
            }
        }
    }
    if !ok {
        return None;
    }
    match RegexSetBuilder::new(patterns)
        .case_insensitive(true)
        .size_limit(SIZE_LIMIT * 4)
        .build()
    {
        Ok(set) => Some(CompiledRegex { set, each }),
        Err(e) => {
            errors.push(
                path,
                format!(
                    "the patterns together are too large: {}",
                    first_line_of_regex_error(&e)
                ),
            );
            None
        }
    }
}

/// regex errors draw the pattern with a caret over several lines; the last line says what.
pub(crate) fn first_line_of_regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_owned())
        .unwrap_or(text)
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
