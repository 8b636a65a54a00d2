//! Decisions as values: what the engine concluded and what should happen.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{EventId, GroupId, KindName, MessageId, OrgId, Platform, Role, RuleId, UserId};
use crate::names::named;
use crate::platform::IdempotencyKey;
use crate::rule::{ListScope, Mode, Source};
use crate::time::{Timestamp, duration_text};

/// Everything the engine concluded about one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The event judged.
    pub event: EventId,
    /// The message it carried, if any.
    pub message: Option<MessageId>,
    /// When it was judged (the `now` passed to the engine).
    pub at: Timestamp,
    /// Where.
    pub platform: Platform,
    /// Which group.
    pub group: GroupId,
    /// Whose event.
    pub member: UserId,
    /// Every rule's outcome, in rule order.
    pub outcomes: Outcomes,
    /// What to do, tagged enforce or shadow.
    pub actions: Vec<PlannedAction>,
    /// One record per matched rule, for storage.
    pub violations: Vec<ViolationRecord>,
}

impl Verdict {
    /// The outcomes of rules that matched.
    pub fn matched(&self) -> impl Iterator<Item = (&RuleId, &Match)> {
        self.outcomes
            .iter()
            .filter_map(|(rule, result)| match result {
                Outcome::Matched(m) => Some((rule, m)),
                _ => None,
            })
    }

    /// The outcome of one rule.
    pub fn outcome(&self, rule: &str) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|(id, _)| id.as_str() == rule)
            .map(|(_, result)| result)
    }
}

/// Every rule's outcome, in rule order, held as the judged rules' ids (shared with the
/// running rules) and the outcomes other than [`Outcome::NotMatched`]: a verdict on a clean
/// message copies no rule id and allocates nothing for its outcomes. Serialized as the full
/// list of [`RuleOutcome`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes {
    rules: Arc<[RuleId]>,
    /// By rule index, ascending; never `NotMatched`.
    notable: Vec<(u32, Outcome)>,
}

static NOT_MATCHED: Outcome = Outcome::NotMatched;

impl Outcomes {
    /// Every one of `rules` not matched.
    pub fn none_matched(rules: Arc<[RuleId]>) -> Outcomes {
        Outcomes {
            rules,
            notable: Vec::new(),
        }
    }

    /// Sets the outcome of the rule at `index`.
    ///
    /// # Panics
    /// When `index` is not a rule's.
    pub fn set(&mut self, index: usize, outcome: Outcome) {
        assert!(index < self.rules.len(), "no rule at {index}");
        let index = index as u32;
        let at = self.notable.partition_point(|(i, _)| *i < index);
        let present = self.notable.get(at).is_some_and(|(i, _)| *i == index);
        match (outcome, present) {
            (Outcome::NotMatched, true) => drop(self.notable.remove(at)),
            (Outcome::NotMatched, false) => {}
            (outcome, true) => self.notable[at].1 = outcome,
            (outcome, false) => self.notable.insert(at, (index, outcome)),
        }
    }

    /// Each rule with its outcome, in rule order.
    pub fn iter(&self) -> impl Iterator<Item = (&RuleId, &Outcome)> {
        let mut notable = self.notable.iter().peekable();
        self.rules.iter().enumerate().map(move |(i, rule)| {
            match notable.next_if(|(at, _)| *at as usize == i) {
                Some((_, outcome)) => (rule, outcome),
                None => (rule, &NOT_MATCHED),
            }
        })
    }

    /// How many rules were judged.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule was judged.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl FromIterator<RuleOutcome> for Outcomes {
    fn from_iter<I: IntoIterator<Item = RuleOutcome>>(outcomes: I) -> Outcomes {
        let mut rules = Vec::new();
        let mut notable = Vec::new();
        for (i, RuleOutcome { rule, result }) in outcomes.into_iter().enumerate() {
            rules.push(rule);
            if result != Outcome::NotMatched {
                notable.push((i as u32, result));
            }
        }
        Outcomes {
            rules: rules.into(),
            notable,
        }
    }
}

