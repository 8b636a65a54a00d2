//! A store that keeps everything in memory, for tests (feature `testing`): it passes the same
//! conformance suite as the SQL stores, so tests of other crates can stand on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::model::{GroupRef, MemberRef, Platform, RuleId, UserId};
use crate::platform::IdempotencyKey;
use crate::ports::{
    ActionId, ActionResult, ActionState, AuditEntry, AuditId, AuditStore, Change, ConfigStore,
    DAY_MS, DayStats, Edit, ListStore, OutboxAction, Recorded, RuleVersion, StoreError,
    StoredViolation, ViolationId, ViolationQuery, ViolationStore, split_offsets,
};
use crate::rule::{BlacklistEntry, GroupConfig, Rule, RuleSet, Settings, WhitelistEntry};
use crate::time::Timestamp;
use crate::verdict::{CheckKind, Verdict, ViolationRecord};

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

/// Sort keys that match the SQL stores' `ORDER BY platform, id` on text columns.
type MemberKey = (String, String);
type BlacklistKey = (String, String, String);

fn member_key(m: &MemberRef) -> MemberKey {
    (m.platform.as_str().to_owned(), m.id.to_string())
}

fn blacklist_key(m: &MemberRef, owner: Option<&UserId>) -> BlacklistKey {
    let (platform, id) = member_key(m);
    (
        platform,
        id,
        owner.map(UserId::to_string).unwrap_or_default(),
    )
}

fn group_key(g: &GroupRef) -> MemberKey {
    (g.platform.as_str().to_owned(), g.id.to_string())
}

#[derive(Debug, Default)]
struct Inner {
    settings: Settings,
    rules: Vec<Rule>,
    versions: HashMap<RuleId, Vec<RuleVersion>>,
    groups: BTreeMap<MemberKey, GroupConfig>,
    whitelist: BTreeMap<MemberKey, WhitelistEntry>,
    blacklist: BTreeMap<BlacklistKey, BlacklistEntry>,
    audit: Vec<AuditEntry>,
    /// Recorded events: time and verdict.
    events: HashMap<(Platform, String), (i64, Verdict)>,
    violations: Vec<(ViolationId, ViolationRecord)>,
    outbox: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    action: OutboxAction,
    due: i64,
    lease_until: i64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data: every change is one step.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn audit(&mut self, edit: &Edit, change: Change) -> AuditId {
        let id = self.audit.len() as AuditId + 1;
        self.audit.push(AuditEntry {
            id,
            at: edit.at,
            by: edit.by.clone(),
            change,
            undone_by: None,
        });
        id
    }

    fn rule_index(&self, id: &RuleId) -> Option<usize> {
        self.rules.iter().position(|r| &r.id == id)
    }

    fn put_rule(&mut self, rule: Rule, edit: &Edit) -> u64 {
        let before = match self.rule_index(&rule.id) {
            Some(i) => Some(std::mem::replace(&mut self.rules[i], rule.clone())),
            None => {
                self.rules.push(rule.clone());
                None
            }
        };
        let versions = self.versions.entry(rule.id.clone()).or_default();
        let version = versions.len() as u64 + 1;
        versions.push(RuleVersion {
            version,
            at: edit.at,
            by: edit.by.clone(),
            rule: rule.clone(),
        });
        let id = rule.id.clone();
        self.audit(
            edit,
            Change::Rule {
                id,
                before: before.map(Box::new),
                after: Some(Box::new(rule)),
            },
        );
        version
    }

    fn delete_rule(&mut self, id: &RuleId, edit: &Edit) -> Result<(), StoreError> {
        let i = self
            .rule_index(id)
            .ok_or_else(|| StoreError::not_found("rule", id))?;
        let before = self.rules.remove(i);
        self.audit(
            edit,
            Change::Rule {
                id: id.clone(),
                before: Some(Box::new(before)),
                after: None,
            },
        );
        Ok(())
    }

    fn put_group(&mut self, group: GroupConfig, edit: &Edit) {
        let before = self.groups.insert(group_key(&group.id), group.clone());
        self.audit(
            edit,
            Change::Group {
                id: group.id.clone(),
                before,
                after: Some(group),
            },
        );
    }

    fn delete_group(&mut self, id: &GroupRef, edit: &Edit) -> Result<(), StoreError> {
        let before = self
            .groups
            .remove(&group_key(id))
            .ok_or_else(|| StoreError::not_found("group", id))?;
        self.audit(
            edit,
            Change::Group {
                id: id.clone(),
                before: Some(before),
                after: None,
            },
        );
        Ok(())
    }

