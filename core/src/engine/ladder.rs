//! Climbing a rule's ladder and planning the rung's actions.

use super::checks::Context;
use super::state::{EngineState, seconds};
use super::{EXCERPT_CHARS, ladder_key};
use crate::compile::CompiledRule;
use crate::keys;
use crate::lists::ListMeta;
use crate::model::Member;
use crate::rule::{ListScope, Mode, Source, Step};
use crate::template::{Field, Template, put};
use crate::time::duration_millis;
use crate::verdict::{Action, CheckHit, CheckKind, Match, PlannedAction, Verdict, ViolationRecord};

impl EngineState {
    /// Climbs the ladder and plans the rung's actions.
    pub(super) fn punish(
        &mut self,
        ctx: &Context<'_>,
        rule: &CompiledRule,
        hits: Vec<CheckHit>,
        verdict: &mut Verdict,
        blacklisted: &mut Vec<(u64, ListMeta)>,
    ) -> Match {
        let event = ctx.event;
        let now = ctx.now;
        let key = ladder_key(ctx.member_key, &rule.rule.id);
        let since = seconds(now.millis() - duration_millis(rule.rule.decay));
        let mut times = self.ladder.times(key);
        times.retain(|t| *t > since);
        let count_before = times.len() as u32;
        times.push(seconds(now.millis()));
        self.ladder.set(key, times);
        let ladder = &rule.rule.ladder;
        let rung_index = (count_before as usize).min(ladder.len() - 1);
        let rung = &ladder[rung_index];
        let rung_label = &rule.rung_labels[rung_index];
        let next = &rule.rung_labels[(rung_index + 1).min(ladder.len() - 1)];
        let first = &hits[0];
        let mode = rule.rule.mode;
        let mut notes = Vec::new();
        let mut actions = Vec::new();
        for step in &rung.steps {
            let action = match step {
                Step::Delete => match event.message_id() {
                    Some(message) if !event.message().is_some_and(|m| m.blocked) => {
                        Action::DeleteMessage { message }
                    }
                    _ => continue,
                },
                Step::Warn => Action::Warn {
                    text: render_template(
                        &rule.warn_template,
                        &event.member,
                        rule,
                        first.check,
                        count_before + 1,
                        next,
                    ),
                },
                Step::Timeout(duration) => Action::Timeout {
                    duration: *duration,
                },
                Step::Kick => Action::Kick,
                Step::Blacklist(scope, expiry) => {
                    let owner = match scope {
                        ListScope::Org => None,
                        ListScope::Personal => match ctx.rules.owner(ctx.group_key) {
                            Some(owner) => Some(owner.clone()),
                            None => {
                                notes.push(format!(
                                    "personal blacklist skipped: group {} has no owner configured",
                                    event.group
                                ));
                                continue;
                            }
                        },
                    };
                    let reason = format!("{} {}", first.check, first.evidence);
                    let expires_at = expiry.map(|d| now.plus(d));
                    if mode == Mode::Enforce {
                        let key = match &owner {
                            Some(owner) => keys::personal(
                                event.platform,
                                owner.as_str(),
                                event.member.id.as_str(),
                            ),
                            None => ctx.member_key,
                        };
                        // Applied after this event, so other rules judge it as it arrived.
                        blacklisted.push((
                            key,
                            ListMeta {
                                owner: owner.clone(),
                                reason: reason.as_str().into(),
                                source: Source::Rule(rule.rule.id.clone()),
                                expires_at,
                            },
                        ));
                    }
                    Action::Blacklist {
                        owner,
                        reason,
                        expires_at,
                    }
                }
                Step::Notify => Action::NotifyAdmins {
                    text: format!(
                        "{} ({}) broke rule {} in {}: {} {}; action: {}",
                        event.member.label(),
                        event.member.id,
                        rule.rule.label(),
                        event.group,
                        first.check,
                        first.evidence,
                        rung_label
                    ),
                },
                Step::Review => Action::QueueReview {
                    summary: format!(
                        "{}: {} {} by {} in {}",
                        rule.rule.label(),
                        first.check,
                        first.evidence,
                        event.member.label(),
                        event.group
                    ),
                },
            };
            actions.push(action);
        }
        for action in &actions {
            let duplicate = verdict
                .actions
                .iter()
                .any(|a| a.mode == mode && &a.action == action);
            if !duplicate {
                verdict.actions.push(PlannedAction {
                    rule: rule.rule.id.clone(),
                    mode,
                    platform: event.platform,
                    group: event.group.clone(),
                    member: event.member.id.clone(),
                    action: action.clone(),
                    key: None,
                });
            }
        }
        verdict.violations.push(ViolationRecord {
            event: event.id.clone(),
            at: now,
            platform: event.platform,
            group: event.group.clone(),
            member: event.member.id.clone(),
            member_name: event.member.display_name.clone(),
            member_joined_at: event.member.joined_at,
            rule: rule.rule.id.clone(),
            check: first.check,
            evidence: first.evidence.clone(),
            excerpt: excerpt(event.text().unwrap_or_default()).to_owned(),
            actions,
            mode,
        });
        Match {
            hits,
            count_before,
            count_after: count_before + 1,
            rung: rung_label.clone(),
            notes,
        }
    }
}

fn render_template(
    template: &Template,
    member: &Member,
    rule: &CompiledRule,
    check: CheckKind,
    count: u32,
    next: &str,
) -> String {
    template.fill(|field, out| match field {
        Field::Member => out.push_str(member.label()),
        Field::Rule => out.push_str(rule.rule.label()),
        Field::Check => out.push_str(check.as_str()),
        Field::Count => put(out, count),
        Field::Next => out.push_str(next),
    })
}

/// The first [`EXCERPT_CHARS`] characters of `text`, copied at once rather than one by one.
fn excerpt(text: &str) -> &str {
    // A text has no more characters than bytes.
    if text.len() <= EXCERPT_CHARS {
        return text;
    }
    let end = text
        .char_indices()
        .nth(EXCERPT_CHARS)
        .map_or(text.len(), |(at, _)| at);
    &text[..end]
}