impl Serialize for Outcomes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// A [`RuleOutcome`] by reference.
        #[derive(Serialize)]
        struct Entry<'a> {
            rule: &'a RuleId,
            #[serde(flatten)]
            result: &'a Outcome,
        }
        serializer.collect_seq(self.iter().map(|(rule, result)| Entry { rule, result }))
    }
}

impl<'de> Deserialize<'de> for Outcomes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Outcomes, D::Error> {
        Ok(Vec::<RuleOutcome>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// One rule's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// The rule.
    pub rule: RuleId,
    /// What happened.
    #[serde(flatten)]
    pub result: Outcome,
}

/// Matched, not matched, or skipped with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// At least one check matched.
    Matched(Match),
    /// The rule ran and nothing matched.
    NotMatched,
    /// The rule did not run, and why.
    Skipped(SkipReason),
}

/// Why a rule did not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// The rule is disabled.
    Disabled,
    /// The group or platform is outside the rule's scope.
    OutOfScope,
    /// The member's role is exempt.
    ExemptRole {
        /// The role.
        role: Role,
    },
    /// The member is a bot and bots are exempt.
    Bot,
    /// The member is whitelisted for this rule.
    Whitelisted,
    /// None of the rule's checks look at this kind of event.
    NotApplicable,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Disabled => f.write_str("rule is disabled"),
            SkipReason::OutOfScope => f.write_str("group is out of the rule's scope"),
            SkipReason::ExemptRole { role } => write!(f, "role {role} is exempt"),
            SkipReason::Bot => f.write_str("bots are exempt"),
            SkipReason::Whitelisted => f.write_str("member is whitelisted"),
            SkipReason::NotApplicable => f.write_str("no check applies to this event"),
        }
    }
}

/// What a matched rule found and where the member now stands on its ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// Every check that matched, first one first.
    pub hits: Vec<CheckHit>,
    /// Violations of this rule by this member inside the decay window, before this one.
    pub count_before: u32,
    /// The same, including this one.
    pub count_after: u32,
    /// The rung applied (`delete+warn`).
    pub rung: String,
    /// Things the engine could not plan, such as a personal blacklist in a group with no owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

named! {
    /// Which check matched.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum CheckKind as "check" {
        /// A sensitive word.
        Keyword = "keyword",
        /// A regular expression.
        Regex = "regex",
        /// A phone number.
        Phone = "phone",
        /// A link.
        Link = "link",
        /// A mini-program not on the allow-list.
        MiniProgram = "mini_program",
        /// A banned message kind.
        BannedKind = "banned_kind",
        /// Too many messages in the window.
        Flood = "flood",
        /// Too many characters.
        MaxChars = "max_chars",
        /// Too many line breaks.
        MaxLines = "max_lines",
        /// Too many mentions.
        MaxMentions = "max_mentions",
        /// The same text from too many members.
        DuplicateMembers = "duplicate_members",
        /// The same text in too many groups.
        DuplicateGroups = "duplicate_groups",
        /// A member of another organisation joined.
        OtherOrganisation = "other_organisation",
        /// Someone who is not staff invited the member.
        InviterNotStaff = "inviter_not_staff",
        /// An account younger than the rule allows joined.
        NewAccount = "new_account",
        /// A blacklisted member.
        Blacklist = "blacklist",
    }
}

