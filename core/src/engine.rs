//! The engine: `evaluate(&event, now) -> Verdict`.
//!
//! Synchronous and pure apart from its own state: the rules come from an atomically swapped
//! [`CompiledRules`], the clock is passed in, and the [`EngineState`] (flood windows, duplicate
//! hashes, ladder counters, blacklist entries added by ladders) is owned here. Nothing is
//! executed; actions come back as values.
//!
//! # Memory
//!
//! State is bounded by activity, not by history: every minute of event time a sweep drops
//! flood windows older than the longest flood window, duplicate texts older than the longest
//! duplicate window and ladder counters whose violations have all decayed. Only members who
//! post in a group with a flood rule get a flood window; only violators get ladder counters.
//! A flood window costs about 150 bytes per (member, group) for a limit of 10 messages, map
//! slot included; a text tracked for duplicates with one sender about 100 bytes; a ladder
//! counter with one violation about 100 bytes (measured: `docs/PERFORMANCE.md`).

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::compile::{CompiledRule, CompiledRules, KeywordOwner, StateNeeds};
use crate::detect::links::{LinkHit, find_links};
use crate::detect::phone::{PhoneHit, find_phones};
use crate::keys;
use crate::lists::ListMeta;
use crate::model::{Event, EventKind, JoinScene, Member, MemberRef, MessageKind, Role, RuleId};
use crate::normalize::{
    Mapped, collapse_into, fold_into, fold_literal, fold_literal_mapped, fold_mapped,
    is_letter_or_digit, normalize_mapped,
};
use crate::ports::{StoreError, ViolationStore};
use crate::rule::{LinkMode, ListScope, Mode, PhoneKind, Rung, Source, Step};
use crate::time::{Timestamp, duration_millis};
use crate::verdict::{
    Action, CheckHit, CheckKind, Evidence, Match, Outcome, PlannedAction, RuleOutcome, SkipReason,
    Verdict, ViolationRecord,
};

/// Shared access to the current rule set: clone it to swap rules from another thread while
/// the engine keeps evaluating. Readers never block.
pub type RulesHandle = Arc<ArcSwap<CompiledRules>>;

/// How often (in event time) idle state is swept.
const SWEEP_EVERY_MS: i64 = 60_000;
/// The most violation times kept per (member, rule).
const LADDER_MEMORY: usize = 16;
/// The most senders remembered per duplicated text.
const DUPLICATE_SENDERS: usize = 64;
/// The longest excerpt kept in a violation record, in characters.
const EXCERPT_CHARS: usize = 200;

/// The moderation engine.
#[derive(Debug)]
pub struct Engine {
    rules: RulesHandle,
    state: EngineState,
    scratch: Scratch,
}

/// Buffers reused from one evaluation to the next, so judging a message rarely allocates.
#[derive(Debug, Default)]
struct Scratch {
    folded: String,
    collapsed: String,
    skeleton: String,
    keyword_hits: Vec<(KeywordOwner, usize, usize)>,
}

impl Engine {
    /// An engine running `rules`.
    pub fn new(rules: CompiledRules) -> Engine {
        Engine::with_handle(Arc::new(ArcSwap::from_pointee(rules)))
    }

    /// An engine reading its rules from a shared handle.
    pub fn with_handle(rules: RulesHandle) -> Engine {
        Engine {
            rules,
            state: EngineState::default(),
            scratch: Scratch::default(),
        }
    }

    /// The handle through which rules can be swapped.
    pub fn handle(&self) -> RulesHandle {
        Arc::clone(&self.rules)
    }

    /// The rules currently in force.
    pub fn rules(&self) -> Arc<CompiledRules> {
        self.rules.load_full()
    }

    /// Swaps in a new rule set; the next evaluation uses it. State carries over.
    pub fn swap_rules(&self, rules: CompiledRules) {
        self.rules.store(Arc::new(rules));
    }

