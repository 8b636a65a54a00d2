//! The checks, one function each, run for one rule against one event.

use smallvec::SmallVec;

use super::duplicates::{DuplicateSender, RecordedText};
use super::flood::WindowAt;
use super::state::{EngineState, seconds};
use super::text::TextAnalysis;
use crate::compile::{CompiledRule, CompiledRules, KeywordOwner};
use crate::detect::links::find_links;
use crate::keys;
use crate::lists::{BlacklistIndex, ListMeta};
use crate::model::{Attachment, Event, EventKind, JoinScene, MessageKind, Role};
use crate::normalize::fold_literal;
use crate::rule::{LinkMode, ListScope};
use crate::time::{Timestamp, duration_millis};
use crate::verdict::{CheckHit, CheckKind, Evidence};

/// What one evaluation knows about the event.
pub(super) struct Context<'a> {
    pub(super) event: &'a Event,
    pub(super) now: Timestamp,
    pub(super) rules: &'a CompiledRules,
    pub(super) blacklist: &'a BlacklistIndex,
    pub(super) member_key: u64,
    pub(super) group_key: u64,
    pub(super) text: Option<TextAnalysis<'a>>,
}

/// What the counting checks of one rule see besides the event: where this event's flood
/// window is, and who has sent its text.
pub(super) struct Counts {
    pub(super) flood: Option<WindowAt>,
    pub(super) duplicate: Option<RecordedText>,
}

/// One check's hits, pushed in the order the rule lists its checks.
type Hits = Vec<CheckHit>;