/// One matched check and its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckHit {
    /// The check.
    pub check: CheckKind,
    /// What it found.
    pub evidence: Evidence,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// A term found in the text: the keyword or pattern, or the number or domain found.
    Term {
        /// The keyword or pattern as configured, or the normalized number or host.
        term: String,
        /// The text as the member wrote it.
        matched: String,
        /// Where, in bytes of the message text.
        span: Range<usize>,
    },
    /// A link reported by the platform outside the text (a link card).
    Link {
        /// The host.
        host: String,
    },
    /// A message kind.
    Kind {
        /// The kind.
        kind: KindName,
    },
    /// A mini-program.
    MiniProgram {
        /// Its app id, when known.
        app_id: Option<String>,
    },
    /// A count over a limit.
    Count {
        /// What was counted.
        observed: u32,
        /// The limit.
        limit: u32,
        /// The window, for rates.
        #[serde(
            default,
            with = "duration_text::option",
            skip_serializing_if = "Option::is_none"
        )]
        window: Option<Duration>,
    },
    /// A member of another organisation.
    Organisation {
        /// Their organisation.
        org: OrgId,
        /// The group's home organisation.
        home: Option<OrgId>,
    },
    /// An account too young to join.
    AccountAge {
        /// When the account was made.
        created: Timestamp,
        /// The youngest age allowed.
        #[serde(with = "duration_text")]
        min: Duration,
    },
    /// An inviter without the right role.
    Inviter {
        /// Who invited.
        inviter: UserId,
        /// Their role.
        role: Role,
    },
    /// A blacklist entry.
    Blacklisted {
        /// Which list.
        list: ListScope,
        /// Why the member is on it.
        reason: String,
        /// Who put them there.
        source: Source,
        /// Until when.
        expires_at: Option<Timestamp>,
    },
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Term { term, matched, .. } if term == matched => write!(f, "`{term}`"),
            Evidence::Term { term, matched, .. } => write!(f, "`{term}` as `{matched}`"),
            Evidence::Link { host } => write!(f, "link to {host}"),
            Evidence::Kind { kind } => write!(f, "{kind} message"),
            Evidence::MiniProgram { app_id: Some(id) } => write!(f, "mini-program {id}"),
            Evidence::MiniProgram { app_id: None } => f.write_str("mini-program without app id"),
            Evidence::Count {
                observed,
                limit,
                window: Some(w),
            } => write!(
                f,
                "{observed} in {} (limit {limit})",
                humantime::format_duration(*w)
            ),
            Evidence::Count {
                observed, limit, ..
            } => write!(f, "{observed} (limit {limit})"),
            Evidence::Organisation { org, home } => match home {
                Some(home) => write!(f, "from {org}, group belongs to {home}"),
                None => write!(f, "from {org}"),
            },
            Evidence::Inviter { inviter, role } => write!(f, "invited by {inviter} ({role})"),
            Evidence::AccountAge { created, min } => write!(
                f,
                "account made {}, younger than {}",
                created.to_rfc3339(),
                humantime::format_duration(*min)
            ),
            Evidence::Blacklisted {
                list,
                reason,
                source,
                ..
            } => {
                let list = match list {
                    ListScope::Org => "org-wide",
                    ListScope::Personal => "owner's",
                };
                write!(f, "on the {list} blacklist ({source}")?;
                if !reason.is_empty() {
                    write!(f, ": {reason}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// An action to take, with its target resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedAction {
    /// The rule that asked for it.
    pub rule: RuleId,
    /// Enforce (execute) or shadow (record only).
    pub mode: Mode,
    /// Where.
    pub platform: Platform,
    /// Which group.
    pub group: GroupId,
    /// Whom it concerns.
    pub member: UserId,
    /// What.
    pub action: Action,
    /// Its idempotency key when it is not the default one of its place in the verdict (raid
    /// alerts are keyed by group and window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<IdempotencyKey>,
}

/// A concrete effect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Delete (recall, redact) a message.
    DeleteMessage {
        /// The message.
        message: MessageId,
    },
    /// Post a warning in the group.
    Warn {
        /// The text.
        text: String,
    },
    /// Mute the member.
    Timeout {
        /// For how long.
        #[serde(with = "duration_text")]
        duration: Duration,
    },
    /// Remove the member from the group.
    Kick,
    /// Add the member to a blacklist.
    Blacklist {
        /// The owner whose personal list it is; none for the org-wide list.
        owner: Option<UserId>,
        /// Why.
        reason: String,
        /// Until when.
        expires_at: Option<Timestamp>,
    },
    /// Tell the group's admins.
    NotifyAdmins {
        /// The text.
        text: String,
    },
    /// Queue the case for a human.
    QueueReview {
        /// What to look at.
        summary: String,
    },
    /// Lock the group down (no new members, no messages from members) during a raid.
    Lockdown,
}

impl Action {
    /// A short name: `delete`, `warn`, `timeout`, `kick`, `blacklist`, `notify`, `review`,
    /// `lockdown`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::DeleteMessage { .. } => "delete",
            Action::Warn { .. } => "warn",
            Action::Timeout { .. } => "timeout",
            Action::Kick => "kick",
            Action::Blacklist { .. } => "blacklist",
            Action::NotifyAdmins { .. } => "notify",
            Action::QueueReview { .. } => "review",
            Action::Lockdown => "lockdown",
        }
    }
}