    /// The engine's state, for inspection.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Restores the ladder counters a restart would forget: every violation recorded within
    /// the longest decay of the running rules before `now`. Returns how many.
    pub async fn restore_ladders(
        &mut self,
        store: &dyn ViolationStore,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let since = now.minus(self.rules.load().longest_decay());
        let history = store.ladder_history(since).await?;
        for (member, rule, at) in &history {
            self.restore_violation(member, rule, *at);
        }
        Ok(history.len())
    }

    /// Replays a stored violation so a restart forgets no warning.
    fn restore_violation(&mut self, member: &MemberRef, rule: &RuleId, at: Timestamp) {
        let key = ladder_key(keys::member(member.platform, member.id.as_str()), rule);
        let times = self.state.ladder.entry(key).or_default();
        let i = times.partition_point(|&t| t <= at.millis());
        times.insert(i, at.millis());
        if times.len() > LADDER_MEMORY {
            times.remove(0);
        }
    }

    /// Judges one event at `now`.
    pub fn evaluate(&mut self, event: &Event, now: Timestamp) -> Verdict {
        let rules = self.rules.load_full();
        self.state.sweep_if_due(now, &rules.needs);
        let member_key = keys::member(event.platform, event.member.id.as_str());
        let group_key = keys::group(event.platform, event.group.as_str());
        let mut ctx = Context {
            event,
            now,
            rules: &rules,
            member_key,
            group_key,
            text: None,
        };

        let in_scope = rules.rules_for(event.platform, group_key);
        let mut outcomes: Vec<Option<Outcome>> = vec![None; rules.rules.len()];
        let mut eligible = Vec::with_capacity(in_scope.len());
        for (i, rule) in rules.rules.iter().enumerate() {
            let skip = if !rule.rule.enabled {
                Some(SkipReason::Disabled)
            } else if in_scope.binary_search(&(i as u32)).is_err() {
                Some(SkipReason::OutOfScope)
            } else {
                skip_reason(rule, &event.member, member_key, &event.kind)
            };
            match skip {
                Some(reason) => outcomes[i] = Some(Outcome::Skipped(reason)),
                None => eligible.push(i),
            }
        }

        let eligible_rules = || eligible.iter().map(|&i| &rules.rules[i]);
        if let Some(text) = event.text() {
            let need_keywords = eligible_rules().any(|r| r.has_keywords);
            ctx.text = Some(TextAnalysis::new(
                text,
                &rules,
                need_keywords,
                &mut self.scratch,
            ));
        }
        let counts_as_new = matches!(
            event.kind,
            EventKind::MessagePosted(_) | EventKind::Command { .. }
        );
        let flood_key = (counts_as_new
            && eligible_rules().any(|r| r.flood.as_ref().is_some_and(|f| f.messages.is_some())))
        .then(|| {
            let key = keys::pair(group_key, member_key);
            self.state.record_message(key, now, &rules.needs);
            key
        });
        let min_chars = eligible_rules()
            .filter_map(|r| r.duplicates.as_ref().map(|d| d.min_chars))
            .min();
        let duplicate_key = match (counts_as_new, min_chars, &ctx.text) {
            (true, Some(min), Some(text)) => {
                // Letters and digits only: punctuation and spacing do not make spam new.
                let skeleton = &mut self.scratch.skeleton;
                skeleton.clear();
                skeleton.extend(text.collapsed.chars().filter(|&c| is_letter_or_digit(c)));
                (skeleton.chars().count() >= min as usize).then(|| {
                    let key = keys::text(skeleton);
                    self.state
                        .record_text(key, member_key, group_key, now, &rules.needs);
                    key
                })
            }
            _ => None,
        };
        if let EventKind::MemberLeft | EventKind::MemberRemoved { .. } = event.kind {
            self.state.flood.remove(&keys::pair(group_key, member_key));
        }

        let mut verdict = Verdict {
            event: event.id.clone(),
            message: event.message_id(),
            at: now,
            platform: event.platform,
            group: event.group.clone(),
            member: event.member.id.clone(),
            outcomes: Vec::with_capacity(rules.rules.len()),
            actions: Vec::new(),
            violations: Vec::new(),
        };
        let mut blacklisted = Vec::new();
        for &i in &eligible {
            let rule = &rules.rules[i];
            let hits = ctx.check(rule, i as u32, flood_key, duplicate_key, &self.state);
            outcomes[i] = Some(if hits.is_empty() {
                Outcome::NotMatched
            } else {
                Outcome::Matched(self.punish(&ctx, rule, hits, &mut verdict, &mut blacklisted))
            });
        }
        self.state.blacklisted.extend(blacklisted);
        if let Some(text) = ctx.text.take() {
            text.recycle(&mut self.scratch);
        }
        verdict.outcomes = rules
            .rules
            .iter()
            .zip(outcomes)
            .map(|(rule, outcome)| RuleOutcome {
                rule: rule.rule.id.clone(),
                result: outcome.unwrap_or(Outcome::NotMatched),
            })
            .collect();
        verdict
    }

