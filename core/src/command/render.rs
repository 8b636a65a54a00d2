//! What a command's outcome looks like: a structured [`Reply`] that each platform renders
//! natively, and its plain-text form.

use crate::command::Answer;
use crate::ports::DAY_MS;
use crate::reply::{Block, Reply, Row};
use crate::time::Timestamp;
use crate::verdict::Outcome as RuleResult;

/// An answer as plain text.
pub fn render(answer: &Answer) -> String {
    reply(answer).plain_text()
}

/// A table whose rows read as the given plain lines.
fn table(columns: &[&str], rows: impl IntoIterator<Item = (Vec<String>, String)>) -> Block {
    Block::Table {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows: rows
            .into_iter()
            .map(|(cells, plain)| Row { cells, plain })
            .collect(),
    }
}

/// An answer as a structured reply. What only reads (lists, reports, help) is for the
/// asker's eyes; a change is shown to the group, so every admin there sees it.
pub fn reply(answer: &Answer) -> Reply {
    match answer {
        Answer::RuleChanged {
            rule,
            what,
            version,
        } => Reply::text(format!("rule {rule}: {what} (version {version})")),
        Answer::RuleDeleted { rule } => Reply::text(format!(
            "rule {rule} deleted; !guard audit list shows the change and audit undo restores it within 72 hours"
        )),
        Answer::Rules(rules) if rules.is_empty() => {
            Reply::text("no rules yet: !guard rule create <rule> or !guard template apply retail")
                .private()
        }
        Answer::Rules(rules) => Reply::default()
            .with(table(
                &["rule", "state", "name", "checks"],
                rules.iter().map(|r| {
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
                    let plain = format!("{} [{state}] {} — {checks}", r.id, r.name);
                    (vec![r.id.to_string(), state, r.name.clone(), checks], plain)
                }),
            ))
            .private(),
        Answer::RuleText(text) => Reply::default()
            .with(Block::Code {
                text: text.trim_end().to_owned(),
            })
            .private(),
        Answer::GroupTags { group, tags } if tags.is_empty() => {
            Reply::text(format!("{group} has no tags")).private()
        }
        Answer::GroupTags { group, tags } => {
            Reply::text(format!("{group} tags: {}", tags.join(", "))).private()
        }
        Answer::TemplateApplied {
            template,
            rules,
            tag,
        } => Reply::text(format!(
            "template {template}: {} rules for groups tagged {tag}: {}",
            rules.len(),
            rules
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Answer::ListChanged { what } | Answer::SettingsChanged { what } => {
            Reply::text(what.clone())
        }
        Answer::Blacklist(entries) if entries.is_empty() => {
            Reply::text("the blacklist is empty").private()
        }
        Answer::Blacklist(entries) => Reply::default()
            .with(table(
                &["member", "owner", "reason", "source", "until"],
                entries.iter().map(|e| {
                    let owner = e
                        .owner
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    let until = e.expires_at.map(day_and_time).unwrap_or_default();
                    let plain = format!(
                        "{}{}: {} — {}{}",
                        e.member,
                        if owner.is_empty() {
                            String::new()
                        } else {
                            format!(" (owner {owner})")
                        },
                        e.reason,
                        e.source,
                        if until.is_empty() {
                            String::new()
                        } else {
                            format!(" until {until}")
                        }
                    );
                    let cells = vec![
                        e.member.to_string(),
                        owner,
                        e.reason.clone(),
                        e.source.to_string(),
                        until,
                    ];
                    (cells, plain)
                }),
            ))
            .private(),
        Answer::Whitelist(entries) if entries.is_empty() => {
            Reply::text("the whitelist is empty").private()
        }
        Answer::Whitelist(entries) => Reply::default()
            .with(table(
                &["member", "rules", "reason"],
                entries.iter().map(|e| {
                    let rules = if e.rules.is_empty() {
                        "every rule".to_owned()
                    } else {
                        e.rules
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let plain = format!("{}: {rules} {}", e.member, e.reason);
                    (vec![e.member.to_string(), rules, e.reason.clone()], plain)
                }),
            ))
            .private(),
        Answer::Violations(list) if list.is_empty() => Reply::text("no violations").private(),
        Answer::Violations(list) => Reply::default()
            .with(table(
                &[
                    "#", "at", "group", "member", "rule", "check", "evidence", "actions",
                ],
                list.iter().map(|v| {
                    let r = &v.record;
                    let actions: Vec<String> = v
                        .outcomes
                        .iter()
                        .map(|(a, s)| format!("{} {}", a.name(), s.name()))
                        .collect();
                    let cells = vec![
                        format!("#{}", v.id),
                        day_and_time(r.at),
                        r.group.to_string(),
                        r.member_name
                            .as_deref()
                            .unwrap_or(r.member.as_str())
                            .to_owned(),
                        r.rule.to_string(),
                        r.check.to_string(),
                        r.evidence.to_string(),
                        actions.join(", "),
                    ];
                    let plain = format!(
                        "{} {} {} {} {}: {} {} [{}]",
                        cells[0],
                        cells[1],
                        cells[2],
                        cells[3],
                        cells[4],
                        cells[5],
                        cells[6],
                        cells[7]
                    );
                    (cells, plain)
                }),
            ))
            .private(),
        Answer::File { name, content } => Reply::default()
            .with(Block::File {
                name: name.clone(),
                content: content.clone(),
            })
            .private(),
        Answer::Stats { days, rows, top } => {
            let mut reply = Reply::default().titled(format!("the last {days} days"));
            if rows.is_empty() {
                reply = reply.with(Block::Text {
                    text: "no violations".to_owned(),
                });
            } else {
                reply = reply.with(table(
                    &["day", "group", "violations", "violators", "new members"],
                    rows.iter().map(|s| {
                        let share = (s.new_violators * 100)
                            .checked_div(s.violators)
                            .unwrap_or(0);
                        let plain = format!(
                            "{} {}: {} violations by {} members, {share}% of them joined in the last 24 h",
                            day(s.day),
                            s.group,
                            s.violations,
                            s.violators
                        );
                        let cells = vec![
                            day(s.day),
                            s.group.to_string(),
                            s.violations.to_string(),
                            s.violators.to_string(),
                            format!("{share}%"),
                        ];
                        (cells, plain)
                    }),
                ));
            }
            if !top.is_empty() {
                let top: Vec<String> = top.iter().map(|(c, n)| format!("{c} {n}")).collect();
                reply = reply.with(Block::Text {
                    text: format!("top checks: {}", top.join(", ")),
                });
            }
            reply.private()
        }
        Answer::Why(verdict) => {
            let mut lines = Vec::new();
            for (rule, result) in verdict.outcomes.iter() {
                lines.push(match result {
                    RuleResult::Matched(m) => {
                        let hits: Vec<String> = m
                            .hits
                            .iter()
                            .map(|h| format!("{} {}", h.check, h.evidence))
                            .collect();
                        format!(
                            "  {}: matched {} — violation {}, {}",
                            rule,
                            hits.join("; "),
                            m.count_after,
                            m.rung
                        )
                    }
                    RuleResult::NotMatched => format!("  {rule}: not matched"),
                    RuleResult::Skipped(reason) => format!("  {rule}: skipped, {reason}"),
                });
            }
            for a in &verdict.actions {
                lines.push(format!(
                    "  action: {} [{}] by rule {}",
                    a.action.name(),
                    a.mode,
                    a.rule
                ));
            }
            Reply::default()
                .titled(format!(
                    "event {} by {} in {} at {}",
                    verdict.event,
                    verdict.member,
                    verdict.group,
                    day_and_time(verdict.at)
                ))
                .with(Block::Code {
                    text: lines.join("\n"),
                })
                .private()
        }
        Answer::Audit(entries) if entries.is_empty() => Reply::text("no changes yet").private(),
        Answer::Audit(entries) => Reply::default()
            .with(table(
                &["#", "at", "by", "change"],
                entries.iter().map(|e| {
                    let undone = e
                        .undone_by
                        .map(|u| format!(" (undone by #{u})"))
                        .unwrap_or_default();
                    let cells = vec![
                        format!("#{}", e.id),
                        day_and_time(e.at),
                        e.by.to_string(),
                        format!("{}{undone}", describe(&e.change)),
                    ];
                    let plain = format!("{} {} {}: {}", cells[0], cells[1], cells[2], cells[3]);
                    (cells, plain)
                }),
            ))
            .private(),
        Answer::Undone(entry) => Reply::text(format!(
            "undone as change #{}: {}",
            entry.id,
            describe(&entry.change)
        )),
        Answer::ConfigImported { rules, groups } => Reply::text(format!(
            "configuration replaced: {rules} rules, {groups} groups"
        )),
        Answer::Help(text) => Reply::default()
            .with(Block::Code {
                text: text.trim_end().to_owned(),
            })
            .private(),
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
