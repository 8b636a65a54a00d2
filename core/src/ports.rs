//! Ports: what groupguard needs from storage and the clock, as traits. The platform port is
//! in [`crate::platform`].
//!
//! The in-memory implementation lives in [`crate::memory`]; `groupguard-sql` implements the
//! same traits on SQLite and PostgreSQL, and one conformance suite
//! ([`crate::store_conformance_tests`]) runs against all of them. Every method takes the time
//! it should record (`Edit::at`, `now`), so stores never read a clock either.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::lists::IndexedEntry;
use crate::model::{GroupId, GroupRef, MemberRef, MessageId, Platform, RuleId, UserId};
use crate::platform::IdempotencyKey;
use crate::rule::{BlacklistEntry, GroupConfig, Rule, RuleSet, Settings, Source, WhitelistEntry};
use crate::time::Timestamp;
use crate::verdict::{Action, CheckKind, Verdict, ViolationRecord};

/// How long a deleted rule or list entry can be restored with [`AuditStore::undo`].
pub const UNDO_WINDOW: Duration = Duration::from_secs(72 * 3600);

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The thing does not exist.
    #[error("{what} `{key}` does not exist")]
    NotFound {
        /// What kind of thing (`rule`, `group`, `blacklist entry`, `audit entry`, `action`).
        what: &'static str,
        /// Which one.
        key: String,
    },
    /// The request cannot be carried out; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// The database failed. The message is generic on purpose; the source is for logs.
    #[error("an internal storage error occurred")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// The thing `what` named `key` does not exist.
    pub fn not_found(what: &'static str, key: impl std::fmt::Display) -> StoreError {
        StoreError::NotFound {
            what,
            key: key.to_string(),
        }
    }

    /// A database failure.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Box::new(e))
    }
}

impl BlacklistEntry {
    /// The rule every store enforces on blacklist entries: expiry after creation.
    pub fn validate(&self) -> Result<(), StoreError> {
        match self.expires_at {
            Some(expires) if expires <= self.created_at => Err(StoreError::Refused(format!(
                "the blacklist entry for {} expires before it was created",
                self.member
            ))),
            _ => Ok(()),
        }
    }
}

/// Who changes the configuration, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The moderator, rule or import responsible.
    pub by: Source,
    /// When.
    pub at: Timestamp,
}

impl Edit {
    /// An edit by `by` at `at`.
    pub fn new(by: Source, at: Timestamp) -> Edit {
        Edit { by, at }
    }
}

/// One stored version of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleVersion {
    /// 1 for the first version.
    pub version: u64,
    /// When it was saved.
    pub at: Timestamp,
    /// By whom.
    pub by: Source,
    /// The rule as saved.
    pub rule: Rule,
}

/// Rules, groups, settings and the whitelist: what chat commands and rule files edit.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// Everything the engine compiles except blacklist entries (see [`ListStore`]), rules in
    /// the order they were first created.
    async fn config(&self) -> Result<RuleSet, StoreError>;

    /// A number that grows with every change to rules, groups, settings or lists (also made
    /// by other instances sharing the database): when it moves, reload.
    async fn revision(&self) -> Result<u64, StoreError>;

    /// Replaces the settings.
    async fn put_settings(&self, settings: Settings, edit: &Edit) -> Result<(), StoreError>;

    /// Creates or replaces a rule, scope included (any number of groups), as a new version.
    /// Returns the version number.
    async fn put_rule(&self, rule: Rule, edit: &Edit) -> Result<u64, StoreError>;

    /// Deletes a rule; it can be restored with [`AuditStore::undo`] for [`UNDO_WINDOW`].
    async fn delete_rule(&self, id: &RuleId, edit: &Edit) -> Result<(), StoreError>;

    /// Every saved version of a rule, oldest first, including versions of a deleted rule.
    async fn rule_versions(&self, id: &RuleId) -> Result<Vec<RuleVersion>, StoreError>;

    /// Creates or replaces a group.
    async fn put_group(&self, group: GroupConfig, edit: &Edit) -> Result<(), StoreError>;

    /// Deletes a group.
    async fn delete_group(&self, id: &GroupRef, edit: &Edit) -> Result<(), StoreError>;

    /// Creates or replaces a whitelist entry.
    async fn put_whitelist(&self, entry: WhitelistEntry, edit: &Edit) -> Result<(), StoreError>;

    /// Removes a whitelist entry.
    async fn remove_whitelist(&self, member: &MemberRef, edit: &Edit) -> Result<(), StoreError>;

    /// Replaces settings, groups, rules and the whitelist with those of `set` in one
    /// transaction (a config import); blacklist entries in `set` are added. On error nothing
    /// changes.
    async fn replace_config(&self, set: RuleSet, edit: &Edit) -> Result<(), StoreError>;
}