    /// Climbs the ladder and plans the rung's actions.
    fn punish(
        &mut self,
        ctx: &Context<'_>,
        rule: &CompiledRule,
        hits: Vec<CheckHit>,
        verdict: &mut Verdict,
        blacklisted: &mut Vec<(u64, ListMeta)>,
    ) -> Match {
        let event = ctx.event;
        let now = ctx.now;
        let decay_ms = duration_millis(rule.rule.decay);
        let times = self
            .state
            .ladder
            .entry(ladder_key(ctx.member_key, &rule.rule.id))
            .or_default();
        times.retain(|&t| t > now.millis() - decay_ms);
        let count_before = times.len() as u32;
        times.push(now.millis());
        if times.len() > LADDER_MEMORY {
            times.remove(0);
        }
        let ladder = &rule.rule.ladder;
        let rung_index = (count_before as usize).min(ladder.len() - 1);
        let rung = &ladder[rung_index];
        let next = &ladder[(rung_index + 1).min(ladder.len() - 1)];
        let first = &hits[0];
        let mode = rule.rule.mode;
        let mut notes = Vec::new();
        let mut actions = Vec::new();
        for step in &rung.steps {
            let action = match step {
                Step::Delete => match event.message_id() {
                    Some(message) => Action::DeleteMessage { message },
                    None => continue,
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
                        rung
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
            excerpt: event
                .text()
                .unwrap_or_default()
                .chars()
                .take(EXCERPT_CHARS)
                .collect(),
            actions,
            mode,
        });
        Match {
            hits,
            count_before,
            count_after: count_before + 1,
            rung: rung.to_string(),
            notes,
        }
    }
}

fn ladder_key(member_key: u64, rule: &RuleId) -> u64 {
    keys::pair(member_key, keys::text(rule.as_str()))
}

fn skip_reason(
    rule: &CompiledRule,
    member: &Member,
    member_key: u64,
    kind: &EventKind,
) -> Option<SkipReason> {
    if rule.exempt_roles & (1 << (member.role as u8)) != 0 {
        return Some(SkipReason::ExemptRole { role: member.role });
    }
    if member.is_bot && rule.rule.exempt.bots {
        return Some(SkipReason::Bot);
    }
    if rule.exempt_members.contains(&member_key) {
        return Some(SkipReason::Whitelisted);
    }
    let applies = match kind {
        EventKind::MessagePosted(_) | EventKind::MessageEdited(_) | EventKind::Command { .. } => {
            rule.checks_messages()
        }
        EventKind::MemberJoined { .. } => rule.checks_joins(),
        EventKind::MemberLeft | EventKind::MemberRemoved { .. } | EventKind::GroupChanged(_) => {
            false
        }
    };
    (!applies).then_some(SkipReason::NotApplicable)
}

fn render_template(
    template: &str,
    member: &Member,
    rule: &CompiledRule,
    check: CheckKind,
    count: u32,
    next: &Rung,
) -> String {
    template
        .replace("{member}", member.label())
        .replace("{rule}", rule.rule.label())
        .replace("{check}", check.as_str())
        .replace("{count}", &count.to_string())
        .replace("{next}", &next.to_string())
}

/// What one evaluation knows about the event.
struct Context<'a> {
    event: &'a Event,
    now: Timestamp,
    rules: &'a CompiledRules,
    member_key: u64,
    group_key: u64,
    text: Option<TextAnalysis<'a>>,
}