    fn put_whitelist(&mut self, entry: WhitelistEntry, edit: &Edit) {
        let before = self
            .whitelist
            .insert(member_key(&entry.member), entry.clone());
        self.audit(
            edit,
            Change::Whitelist {
                member: entry.member.clone(),
                before,
                after: Some(entry),
            },
        );
    }

    fn remove_whitelist(&mut self, member: &MemberRef, edit: &Edit) -> Result<(), StoreError> {
        let before = self
            .whitelist
            .remove(&member_key(member))
            .ok_or_else(|| StoreError::not_found("whitelist entry", member))?;
        self.audit(
            edit,
            Change::Whitelist {
                member: member.clone(),
                before: Some(before),
                after: None,
            },
        );
        Ok(())
    }

    fn add_blacklist(&mut self, entry: BlacklistEntry, edit: &Edit) {
        let key = blacklist_key(&entry.member, entry.owner.as_ref());
        let before = self.blacklist.insert(key, entry.clone());
        self.audit(
            edit,
            Change::Blacklist {
                member: entry.member.clone(),
                owner: entry.owner.clone(),
                before,
                after: Some(entry),
            },
        );
    }

    fn remove_blacklist(
        &mut self,
        member: &MemberRef,
        owner: Option<&UserId>,
        edit: &Edit,
    ) -> Result<(), StoreError> {
        let before = self
            .blacklist
            .remove(&blacklist_key(member, owner))
            .ok_or_else(|| StoreError::not_found("blacklist entry", member))?;
        self.audit(
            edit,
            Change::Blacklist {
                member: member.clone(),
                owner: owner.cloned(),
                before: Some(before),
                after: None,
            },
        );
        Ok(())
    }

    fn put_settings(&mut self, settings: Settings, edit: &Edit) {
        let before = std::mem::replace(&mut self.settings, settings.clone());
        self.audit(
            edit,
            Change::Settings {
                before,
                after: settings,
            },
        );
    }