impl Context<'_> {
    /// The checks of `rule` (at `rule_index` in the set) that read the event alone, and the
    /// blacklist, first one first. [`Context::check_counts`] adds the rest.
    pub(super) fn check_content(
        &self,
        rule: &CompiledRule,
        rule_index: u32,
        state: &EngineState,
    ) -> Hits {
        let mut hits = Vec::new();
        self.blacklist(rule, state, &mut hits);
        self.invites(rule, &mut hits);
        if let Some(text) = &self.text {
            keyword(rule, rule_index, text, &mut hits);
            regex(rule, text, &mut hits);
            phone(rule, text, &mut hits);
            self.links(rule, text, &mut hits);
        }
        self.message_kind(rule, &mut hits);
        hits
    }

    /// The checks of `rule` that count what members did (duplicates, flood) and the size
    /// limits, after [`Context::check_content`]'s.
    pub(super) fn check_counts(
        &self,
        rule: &CompiledRule,
        counts: &Counts,
        state: &EngineState,
        hits: &mut Hits,
    ) {
        self.duplicates(rule, counts.duplicate.as_ref(), state, hits);
        self.flood(rule, counts.flood, state, hits);
        self.size_limits(rule, hits);
    }

    fn blacklist(&self, rule: &CompiledRule, state: &EngineState, hits: &mut Hits) {
        let is_join = matches!(self.event.kind, EventKind::MemberJoined { .. });
        if let Some(b) = &rule.blacklist
            && ((is_join && b.on_join) || (!is_join && b.on_message))
            && let Some(evidence) = self.blacklisted(state)
        {
            hits.push(CheckHit {
                check: CheckKind::Blacklist,
                evidence,
            });
        }
    }

    fn invites(&self, rule: &CompiledRule, hits: &mut Hits) {
        let event = self.event;
        let (EventKind::MemberJoined { inviter, scene }, Some((invites, allowed))) =
            (&event.kind, &rule.invites)
        else {
            return;
        };
        if invites.refuse_other_orgs
            && let Some(org) = &event.member.org
        {
            let home = self.rules.home_org(event.platform, self.group_key);
            if home.is_some_and(|h| h != org) && !allowed.contains(org) {
                hits.push(CheckHit {
                    check: CheckKind::OtherOrganisation,
                    evidence: Evidence::Organisation {
                        org: org.clone(),
                        home: home.cloned(),
                    },
                });
            }
        }
        if let (Some(min), Some(created)) = (invites.min_account_age, event.member.account_created)
            && self.now.millis() - created.millis() < duration_millis(min)
        {
            hits.push(CheckHit {
                check: CheckKind::NewAccount,
                evidence: Evidence::AccountAge { created, min },
            });
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
            hits.push(CheckHit {
                check: CheckKind::InviterNotStaff,
                evidence: Evidence::Inviter {
                    inviter: inviter.id.clone(),
                    role: inviter.role,
                },
            });
        }
    }

    fn links(&self, rule: &CompiledRule, text: &TextAnalysis<'_>, hits: &mut Hits) {
        let Some(links) = &rule.links else { return };
        let violates = |host: &str| {
            links.deny.covering(host).is_some()
                || (links.mode == LinkMode::AllowListedOnly && links.allow.covering(host).is_none())
        };
        if let Some(l) = text.links().iter().find(|l| violates(&l.host)) {
            hits.push(CheckHit {
                check: CheckKind::Link,
                evidence: text.literal_term(l.host.clone(), l.span.start, l.span.end),
            });
        } else if let Some(host) = self
            .event
            .message()
            .into_iter()
            .flat_map(|m| &m.links)
            .flat_map(|url| find_links(&fold_literal(url)))
            .map(|l| l.host)
            .find(|h| violates(h))
        {
            hits.push(CheckHit {
                check: CheckKind::Link,
                evidence: Evidence::Link { host },
            });
        }
    }

    /// Mini-programs outside the allow list, and banned message kinds.
    fn message_kind(&self, rule: &CompiledRule, hits: &mut Hits) {
        let Some(message) = self.event.message() else {
            return;
        };
        if let (Some(allow), MessageKind::MiniProgram { app_id }) =
            (&rule.mini_allow, &message.kind)
            && !app_id.as_ref().is_some_and(|id| allow.contains(id))
        {
            hits.push(CheckHit {
                check: CheckKind::MiniProgram,
                evidence: Evidence::MiniProgram {
                    app_id: app_id.clone(),
                },
            });
        }
        // A message with several attachments (Discord) is each of their kinds too.
        let banned = std::iter::once(message.kind.name())
            .chain(message.attachments.iter().filter_map(Attachment::kind))
            .find(|kind| rule.banned_kinds & kind.bit() != 0);
        if let Some(kind) = banned {
            hits.push(CheckHit {
                check: CheckKind::BannedKind,
                evidence: Evidence::Kind { kind },
            });
        }
    }

    fn duplicates(
        &self,
        rule: &CompiledRule,
        text: Option<&RecordedText>,
        state: &EngineState,
        hits: &mut Hits,
    ) {
        let (Some(d), Some(text)) = (&rule.duplicates, text) else {
            return;
        };
        // Nearly every text has had one sender, and limits are at least two.
        if let RecordedText::One(_) = text {
            return;
        }
        let since = seconds(self.now.millis() - duration_millis(d.window));
        let senders = state.duplicates.senders(text);
        let recent = || senders.iter().filter(|s| s.at > since);
        let by_member: fn(&DuplicateSender) -> u32 = |s| s.member;
        let by_group: fn(&DuplicateSender) -> u32 = |s| s.group;
        let distinct = [
            (CheckKind::DuplicateMembers, d.members, by_member),
            (CheckKind::DuplicateGroups, d.groups, by_group),
        ];
        for (check, limit, key_of) in distinct {
            let Some(limit) = limit else { continue };
            let mut keys: SmallVec<[u32; 8]> = recent().map(key_of).collect();
            keys.sort_unstable();
            keys.dedup();
            let observed = keys.len() as u32;
            if observed >= limit {
                hits.push(CheckHit {
                    check,
                    evidence: Evidence::Count {
                        observed,
                        limit,
                        window: Some(d.window),
                    },
                });
            }
        }
    }

    /// Too many messages from the member in the group within the window.
    fn flood(
        &self,
        rule: &CompiledRule,
        window: Option<WindowAt>,
        state: &EngineState,
        hits: &mut Hits,
    ) {
        let Some(f) = &rule.flood else { return };
        let (Some(limit), Some(per), Some(window)) = (f.messages, f.per, window) else {
            return;
        };
        let observed = state
            .flood
            .count_recent_at(window, self.now.millis(), duration_millis(per));
        if observed > limit {
            hits.push(CheckHit {
                check: CheckKind::Flood,
                evidence: Evidence::Count {
                    observed,
                    limit,
                    window: Some(per),
                },
            });
        }
    }

    /// Too many characters, line breaks or mentions in one message.
    fn size_limits(&self, rule: &CompiledRule, hits: &mut Hits) {
        let (Some(f), Some(text)) = (&rule.flood, self.event.text()) else {
            return;
        };
        let limits = [
            (CheckKind::MaxChars, f.max_chars),
            (CheckKind::MaxLines, f.max_lines),
            (CheckKind::MaxMentions, f.max_mentions),
        ];
        for (check, limit) in limits {
            let Some(limit) = limit else { continue };
            // A text has no more characters or line breaks than bytes: most need no count.
            let within = text.len() <= limit as usize;
            let observed = match check {
                CheckKind::MaxChars if !within => text.chars().count(),
                CheckKind::MaxLines if !within => {
                    // Found one past the limit before the rest are counted: most texts have
                    // no line break, and one search says so.
                    let mut breaks = memchr::memchr_iter(b'\n', text.as_bytes());
                    if breaks.nth(limit as usize).is_none() {
                        continue;
                    }
                    limit as usize + 1 + breaks.count()
                }
                CheckKind::MaxMentions => self.event.message().map_or(0, |m| m.mentions.len()),
                _ => continue,
            };
            if observed as u32 > limit {
                hits.push(CheckHit {
                    check,
                    evidence: Evidence::Count {
                        observed: observed as u32,
                        limit,
                        window: None,
                    },
                });
            }
        }
    }

    /// The blacklist entry that applies to the member here and now, if any.
    pub(super) fn blacklisted(&self, state: &EngineState) -> Option<Evidence> {
        let event = self.event;
        let owner = self.rules.owner(self.group_key);
        let personal = owner.map(|owner| {
            let key = keys::personal(event.platform, owner.as_str(), event.member.id.as_str());
            (key, ListScope::Personal, Some(owner))
        });
        [Some((self.member_key, ListScope::Org, None)), personal]
            .into_iter()
            .flatten()
            .find_map(|(key, list, owner)| {
                let active = |m: &&ListMeta| m.is_active(self.now);
                let meta = state
                    .blacklisted
                    .get(&key)
                    .filter(active)
                    .or_else(|| self.blacklist.get(key).filter(active))
                    .or_else(|| {
                        self.blacklist
                            .matching(event.platform, event.member.id.as_str(), owner)
                            .filter(active)
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

/// The first keyword of the rule in the text.
fn keyword(rule: &CompiledRule, index: u32, text: &TextAnalysis<'_>, hits: &mut Hits) {
    if rule.has_keywords
        && let Some((owner, start, end)) =
            text.keyword_hits.iter().find(|(o, _, _)| o.rule == index)
    {
        hits.push(CheckHit {
            check: CheckKind::Keyword,
            evidence: text.collapsed_term(keyword_text(rule, *owner), *start, *end),
        });
    }
}

/// The first of the rule's patterns that matches: the set tells whether any does in one
/// scan, then the patterns are tried in order only for a message that has a match.
fn regex(rule: &CompiledRule, text: &TextAnalysis<'_>, hits: &mut Hits) {
    let Some(regex) = &rule.regex else { return };
    if !regex.is_match(&text.normalized.folded) {
        return;
    }
    if let Some((pattern, m)) = regex
        .each
        .iter()
        .find_map(|(pattern, r)| r.find(&text.normalized.folded).map(|m| (pattern, m)))
    {
        hits.push(CheckHit {
            check: CheckKind::Regex,
            evidence: text.folded_term(pattern.clone(), m.start(), m.end()),
        });
    }
}

/// The first phone number of a kind the rule checks.
fn phone(rule: &CompiledRule, text: &TextAnalysis<'_>, hits: &mut Hits) {
    if !rule.phone_kinds.is_empty()
        && let Some(p) = text
            .phones()
            .iter()
            .find(|p| rule.phone_kinds.contains(&p.kind))
    {
        hits.push(CheckHit {
            check: CheckKind::Phone,
            evidence: text.literal_term(p.number.clone(), p.span.start, p.span.end),
        });
    }
}