/// The event's text, normalized once and searched once for all rules.
struct TextAnalysis<'a> {
    raw: &'a str,
    /// Folded with look-alikes mapped: what regexes see.
    folded: String,
    /// Folded as written, for links and phone numbers, when look-alikes made it differ.
    literal: Option<String>,
    /// Collapsed: what keywords see.
    collapsed: String,
    keyword_hits: Vec<(KeywordOwner, usize, usize)>,
    links: OnceCell<Vec<LinkHit>>,
    phones: OnceCell<Vec<PhoneHit>>,
    folded_map: OnceCell<Mapped>,
    literal_map: OnceCell<Mapped>,
    collapsed_map: OnceCell<Mapped>,
}

impl<'a> TextAnalysis<'a> {
    /// Normalizes and searches `raw`, in buffers taken from `scratch`.
    fn new(
        raw: &'a str,
        rules: &CompiledRules,
        need_keywords: bool,
        scratch: &mut Scratch,
    ) -> TextAnalysis<'a> {
        let mut folded = std::mem::take(&mut scratch.folded);
        folded.clear();
        let literal = fold_into(raw, &mut folded).then(|| fold_literal(raw));
        let mut collapsed = std::mem::take(&mut scratch.collapsed);
        collapsed.clear();
        collapse_into(&folded, &mut collapsed);
        let mut keyword_hits = std::mem::take(&mut scratch.keyword_hits);
        keyword_hits.clear();
        if need_keywords {
            rules.keywords.find(&collapsed, |owner, start, end| {
                keyword_hits.push((owner, start, end))
            });
        }
        TextAnalysis {
            raw,
            folded,
            literal,
            collapsed,
            keyword_hits,
            links: OnceCell::new(),
            phones: OnceCell::new(),
            folded_map: OnceCell::new(),
            literal_map: OnceCell::new(),
            collapsed_map: OnceCell::new(),
        }
    }

    /// Gives the buffers back for the next event.
    fn recycle(self, scratch: &mut Scratch) {
        scratch.folded = self.folded;
        scratch.collapsed = self.collapsed;
        scratch.keyword_hits = self.keyword_hits;
    }

    /// Evidence for a span of the folded text.
    fn folded_term(&self, term: String, start: usize, end: usize) -> Evidence {
        let span = self
            .folded_map
            .get_or_init(|| fold_mapped(self.raw))
            .source_span(start, end);
        self.term(term, span)
    }

    /// The text links and phone numbers are searched in.
    fn literal(&self) -> &str {
        self.literal.as_deref().unwrap_or(&self.folded)
    }

    /// Evidence for a span of [`Self::literal`].
    fn literal_term(&self, term: String, start: usize, end: usize) -> Evidence {
        if self.literal.is_none() {
            return self.folded_term(term, start, end);
        }
        let span = self
            .literal_map
            .get_or_init(|| fold_literal_mapped(self.raw))
            .source_span(start, end);
        self.term(term, span)
    }

    /// Evidence for a span of the collapsed text.
    fn collapsed_term(&self, term: String, start: usize, end: usize) -> Evidence {
        let span = self
            .collapsed_map
            .get_or_init(|| normalize_mapped(self.raw))
            .source_span(start, end);
        self.term(term, span)
    }

    fn term(&self, term: String, span: std::ops::Range<usize>) -> Evidence {
        Evidence::Term {
            term,
            matched: self.raw.get(span.clone()).unwrap_or_default().to_owned(),
            span,
        }
    }

    fn links(&self) -> &[LinkHit] {
        self.links.get_or_init(|| find_links(self.literal()))
    }

    fn phones(&self) -> &[PhoneHit] {
        self.phones.get_or_init(|| {
            find_phones(
                self.literal(),
                &[
                    PhoneKind::Mobile,
                    PhoneKind::Landline,
                    PhoneKind::International,
                ],
            )
        })
    }
}