    /// Applies a change as a new audited edit.
    fn apply(&mut self, change: Change, edit: &Edit) -> Result<(), StoreError> {
        match change {
            Change::Settings { after, .. } => self.put_settings(after, edit),
            Change::Rule {
                after: Some(rule), ..
            } => {
                self.put_rule(*rule, edit);
            }
            Change::Rule {
                id, after: None, ..
            } => self.delete_rule(&id, edit)?,
            Change::Group { after: Some(g), .. } => self.put_group(g, edit),
            Change::Group {
                id, after: None, ..
            } => self.delete_group(&id, edit)?,
            Change::Whitelist { after: Some(w), .. } => self.put_whitelist(w, edit),
            Change::Whitelist {
                member,
                after: None,
                ..
            } => self.remove_whitelist(&member, edit)?,
            Change::Blacklist { after: Some(b), .. } => self.add_blacklist(b, edit),
            Change::Blacklist {
                member,
                owner,
                after: None,
                ..
            } => self.remove_blacklist(&member, owner.as_ref(), edit)?,
            Change::BlacklistImport { .. } | Change::ConfigImport { .. } => {
                return Err(StoreError::Refused(
                    "this change cannot be applied again".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for MemoryStore {
    async fn config(&self) -> Result<RuleSet, StoreError> {
        let inner = self.lock();
        Ok(RuleSet {
            settings: inner.settings.clone(),
            groups: inner.groups.values().cloned().collect(),
            rules: inner.rules.clone(),
            blacklist: Vec::new(),
            whitelist: inner.whitelist.values().cloned().collect(),
        })
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        // Every change is audited, so the log's length counts changes.
        Ok(self.lock().audit.len() as u64)
    }

    async fn put_settings(&self, settings: Settings, edit: &Edit) -> Result<(), StoreError> {
        self.lock().put_settings(settings, edit);
        Ok(())
    }

    async fn put_rule(&self, rule: Rule, edit: &Edit) -> Result<u64, StoreError> {
        Ok(self.lock().put_rule(rule, edit))
    }

    async fn delete_rule(&self, id: &RuleId, edit: &Edit) -> Result<(), StoreError> {
        self.lock().delete_rule(id, edit)
    }

    async fn rule_versions(&self, id: &RuleId) -> Result<Vec<RuleVersion>, StoreError> {
        Ok(self.lock().versions.get(id).cloned().unwrap_or_default())
    }

    async fn put_group(&self, group: GroupConfig, edit: &Edit) -> Result<(), StoreError> {
        self.lock().put_group(group, edit);
        Ok(())
    }

    async fn delete_group(&self, id: &GroupRef, edit: &Edit) -> Result<(), StoreError> {
        self.lock().delete_group(id, edit)
    }

    async fn put_whitelist(&self, entry: WhitelistEntry, edit: &Edit) -> Result<(), StoreError> {
        self.lock().put_whitelist(entry, edit);
        Ok(())
    }

    async fn remove_whitelist(&self, member: &MemberRef, edit: &Edit) -> Result<(), StoreError> {
        self.lock().remove_whitelist(member, edit)
    }

    async fn replace_config(&self, set: RuleSet, edit: &Edit) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let (rules, groups) = (set.rules.len() as u64, set.groups.len() as u64);
        inner.settings = set.settings;
        inner.groups = set
            .groups
            .into_iter()
            .map(|g| (group_key(&g.id), g))
            .collect();
        inner.whitelist = set
            .whitelist
            .into_iter()
            .map(|w| (member_key(&w.member), w))
            .collect();
        inner.rules.clear();
        for rule in set.rules {
            let versions = inner.versions.entry(rule.id.clone()).or_default();
            let version = versions.len() as u64 + 1;
            versions.push(RuleVersion {
                version,
                at: edit.at,
                by: edit.by.clone(),
                rule: rule.clone(),
            });
            inner.rules.push(rule);
        }
        for entry in set.blacklist {
            let key = blacklist_key(&entry.member, entry.owner.as_ref());
            inner.blacklist.insert(key, entry);
        }
        inner.audit(edit, Change::ConfigImport { rules, groups });
        Ok(())
    }
}

#[async_trait]
impl ListStore for MemoryStore {
    async fn add_blacklist(&self, entry: BlacklistEntry, edit: &Edit) -> Result<(), StoreError> {
        entry.validate()?;
        self.lock().add_blacklist(entry, edit);
        Ok(())
    }

    async fn remove_blacklist(
        &self,
        member: &MemberRef,
        owner: Option<&UserId>,
        edit: &Edit,
    ) -> Result<(), StoreError> {
        self.lock().remove_blacklist(member, owner, edit)
    }

    async fn import_blacklist(
        &self,
        entries: Vec<BlacklistEntry>,
        edit: &Edit,
    ) -> Result<u64, StoreError> {
        entries.iter().try_for_each(BlacklistEntry::validate)?;
        let mut inner = self.lock();
        let count = entries.len() as u64;
        for entry in entries {
            let key = blacklist_key(&entry.member, entry.owner.as_ref());
            inner.blacklist.insert(key, entry);
        }
        inner.audit(edit, Change::BlacklistImport { count });
        Ok(count)
    }

    async fn blacklist_page(
        &self,
        after: Option<(&MemberRef, Option<&UserId>)>,
        limit: u32,
    ) -> Result<Vec<BlacklistEntry>, StoreError> {
        let inner = self.lock();
        let page = match after {
            Some((member, owner)) => {
                let key = blacklist_key(member, owner);
                inner
                    .blacklist
                    .range((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
                    .map(|(_, e)| e.clone())
                    .take(limit as usize)
                    .collect()
            }
            None => inner
                .blacklist
                .values()
                .take(limit as usize)
                .cloned()
                .collect(),
        };
        Ok(page)
    }

    async fn blacklist_len(&self) -> Result<u64, StoreError> {
        Ok(self.lock().blacklist.len() as u64)
    }

    async fn blacklist_splits(
        &self,
        parts: u32,
    ) -> Result<Vec<(MemberRef, Option<UserId>)>, StoreError> {
        let inner = self.lock();
        let entries: Vec<&BlacklistEntry> = inner.blacklist.values().collect();
        Ok(split_offsets(entries.len() as u64, parts)
            .map(|at| {
                let e = entries[at as usize];
                (e.member.clone(), e.owner.clone())
            })
            .collect())
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn audit_page(
        &self,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .audit
            .iter()
            .rev()
            .filter(|e| before.is_none_or(|b| e.id < b))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn undo(&self, id: AuditId, edit: &Edit) -> Result<AuditEntry, StoreError> {
        let mut inner = self.lock();
        let index = inner
            .audit
            .iter()
            .position(|e| e.id == id)
            .ok_or_else(|| StoreError::not_found("audit entry", id))?;
        let change = inner.audit[index].undo_plan(edit.at)?;
        inner.apply(change, edit)?;
        let new_id = inner.audit.len() as AuditId;
        inner.audit[index].undone_by = Some(new_id);
        Ok(inner.audit[new_id as usize - 1].clone())
    }
}

/// One verdict recorded while the store is locked.
fn record_locked(inner: &mut Inner, verdict: &Verdict) -> Recorded {
    let key = (verdict.platform, verdict.event.to_string());
    if inner.events.contains_key(&key) {
        return Recorded::Duplicate;
    }
    inner
        .events
        .insert(key, (verdict.at.millis(), verdict.clone()));
    let mut violations = Vec::new();
    let mut actions = Vec::new();
    for record in &verdict.violations {
        let id = inner.violations.len() as ViolationId + 1;
        inner.violations.push((id, record.clone()));
        violations.push((record.rule.clone(), id));
    }
    for (index, planned) in verdict.actions.iter().enumerate() {
        if planned.mode != crate::rule::Mode::Enforce {
            continue;
        }
        let key = planned
            .key
            .clone()
            .unwrap_or_else(|| IdempotencyKey::for_action(verdict.platform, &verdict.event, index));
        let taken = inner
            .outbox
            .iter()
            .any(|s| s.action.platform == planned.platform && s.action.key == key);
        if taken {
            continue;
        }
        // An action belongs to its rule's violation.
        let Some((violation, record)) = violations
            .iter()
            .zip(&verdict.violations)
            .find(|((rule, _), _)| rule == &planned.rule)
            .map(|((_, id), record)| (*id, record.clone()))
        else {
            continue;
        };
        let id = inner.outbox.len() as ActionId + 1;
        inner.outbox.push(Slot {
            action: OutboxAction {
                id,
                violation,
                record,
                rule: planned.rule.clone(),
                platform: planned.platform,
                group: planned.group.clone(),
                member: planned.member.clone(),
                message: verdict.message.clone(),
                action: planned.action.clone(),
                key,
                state: ActionState::Pending,
                attempts: 0,
            },
            due: verdict.at.millis(),
            lease_until: i64::MIN,
        });
        actions.push(id);
    }
    Recorded::New {
        violations: violations.into_iter().map(|(_, id)| id).collect(),
        actions,
    }
}

#[async_trait]
impl ViolationStore for MemoryStore {
    async fn record(&self, verdict: &Verdict) -> Result<Recorded, StoreError> {
        Ok(record_locked(&mut self.lock(), verdict))
    }

    async fn record_all(&self, verdicts: &[Verdict]) -> Result<Vec<Recorded>, StoreError> {
        let mut inner = self.lock();
        Ok(verdicts
            .iter()
            .map(|verdict| record_locked(&mut inner, verdict))
            .collect())
    }

    async fn seen_among(
        &self,
        events: &[(Platform, String)],
    ) -> Result<std::collections::HashSet<(Platform, String)>, StoreError> {
        let inner = self.lock();
        Ok(events
            .iter()
            .filter(|key| inner.events.contains_key(*key))
            .cloned()
            .collect())
    }

    async fn seen(&self, platform: Platform, event: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .events
            .contains_key(&(platform, event.to_owned())))
    }

    async fn verdict(&self, platform: Platform, id: &str) -> Result<Option<Verdict>, StoreError> {
        let inner = self.lock();
        if let Some((_, verdict)) = inner.events.get(&(platform, id.to_owned())) {
            return Ok(Some(verdict.clone()));
        }
        Ok(inner
            .events
            .values()
            .map(|(_, v)| v)
            .find(|v| {
                v.platform == platform && v.message.as_ref().is_some_and(|m| m.as_str() == id)
            })
            .cloned())
    }

    async fn claim_actions(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxAction>, StoreError> {
        let mut inner = self.lock();
        let mut claimed = Vec::new();
        for slot in inner.outbox.iter_mut() {
            if claimed.len() as u32 >= limit {
                break;
            }
            let due = slot.due <= now.millis() && slot.lease_until < now.millis();
            if slot.action.state == ActionState::Pending && due {
                slot.lease_until = lease_until.millis();
                slot.action.attempts += 1;
                claimed.push(slot.action.clone());
            }
        }
        Ok(claimed)
    }

    async fn finish_actions(
        &self,
        results: &[(ActionId, ActionResult)],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut inner = self.lock();
        Ok(results
            .iter()
            .map(|(id, result)| finish_locked(&mut inner, *id, result.clone()))
            .collect())
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        let inner = self.lock();
        Ok(inner
            .outbox
            .iter()
            .filter(|s| s.action.state == ActionState::Pending)
            .count() as u64)
    }

    async fn violations(&self, query: &ViolationQuery) -> Result<Vec<StoredViolation>, StoreError> {
        let inner = self.lock();
        let matches = |record: &ViolationRecord| {
            query
                .group
                .as_ref()
                .is_none_or(|g| g.platform == record.platform && g.id == record.group)
                && query
                    .member
                    .as_ref()
                    .is_none_or(|m| m.platform == record.platform && m.id == record.member)
                && query.rule.as_ref().is_none_or(|r| r == &record.rule)
                && query.from.is_none_or(|t| record.at >= t)
                && query.to.is_none_or(|t| record.at < t)
        };
        Ok(inner
            .violations
            .iter()
            .rev()
            .filter(|(id, record)| query.before_id.is_none_or(|b| *id < b) && matches(record))
            .take(query.page_size() as usize)
            .map(|(id, record)| StoredViolation {
                id: *id,
                record: record.clone(),
                outcomes: outcomes_of(&inner.outbox, *id, record),
            })
            .collect())
    }

    async fn day_stats(
        &self,
        group: Option<&GroupRef>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<DayStats>, StoreError> {
        let inner = self.lock();
        // Keyed by the platform's name, so groups sort as the SQL stores sort them.
        let mut days: BTreeMap<(i64, &str, String), (Platform, u64, BTreeMap<String, bool>)> =
            BTreeMap::new();
        for (_, r) in &inner.violations {
            let in_group = group.is_none_or(|g| g.platform == r.platform && g.id == r.group);
            if !in_group || r.at < from || r.at >= to {
                continue;
            }
            let day = r.at.millis().div_euclid(DAY_MS);
            let entry = days
                .entry((day, r.platform.as_str(), r.group.to_string()))
                .or_insert_with(|| (r.platform, 0, BTreeMap::new()));
            entry.1 += 1;
            let new = joined_recently(r);
            let seen = entry.2.entry(r.member.to_string()).or_insert(false);
            *seen |= new;
        }
        Ok(days
            .into_iter()
            .map(
                |((day, _, group), (platform, violations, members))| DayStats {
                    day,
                    group: GroupRef::new(platform, group.as_str()),
                    violations,
                    violators: members.len() as u64,
                    new_violators: members.values().filter(|&&new| new).count() as u64,
                },
            )
            .collect())
    }

    async fn top_checks(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<(CheckKind, u64)>, StoreError> {
        let inner = self.lock();
        let mut counts: BTreeMap<CheckKind, u64> = BTreeMap::new();
        for (_, r) in &inner.violations {
            if r.at >= from && r.at < to {
                *counts.entry(r.check).or_default() += 1;
            }
        }
        let mut top: Vec<(CheckKind, u64)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
        top.truncate(limit as usize);
        Ok(top)
    }

    async fn ladder_history(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(MemberRef, RuleId, Timestamp)>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .violations
            .iter()
            .filter(|(_, r)| r.at >= since)
            .map(|(_, r)| {
                (
                    MemberRef::new(r.platform, r.member.clone()),
                    r.rule.clone(),
                    r.at,
                )
            })
            .collect())
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let len = inner.events.len();
        inner.events.retain(|_, (at, _)| *at >= before.millis());
        Ok((len - inner.events.len()) as u64)
    }
}

fn finish_locked(inner: &mut Inner, id: ActionId, result: ActionResult) -> Result<(), StoreError> {
    let slot = inner
        .outbox
        .iter_mut()
        .find(|s| s.action.id == id)
        .ok_or_else(|| StoreError::not_found("action", id))?;
    if slot.action.state != ActionState::Pending {
        return Err(StoreError::Refused(format!(
            "action {id} is already finished"
        )));
    }
    slot.lease_until = i64::MIN;
    match result {
        ActionResult::Done => slot.action.state = ActionState::Done,
        ActionResult::Retry { at, .. } => slot.due = at.millis(),
        ActionResult::Failed { error } => slot.action.state = ActionState::Failed { error },
        ActionResult::Replaced { note } => slot.action.state = ActionState::Replaced { note },
    }
    Ok(())
}

/// Whether the member had joined less than 24 hours before the violation.
fn joined_recently(record: &ViolationRecord) -> bool {
    record
        .member_joined_at
        .is_some_and(|j| record.at.millis() - j.millis() < DAY_MS && j <= record.at)
}

/// Each action of a violation with its state: outbox states for enforce actions, `Shadow`
/// for the rest.
fn outcomes_of(
    outbox: &[Slot],
    id: ViolationId,
    record: &ViolationRecord,
) -> Vec<(crate::verdict::Action, ActionState)> {
    if record.mode == crate::rule::Mode::Shadow {
        return record
            .actions
            .iter()
            .map(|a| (a.clone(), ActionState::Shadow))
            .collect();
    }
    outbox
        .iter()
        .filter(|s| s.action.violation == id)
        .map(|s| (s.action.action.clone(), s.action.state.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    crate::store_conformance_tests!(async { super::MemoryStore::new() });
}