/// Blacklists: org-wide and per owner.
#[async_trait]
pub trait ListStore: Send + Sync {
    /// Adds or replaces an entry (key: member and owner).
    async fn add_blacklist(&self, entry: BlacklistEntry, edit: &Edit) -> Result<(), StoreError>;

    /// Removes an entry; it can be restored with [`AuditStore::undo`] for [`UNDO_WINDOW`].
    async fn remove_blacklist(
        &self,
        member: &MemberRef,
        owner: Option<&UserId>,
        edit: &Edit,
    ) -> Result<(), StoreError>;

    /// Adds many entries in one transaction, replacing entries with the same key: all or
    /// nothing. Audited as one change. Returns how many were written.
    async fn import_blacklist(
        &self,
        entries: Vec<BlacklistEntry>,
        edit: &Edit,
    ) -> Result<u64, StoreError>;

    /// One page of entries in key order, after `after` (member, owner) when given.
    async fn blacklist_page(
        &self,
        after: Option<(&MemberRef, Option<&UserId>)>,
        limit: u32,
    ) -> Result<Vec<BlacklistEntry>, StoreError>;

    /// [`ListStore::blacklist_page`] with what the index keeps of each entry (no creation
    /// time): what start-up reads, so a store may send less.
    async fn blacklist_index_page(
        &self,
        after: Option<(&MemberRef, Option<&UserId>)>,
        limit: u32,
    ) -> Result<Vec<IndexedEntry>, StoreError> {
        let page = self.blacklist_page(after, limit).await?;
        Ok(page.iter().map(IndexedEntry::of).collect())
    }

    /// How many entries there are.
    async fn blacklist_len(&self) -> Result<u64, StoreError>;

    /// Keys (member, owner) of entries that cut the list, in key order, into `parts` runs of
    /// about equal length, each key the last of its run: start-up reads the runs at once.
    /// Empty where the store cannot tell cheaply, and then the list is read in one run.
    async fn blacklist_splits(
        &self,
        parts: u32,
    ) -> Result<Vec<(MemberRef, Option<UserId>)>, StoreError> {
        let _ = parts;
        Ok(Vec::new())
    }
}

/// Identifies an audit entry.
pub type AuditId = i64;

/// One audited change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing.
    pub id: AuditId,
    /// When.
    pub at: Timestamp,
    /// By whom.
    pub by: Source,
    /// What changed.
    pub change: Change,
    /// The entry that undid this one, if any.
    pub undone_by: Option<AuditId>,
}