impl Context<'_> {
    fn check(
        &self,
        rule: &CompiledRule,
        index: u32,
        flood_key: Option<u64>,
        duplicate_key: Option<u64>,
        state: &EngineState,
    ) -> Vec<CheckHit> {
        let mut hits = Vec::new();
        let mut hit =
            |check: CheckKind, evidence: Evidence| hits.push(CheckHit { check, evidence });
        let event = self.event;
        let member = &event.member;
        let is_join = matches!(event.kind, EventKind::MemberJoined { .. });

        if let Some(b) = &rule.blacklist
            && ((is_join && b.on_join) || (!is_join && b.on_message))
            && let Some(evidence) = self.blacklisted(state)
        {
            hit(CheckKind::Blacklist, evidence);
        }
        if let (EventKind::MemberJoined { inviter, scene }, Some((invites, allowed))) =
            (&event.kind, &rule.invites)
        {
            if invites.refuse_other_orgs
                && let Some(org) = &member.org
            {
                let home = self.rules.home_org(event.platform, self.group_key);
                if home.is_some_and(|h| h != org) && !allowed.contains(org) {
                    hit(
                        CheckKind::OtherOrganisation,
                        Evidence::Organisation {
                            org: org.clone(),
                            home: home.cloned(),
                        },
                    );
                }
            }
            let invited = matches!(
                scene,
                JoinScene::DirectInvite | JoinScene::InviteLink | JoinScene::Unknown
            );
            if invites.only_staff_invite
                && invited
                && let Some(inviter) = inviter
                && inviter.role < Role::Staff
            {
                hit(
                    CheckKind::InviterNotStaff,
                    Evidence::Inviter {
                        inviter: inviter.id.clone(),
                        role: inviter.role,
                    },
                );
            }
        }

        if let Some(text) = &self.text {
            if rule.has_keywords
                && let Some((owner, start, end)) =
                    text.keyword_hits.iter().find(|(o, _, _)| o.rule == index)
            {
                hit(
                    CheckKind::Keyword,
                    text.collapsed_term(keyword_text(rule, *owner), *start, *end),
                );
            }
            if let Some(regex) = &rule.regex
                && regex.set.is_match(&text.folded)
                && let Some(i) = regex.set.matches(&text.folded).iter().next()
                && let Some(m) = regex.each[i].find(&text.folded)
            {
                hit(
                    CheckKind::Regex,
                    text.folded_term(regex.each[i].as_str().to_owned(), m.start(), m.end()),
                );
            }
            if !rule.phone_kinds.is_empty()
                && let Some(p) = text
                    .phones()
                    .iter()
                    .find(|p| rule.phone_kinds.contains(&p.kind))
            {
                hit(
                    CheckKind::Phone,
                    text.literal_term(p.number.clone(), p.span.start, p.span.end),
                );
            }
            if let Some(links) = &rule.links {
                let violates = |host: &str| {
                    links.deny.covering(host).is_some()
                        || (links.mode == LinkMode::AllowListedOnly
                            && links.allow.covering(host).is_none())
                };
                if let Some(l) = text.links().iter().find(|l| violates(&l.host)) {
                    hit(
                        CheckKind::Link,
                        text.literal_term(l.host.clone(), l.span.start, l.span.end),
                    );
                } else if let Some(host) = event
                    .message()
                    .into_iter()
                    .flat_map(|m| &m.links)
                    .flat_map(|url| find_links(&fold_literal(url)))
                    .map(|l| l.host)
                    .find(|h| violates(h))
                {
                    hit(CheckKind::Link, Evidence::Link { host });
                }
            }
        }

        if let Some(message) = event.message() {
            if let (Some(allow), MessageKind::MiniProgram { app_id }) =
                (&rule.mini_allow, &message.kind)
                && !app_id.as_ref().is_some_and(|id| allow.contains(id))
            {
                hit(
                    CheckKind::MiniProgram,
                    Evidence::MiniProgram {
                        app_id: app_id.clone(),
                    },
                );
            }
            let kind = message.kind.name();
            if rule.banned_kinds & kind.bit() != 0 {
                hit(CheckKind::BannedKind, Evidence::Kind { kind });
            }
        }

        if let (Some(d), Some(senders)) = (
            &rule.duplicates,
            duplicate_key.and_then(|k| state.duplicates.get(&k)),
        ) {
            let since = self.now.millis() - duration_millis(d.window);
            let recent: Vec<&DuplicateSender> = senders.iter().filter(|s| s.at > since).collect();
            let by_member: fn(&DuplicateSender) -> u64 = |s| s.member;
            let by_group: fn(&DuplicateSender) -> u64 = |s| s.group;
            let distinct = [
                (CheckKind::DuplicateMembers, d.members, by_member),
                (CheckKind::DuplicateGroups, d.groups, by_group),
            ];
            for (check, limit, key_of) in distinct {
                let Some(limit) = limit else { continue };
                let mut keys: Vec<u64> = recent.iter().map(|s| key_of(s)).collect();
                keys.sort_unstable();
                keys.dedup();
                let observed = keys.len() as u32;
                if observed >= limit {
                    let window = Some(d.window);
                    hit(
                        check,
                        Evidence::Count {
                            observed,
                            limit,
                            window,
                        },
                    );
                }
            }
        }

        if let Some(f) = &rule.flood {
            if let (Some(limit), Some(per), Some(window)) = (
                f.messages,
                f.per,
                flood_key.and_then(|k| state.flood.get(&k)),
            ) {
                let since = self.now.millis() - duration_millis(per);
                let observed = window
                    .times
                    .iter()
                    .filter(|&&t| window.base + i64::from(t) > since)
                    .count() as u32;
                if observed > limit {
                    hit(
                        CheckKind::Flood,
                        Evidence::Count {
                            observed,
                            limit,
                            window: Some(per),
                        },
                    );
                }
            }
            if let Some(text) = event.text() {
                let mentions = event.message().map_or(0, |m| m.mentions.len());
                let limits = [
                    (CheckKind::MaxChars, f.max_chars, text.chars().count()),
                    (CheckKind::MaxLines, f.max_lines, text.matches('\n').count()),
                    (CheckKind::MaxMentions, f.max_mentions, mentions),
                ];
                for (check, limit, observed) in limits {
                    if let Some(limit) = limit {
                        let observed = observed as u32;
                        if observed > limit {
                            hit(
                                check,
                                Evidence::Count {
                                    observed,
                                    limit,
                                    window: None,
                                },
                            );
                        }
                    }
                }
            }
        }
        hits
    }

    /// The blacklist entry that applies to the member here and now, if any.
    fn blacklisted(&self, state: &EngineState) -> Option<Evidence> {
        let event = self.event;
        let personal = self.rules.owner(self.group_key).map(|owner| {
            let key = keys::personal(event.platform, owner.as_str(), event.member.id.as_str());
            (key, ListScope::Personal)
        });
        [Some((self.member_key, ListScope::Org)), personal]
            .into_iter()
            .flatten()
            .find_map(|(key, list)| {
                let meta = state
                    .blacklisted
                    .get(&key)
                    .filter(|m| m.is_active(self.now))
                    .or_else(|| {
                        self.rules
                            .blacklist
                            .get(key)
                            .filter(|m| m.is_active(self.now))
                    })?;
                Some(Evidence::Blacklisted {
                    list,
                    reason: meta.reason.to_string(),
                    source: meta.source.clone(),
                    expires_at: meta.expires_at,
                })
            })
    }
}

