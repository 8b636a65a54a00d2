//! The plain-text renderer: what a command's outcome looks like in a chat without formatting.

use std::fmt::Write as _;

use crate::command::Outcome;
use crate::model::Timestamp;
use crate::ports::DAY_MS;
use crate::verdict::Outcome as RuleResult;

/// An outcome as plain text.
pub fn render(outcome: &Outcome) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_outcome(&mut out, outcome);
    out.trim_end().to_owned()
}

fn write_outcome(out: &mut String, outcome: &Outcome) -> std::fmt::Result {
    match outcome {
        Outcome::RuleChanged {
            rule,
            what,
            version,
        } => writeln!(out, "rule {rule}: {what} (version {version})"),
        Outcome::RuleDeleted { rule } => writeln!(
            out,
            "rule {rule} deleted; !guard audit list shows the change and audit undo restores it within 72 hours"
        ),
        Outcome::Rules(rules) if rules.is_empty() => writeln!(
            out,
            "no rules yet: !guard rule create <rule> or !guard template apply retail"
        ),
        Outcome::Rules(rules) => {
            for r in rules {
                let state = if r.enabled {
                    r.mode.to_string()
                } else {
                    "disabled".to_owned()
                };
                let checks = if r.checks.is_empty() {
                    "no checks".to_owned()
                } else {
                    r.checks.join(", ")
                };
                writeln!(out, "{} [{state}] {} — {checks}", r.id, r.name)?;
            }
            Ok(())
        }
        Outcome::RuleText(text) => writeln!(out, "{text}"),
        Outcome::GroupTags { group, tags } if tags.is_empty() => {
            writeln!(out, "{group} has no tags")
        }
        Outcome::GroupTags { group, tags } => writeln!(out, "{group} tags: {}", tags.join(", ")),
        Outcome::TemplateApplied {
            template,
            rules,
            tag,
        } => writeln!(
            out,
            "template {template}: {} rules for groups tagged {tag}: {}",
            rules.len(),
            rules
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Outcome::ListChanged { what } => writeln!(out, "{what}"),
        Outcome::Blacklist(entries) if entries.is_empty() => {
            writeln!(out, "the blacklist is empty")
        }
        Outcome::Blacklist(entries) => {
            for e in entries {
                let owner = e
                    .owner
                    .as_ref()
                    .map(|o| format!(" (owner {o})"))
                    .unwrap_or_default();
                let expiry = e
                    .expires_at
                    .map(|t| format!(" until {}", day_and_time(t)))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}{owner}: {} — {}{expiry}",
                    e.member, e.reason, e.source
                )?;
            }
            Ok(())
        }
        Outcome::Whitelist(entries) if entries.is_empty() => {
            writeln!(out, "the whitelist is empty")
        }
        Outcome::Whitelist(entries) => {
            for e in entries {
                let rules = if e.rules.is_empty() {
                    "every rule".to_owned()
                } else {
                    e.rules
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                writeln!(out, "{}: {rules} {}", e.member, e.reason)?;
            }
            Ok(())
        }
        Outcome::Violations(list) if list.is_empty() => writeln!(out, "no violations"),
        Outcome::Violations(list) => {
            for v in list {
                let r = &v.record;
                let actions: Vec<String> = v
                    .outcomes
                    .iter()
                    .map(|(a, s)| {
                        format!(
                            "{} {}",
                            a.name(),
                            serde_json::to_value(s)
                                .ok()
                                .and_then(|j| j["state"].as_str().map(str::to_owned))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                writeln!(
                    out,
                    "#{} {} {} {} {}: {} {} [{}]",
                    v.id,
                    day_and_time(r.at),
                    r.group,
                    r.member_name.as_deref().unwrap_or(r.member.as_str()),
                    r.rule,
                    r.check,
                    r.evidence,
                    actions.join(", ")
                )?;
            }
            Ok(())
        }
        Outcome::File { name, content } => writeln!(out, "{name}\n{content}"),
        Outcome::Stats { days, rows, top } => {
            writeln!(out, "the last {days} days")?;
            if rows.is_empty() {
                writeln!(out, "no violations")?;
            }
            for s in rows {
                let share = (s.new_violators * 100)
                    .checked_div(s.violators)
                    .unwrap_or(0);
                writeln!(
                    out,
                    "{} {}: {} violations by {} members, {share}% of them joined in the last 24 h",
                    day(s.day),
                    s.group,
                    s.violations,
                    s.violators
                )?;
            }
            if !top.is_empty() {
                let top: Vec<String> = top.iter().map(|(c, n)| format!("{c} {n}")).collect();
                writeln!(out, "top checks: {}", top.join(", "))?;
            }
            Ok(())
        }
        Outcome::Why(verdict) => {
            writeln!(
                out,
                "event {} by {} in {} at {}",
                verdict.event,
                verdict.member,
                verdict.group,
                day_and_time(verdict.at)
            )?;
            for o in &verdict.outcomes {
                match &o.result {
                    RuleResult::Matched(m) => {
                        let hits: Vec<String> = m
                            .hits
                            .iter()
                            .map(|h| format!("{} {}", h.check, h.evidence))
                            .collect();
                        writeln!(
                            out,
                            "  {}: matched {} — violation {}, {}",
                            o.rule,
                            hits.join("; "),
                            m.count_after,
                            m.rung
                        )?;
                    }
                    RuleResult::NotMatched => writeln!(out, "  {}: not matched", o.rule)?,
                    RuleResult::Skipped(reason) => {
                        writeln!(out, "  {}: skipped, {reason}", o.rule)?
                    }
                }
            }
            for a in &verdict.actions {
                writeln!(
                    out,
                    "  action: {} [{}] by rule {}",
                    a.action.name(),
                    a.mode,
                    a.rule
                )?;
            }
            Ok(())
        }
        Outcome::Audit(entries) if entries.is_empty() => writeln!(out, "no changes yet"),
        Outcome::Audit(entries) => {
            for e in entries {
                let undone = e
                    .undone_by
                    .map(|u| format!(" (undone by #{u})"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "#{} {} {}: {}{undone}",
                    e.id,
                    day_and_time(e.at),
                    e.by,
                    describe(&e.change)
                )?;
            }
            Ok(())
        }
        Outcome::Undone(entry) => writeln!(
            out,
            "undone as change #{}: {}",
            entry.id,
            describe(&entry.change)
        ),
        Outcome::ConfigImported { rules, groups } => writeln!(
            out,
            "configuration replaced: {rules} rules, {groups} groups"
        ),
        Outcome::Help(text) => writeln!(out, "{text}"),
    }
}

fn describe(change: &crate::ports::Change) -> String {
    use crate::ports::Change as C;
    let verb = |before: bool, after: bool| match (before, after) {
        (false, true) => "created",
        (true, false) => "deleted",
        _ => "changed",
    };
    match change {
        C::Settings { .. } => "settings changed".to_owned(),
        C::Rule { id, before, after } => {
            format!("rule {id} {}", verb(before.is_some(), after.is_some()))
        }
        C::Group { id, before, after } => {
            format!("group {id} {}", verb(before.is_some(), after.is_some()))
        }
        C::Blacklist {
            member,
            before,
            after,
            ..
        } => match (before, after) {
            (_, Some(_)) => format!("{member} blacklisted"),
            _ => format!("{member} removed from the blacklist"),
        },
        C::Whitelist { member, after, .. } => match after {
            Some(_) => format!("{member} whitelisted"),
            None => format!("{member} removed from the whitelist"),
        },
        C::BlacklistImport { count } => format!("{count} blacklist entries imported"),
        C::ConfigImport { rules, groups } => {
            format!("configuration imported ({rules} rules, {groups} groups)")
        }
    }
}

/// `2026-11-21 09:30` (UTC).
fn day_and_time(t: Timestamp) -> String {
    let text = t.to_rfc3339();
    format!("{} {}", &text[..10], &text[11..16])
}

/// `2026-11-21` for a day number.
fn day(day: i64) -> String {
    Timestamp(day * DAY_MS).to_rfc3339()[..10].to_owned()
}