/// A change, with the state before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entity", rename_all = "snake_case")]
pub enum Change {
    /// The settings.
    Settings {
        /// Before.
        before: Settings,
        /// After.
        after: Settings,
    },
    /// A rule.
    Rule {
        /// Which.
        id: RuleId,
        /// Before (none: created).
        before: Option<Box<Rule>>,
        /// After (none: deleted).
        after: Option<Box<Rule>>,
    },
    /// A group.
    Group {
        /// Which.
        id: GroupRef,
        /// Before.
        before: Option<GroupConfig>,
        /// After.
        after: Option<GroupConfig>,
    },
    /// A blacklist entry.
    Blacklist {
        /// Who.
        member: MemberRef,
        /// Whose list; none for org-wide.
        owner: Option<UserId>,
        /// Before.
        before: Option<BlacklistEntry>,
        /// After.
        after: Option<BlacklistEntry>,
    },
    /// A whitelist entry.
    Whitelist {
        /// Who.
        member: MemberRef,
        /// Before.
        before: Option<WhitelistEntry>,
        /// After.
        after: Option<WhitelistEntry>,
    },
    /// A bulk blacklist import (not undoable: remove entries one by one).
    BlacklistImport {
        /// How many entries were written.
        count: u64,
    },
    /// A config import (not undoable: import the previous export).
    ConfigImport {
        /// Rules in the new config.
        rules: u64,
        /// Groups in the new config.
        groups: u64,
    },
}

impl Change {
    /// The change that reverses this one, or why there is none.
    pub fn inverse(&self) -> Result<Change, String> {
        Ok(match self.clone() {
            Change::Settings { before, after } => Change::Settings {
                before: after,
                after: before,
            },
            Change::Rule { id, before, after } => Change::Rule {
                id,
                before: after,
                after: before,
            },
            Change::Group { id, before, after } => Change::Group {
                id,
                before: after,
                after: before,
            },
            Change::Blacklist {
                member,
                owner,
                before,
                after,
            } => Change::Blacklist {
                member,
                owner,
                before: after,
                after: before,
            },
            Change::Whitelist {
                member,
                before,
                after,
            } => Change::Whitelist {
                member,
                before: after,
                after: before,
            },
            Change::BlacklistImport { .. } => {
                return Err(
                    "a blacklist import cannot be undone; remove entries one by one".to_owned(),
                );
            }
            Change::ConfigImport { .. } => {
                return Err(
                    "a config import cannot be undone; import the previous export instead"
                        .to_owned(),
                );
            }
        })
    }
}

impl AuditEntry {
    /// The change that undoes this entry at `at`, or why it cannot be undone: already
    /// undone, older than [`UNDO_WINDOW`], or an import.
    pub fn undo_plan(&self, at: Timestamp) -> Result<Change, StoreError> {
        if let Some(by) = self.undone_by {
            return Err(StoreError::Refused(format!(
                "change #{} was already undone by #{by}",
                self.id
            )));
        }
        if self.at.plus(UNDO_WINDOW) < at {
            return Err(StoreError::Refused(format!(
                "change #{} is older than 72 hours and can no longer be undone",
                self.id
            )));
        }
        self.change.inverse().map_err(StoreError::Refused)
    }
}

/// The time, read at the edge and passed in everywhere else, so tests control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The places (from 0, in key order) of the entries that end the first `parts - 1` of
/// `parts` runs of about equal length over `len` entries: the entries whose keys
/// [`ListStore::blacklist_splits`] returns. None when there are fewer entries than parts.
pub fn split_offsets(len: u64, parts: u32) -> impl Iterator<Item = u64> {
    let parts = u64::from(parts);
    let runs = if len >= parts { parts } else { 1 };
    (1..runs).map(move |k| len * k / runs - 1)
}

/// Milliseconds in a day: stats are per UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// The newest entries first, older than `before` when given.
    async fn audit_page(
        &self,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Reverses an entry made within [`UNDO_WINDOW`] of `edit.at`, as a new audited change.
    /// Returns the new entry.
    async fn undo(&self, id: AuditId, edit: &Edit) -> Result<AuditEntry, StoreError>;
}

/// Identifies a stored violation.
pub type ViolationId = i64;
/// Identifies an outbox action.
pub type ActionId = i64;

/// What became of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ActionState {
    /// Waiting to be executed (again).
    Pending,
    /// Carried out.
    Done,
    /// Given up.
    Failed {
        /// The last error.
        error: String,
    },
    /// The platform cannot do it; something else was done instead (admins notified).
    Replaced {
        /// What was done instead.
        note: String,
    },
    /// Recorded only: the rule is in shadow mode.
    Shadow,
}