/// The keyword as the rule wrote it.
fn keyword_text(rule: &CompiledRule, owner: KeywordOwner) -> String {
    let k = owner.keyword as usize;
    let Some(keywords) = &rule.rule.keywords else {
        return String::new();
    };
    keywords
        .substrings
        .iter()
        .chain(&keywords.words)
        .nth(k)
        .cloned()
        .unwrap_or_default()
}

/// Counters the engine keeps between events.
#[derive(Debug, Default)]
pub struct EngineState {
    flood: FxHashMap<u64, FloodWindow>,
    ladder: FxHashMap<u64, Vec<i64>>,
    /// Most texts are sent once: their one sender is stored inline, without an allocation.
    duplicates: FxHashMap<u64, SmallVec<[DuplicateSender; 1]>>,
    blacklisted: FxHashMap<u64, ListMeta>,
    next_sweep: i64,
}

/// How much the state holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateStats {
    /// (member, group) pairs with a flood window.
    pub flood_windows: usize,
    /// (member, rule) pairs with violations inside their decay window.
    pub ladder_counters: usize,
    /// Distinct recent texts tracked for duplicates.
    pub duplicate_texts: usize,
    /// Blacklist entries added by ladders since the rules were compiled.
    pub runtime_blacklist: usize,
}