/// What storage keeps of a violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationRecord {
    /// The event.
    pub event: EventId,
    /// When.
    pub at: Timestamp,
    /// Where.
    pub platform: Platform,
    /// Which group.
    pub group: GroupId,
    /// Who.
    pub member: UserId,
    /// Their display name at the time.
    pub member_name: Option<String>,
    /// When they joined the group, when the platform said.
    pub member_joined_at: Option<Timestamp>,
    /// The rule.
    pub rule: RuleId,
    /// The first check that matched.
    pub check: CheckKind,
    /// What it found.
    pub evidence: Evidence,
    /// The start of the offending text.
    pub excerpt: String,
    /// The actions planned.
    pub actions: Vec<Action>,
    /// Enforce or shadow.
    pub mode: Mode,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(ids: &[&str]) -> Outcomes {
        Outcomes::none_matched(ids.iter().map(|&id| RuleId::from(id)).collect())
    }

    fn listed(outcomes: &Outcomes) -> Vec<(&str, &Outcome)> {
        outcomes.iter().map(|(id, o)| (id.as_str(), o)).collect()
    }

    #[test]
    fn outcomes_list_every_rule_in_rule_order_whatever_order_they_were_set_in() {
        let mut list = outcomes(&["a", "b", "c", "d"]);
        let skipped = Outcome::Skipped(SkipReason::OutOfScope);
        list.set(3, Outcome::Skipped(SkipReason::Bot));
        list.set(1, skipped.clone());
        assert_eq!(
            listed(&list),
            [
                ("a", &Outcome::NotMatched),
                ("b", &skipped),
                ("c", &Outcome::NotMatched),
                ("d", &Outcome::Skipped(SkipReason::Bot)),
            ]
        );
        list.set(3, Outcome::NotMatched);
        list.set(1, Outcome::Skipped(SkipReason::Disabled));
        assert_eq!(
            listed(&list)[1..],
            [
                ("b", &Outcome::Skipped(SkipReason::Disabled)),
                ("c", &Outcome::NotMatched),
                ("d", &Outcome::NotMatched),
            ]
        );
        assert_eq!(list, {
            let mut same = outcomes(&["a", "b", "c", "d"]);
            same.set(1, Outcome::Skipped(SkipReason::Disabled));
            same
        });
    }

    #[test]
    fn outcomes_serialize_as_the_full_list_and_read_back() {
        let mut list = outcomes(&["ads", "flood"]);
        list.set(1, Outcome::Skipped(SkipReason::Whitelisted));
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(
            json,
            r#"[{"rule":"ads","outcome":"not_matched"},{"rule":"flood","outcome":"skipped","reason":"whitelisted"}]"#
        );
        let back: Outcomes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, list);
        assert_eq!(back.len(), 2);
    }

    #[test]
    #[should_panic(expected = "no rule at 2")]
    fn an_outcome_for_a_rule_not_judged_is_refused() {
        outcomes(&["a", "b"]).set(2, Outcome::Skipped(SkipReason::Bot));
    }
}