impl ActionState {
    /// Every state's name, as stored and shown.
    pub const NAMES: [&'static str; 5] = ["pending", "done", "failed", "replaced", "shadow"];

    /// The state's name (the serde tag).
    pub fn name(&self) -> &'static str {
        match self {
            ActionState::Pending => "pending",
            ActionState::Done => "done",
            ActionState::Failed { .. } => "failed",
            ActionState::Replaced { .. } => "replaced",
            ActionState::Shadow => "shadow",
        }
    }

    /// A state stored as its name and detail; none for a name that is no state's.
    pub fn from_stored(name: &str, detail: Option<String>) -> Option<ActionState> {
        let detail = detail.unwrap_or_default();
        Some(match name {
            "pending" => ActionState::Pending,
            "done" => ActionState::Done,
            "failed" => ActionState::Failed { error: detail },
            "replaced" => ActionState::Replaced { note: detail },
            "shadow" => ActionState::Shadow,
            _ => return None,
        })
    }
}

/// An action in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxAction {
    /// Its id.
    pub id: ActionId,
    /// The violation it belongs to.
    pub violation: ViolationId,
    /// That violation as recorded: what a notice shows moderators, and whether a kick is
    /// meant to keep the member out.
    pub record: ViolationRecord,
    /// The rule.
    pub rule: RuleId,
    /// Where.
    pub platform: Platform,
    /// The group.
    pub group: GroupId,
    /// The member.
    pub member: UserId,
    /// The message the action is about.
    pub message: Option<MessageId>,
    /// What to do.
    pub action: Action,
    /// The same on every attempt; see [`IdempotencyKey`].
    pub key: IdempotencyKey,
    /// What became of it.
    pub state: ActionState,
    /// Execution attempts so far.
    pub attempts: u32,
}

/// How an execution attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    /// Carried out.
    Done,
    /// Failed; try again at `at`.
    Retry {
        /// The error.
        error: String,
        /// When to try again.
        at: Timestamp,
    },
    /// Failed for good.
    Failed {
        /// The error.
        error: String,
    },
    /// The platform cannot do it; something else was done instead.
    Replaced {
        /// What was done.
        note: String,
    },
}

/// What [`ViolationStore::record`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The event was seen before: nothing was written.
    Duplicate,
    /// Written: one id per violation record, one per enforce action.
    New {
        /// The violations, in verdict order.
        violations: Vec<ViolationId>,
        /// The enforce actions queued, in verdict order.
        actions: Vec<ActionId>,
    },
}

/// A stored violation with what became of its actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredViolation {
    /// Its id.
    pub id: ViolationId,
    /// The record.
    pub record: ViolationRecord,
    /// Each action and its state (shadow actions are `Shadow`).
    pub outcomes: Vec<(Action, ActionState)>,
}

/// Which violations to list. Results are newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViolationQuery {
    /// In this group.
    pub group: Option<GroupRef>,
    /// By this member.
    pub member: Option<MemberRef>,
    /// Of this rule.
    pub rule: Option<RuleId>,
    /// At or after.
    pub from: Option<Timestamp>,
    /// Before.
    pub to: Option<Timestamp>,
    /// Older than this id (the previous page's last id).
    pub before_id: Option<ViolationId>,
    /// At most this many (0 means 50).
    pub limit: u32,
}

impl ViolationQuery {
    /// The page size to use.
    pub fn page_size(&self) -> u32 {
        if self.limit == 0 {
            50
        } else {
            self.limit.min(1000)
        }
    }
}

/// Violations in one group on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStats {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    /// The group.
    pub group: GroupRef,
    /// Violations.
    pub violations: u64,
    /// Distinct members who violated.
    pub violators: u64,
    /// Of those, members who had joined less than 24 hours before a violation.
    pub new_violators: u64,
}