/// Recent message times of one member in one group, relative to `base`.
#[derive(Debug)]
struct FloodWindow {
    base: i64,
    times: VecDeque<u32>,
}

#[derive(Debug, Clone, Copy)]
struct DuplicateSender {
    member: u64,
    group: u64,
    at: i64,
}

impl EngineState {
    /// What the state holds.
    pub fn stats(&self) -> StateStats {
        StateStats {
            flood_windows: self.flood.len(),
            ladder_counters: self.ladder.len(),
            duplicate_texts: self.duplicates.len(),
            runtime_blacklist: self.blacklisted.len(),
        }
    }

    fn sweep_if_due(&mut self, now: Timestamp, needs: &StateNeeds) {
        let now = now.millis();
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_EVERY_MS;
        let flood_since = now - needs.flood_window_ms;
        self.flood.retain(|_, w| {
            w.times
                .back()
                .is_some_and(|&t| w.base + i64::from(t) > flood_since)
        });
        let duplicate_since = now - needs.duplicate_window_ms;
        self.duplicates
            .retain(|_, senders| senders.last().is_some_and(|s| s.at > duplicate_since));
        let decay_since = now - needs.decay_ms;
        self.ladder
            .retain(|_, times| times.last().is_some_and(|&t| t > decay_since));
        let now = Timestamp(now);
        self.blacklisted.retain(|_, meta| meta.is_active(now));
    }

    /// Records a message of a member in a group (`key` pairs the two).
    fn record_message(&mut self, key: u64, now: Timestamp, needs: &StateNeeds) {
        let now = now.millis();
        let window = self.flood.entry(key).or_insert_with(|| FloodWindow {
            base: now,
            times: VecDeque::with_capacity(needs.flood_capacity),
        });
        let since = now - needs.flood_window_ms;
        while window
            .times
            .front()
            .is_some_and(|&t| window.base + i64::from(t) <= since)
        {
            window.times.pop_front();
        }
        if window.times.is_empty() || now < window.base {
            window.base = now;
            window.times.clear();
        } else if now - window.base > i64::from(u32::MAX / 2) {
            // Keep offsets small by moving the base up to the oldest time kept.
            let shift = window.times.front().copied().unwrap_or_default();
            window.base += i64::from(shift);
            window.times.iter_mut().for_each(|t| *t -= shift);
        }
        window.times.push_back((now - window.base) as u32);
        while window.times.len() > needs.flood_capacity.max(1) {
            window.times.pop_front();
        }
    }

    /// Records who sent a text where.
    fn record_text(
        &mut self,
        text: u64,
        member: u64,
        group: u64,
        now: Timestamp,
        needs: &StateNeeds,
    ) {
        let now = now.millis();
        let senders = self.duplicates.entry(text).or_default();
        senders.retain(|s| {
            s.at > now - needs.duplicate_window_ms && !(s.member == member && s.group == group)
        });
        senders.push(DuplicateSender {
            member,
            group,
            at: now,
        });
        if senders.len() > DUPLICATE_SENDERS {
            senders.remove(0);
        }
    }
}

#[cfg(test)]
mod tests;