/// Violations, the outbox and processed events.
#[async_trait]
pub trait ViolationStore: Send + Sync {
    /// Records a verdict in one transaction: the event id (for idempotency), every violation
    /// record, and every enforce action in the outbox with its idempotency key (the planned
    /// action's own, else [`IdempotencyKey::for_action`] of its place in the verdict) and the
    /// verdict's message. An event seen before writes nothing; an action whose key is
    /// already in the outbox for its platform is not queued again.
    async fn record(&self, verdict: &Verdict) -> Result<Recorded, StoreError>;

    /// Records several verdicts in one transaction (group commit), each as [`record`] would,
    /// in order: all or none. A verdict repeating one earlier in the batch is a duplicate.
    ///
    /// [`record`]: ViolationStore::record
    async fn record_all(&self, verdicts: &[Verdict]) -> Result<Vec<Recorded>, StoreError>;

    /// Whether an event was recorded already (platforms re-deliver): checked before judging,
    /// so a redelivered event counts for nothing.
    async fn seen(&self, platform: Platform, event: &str) -> Result<bool, StoreError>;

    /// Which of several events were recorded already: one query for a batch.
    async fn seen_among(
        &self,
        events: &[(Platform, String)],
    ) -> Result<std::collections::HashSet<(Platform, String)>, StoreError>;

    /// The recorded verdict of an event, looked up by event id or by message id.
    async fn verdict(&self, platform: Platform, id: &str) -> Result<Option<Verdict>, StoreError>;

    /// Takes up to `limit` pending actions due at `now` and leases them until `lease_until`:
    /// concurrent callers never get the same action while its lease runs.
    async fn claim_actions(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxAction>, StoreError>;

    /// Records how an attempt ended.
    async fn finish_action(&self, id: ActionId, result: ActionResult) -> Result<(), StoreError> {
        let mut finished = self.finish_actions(&[(id, result)]).await?;
        finished.pop().unwrap_or(Ok(()))
    }

    /// Records how several attempts ended, in one transaction: for each, done, or why not
    /// (the action does not exist, or is finished already: another instance took it over
    /// when its lease ran out).
    async fn finish_actions(
        &self,
        results: &[(ActionId, ActionResult)],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;

    /// Pending actions (leased or not).
    async fn outbox_depth(&self) -> Result<u64, StoreError>;

    /// Violations matching `query`, newest first.
    async fn violations(&self, query: &ViolationQuery) -> Result<Vec<StoredViolation>, StoreError>;

    /// Per group and UTC day, from `from` (inclusive) to `to` (exclusive).
    async fn day_stats(
        &self,
        group: Option<&GroupRef>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<DayStats>, StoreError>;

    /// The checks that matched most often in the period, most first.
    async fn top_checks(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<(CheckKind, u64)>, StoreError>;

    /// (member, rule, time) of every violation since `since`, oldest first: what the engine
    /// needs to restore its ladder counters after a restart.
    async fn ladder_history(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(MemberRef, RuleId, Timestamp)>, StoreError>;

    /// Forgets processed event ids older than `before`; returns how many.
    async fn prune_events(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Everything a store provides.
pub trait Store: ConfigStore + ListStore + AuditStore + ViolationStore {}

impl<T: ConfigStore + ListStore + AuditStore + ViolationStore> Store for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_state_names_are_the_serde_tags() {
        let states = [
            ActionState::Pending,
            ActionState::Done,
            ActionState::Failed {
                error: "e".to_owned(),
            },
            ActionState::Replaced {
                note: "n".to_owned(),
            },
            ActionState::Shadow,
        ];
        for state in &states {
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json["state"], state.name());
            let detail = json
                .get("error")
                .or(json.get("note"))
                .and_then(|d| d.as_str())
                .map(str::to_owned);
            assert_eq!(
                ActionState::from_stored(state.name(), detail).as_ref(),
                Some(state)
            );
        }
        let names: Vec<&str> = states.iter().map(ActionState::name).collect();
        assert_eq!(names, ActionState::NAMES);
        assert_eq!(ActionState::from_stored("lost", None), None);
    }
}
