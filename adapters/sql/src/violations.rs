//! Violations, the action outbox and processed event ids.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use groupguard_core::model::{GroupRef, MemberRef, MessageId, Platform, RuleId};
use groupguard_core::platform::IdempotencyKey;
use groupguard_core::ports::{
    ActionId, ActionResult, ActionState, DAY_MS, DayStats, OutboxAction, Recorded, StoreError,
    StoredViolation, ViolationQuery, ViolationStore,
};
use groupguard_core::rule::Mode;
use groupguard_core::time::Timestamp;
use groupguard_core::verdict::{Action, CheckKind, PlannedAction, Verdict, ViolationRecord};
use sqlx::any::AnyRow;

use crate::{
    Backend, SqlStore, Statement, Value, col, db, from_json, parse, platform_ref, runs, to_json,
};

const VIOLATION_COLUMNS: &str = "id, event_id, at, platform, group_id, member, member_name, \
                                 member_joined_at, rule_id, check_kind, evidence, excerpt, mode, actions";
/// Rows per multi-row statement of up to five parameters a row (SQLite binds at most 32,766).
const ROWS: usize = 512;

const OUTBOX_COLUMNS: &str = "id, violation_id, rule_id, platform, group_id, member, message_id, \
                              action, idem_key, state, detail, attempts";

fn violation_from_row(row: &AnyRow) -> Result<(i64, ViolationRecord), StoreError> {
    let record = ViolationRecord {
        event: col::<String>(row, "event_id")?.into(),
        at: Timestamp(col(row, "at")?),
        platform: parse(&col::<String>(row, "platform")?)?,
        group: col::<String>(row, "group_id")?.into(),
        member: col::<String>(row, "member")?.into(),
        member_name: col(row, "member_name")?,
        member_joined_at: col::<Option<i64>>(row, "member_joined_at")?.map(Timestamp),
        rule: col::<String>(row, "rule_id")?.into(),
        check: parse(&col::<String>(row, "check_kind")?)?,
        evidence: from_json(&col::<String>(row, "evidence")?)?,
        excerpt: col(row, "excerpt")?,
        actions: from_json(&col::<String>(row, "actions")?)?,
        mode: parse(&col::<String>(row, "mode")?)?,
    };
    Ok((col(row, "id")?, record))
}

/// An action's state from its stored name and detail; a name that is no state's is corrupt.
fn state_from(state: &str, detail: Option<String>) -> Result<ActionState, StoreError> {
    ActionState::from_stored(state, detail).ok_or_else(|| {
        StoreError::backend(std::io::Error::other(format!(
            "corrupt stored action state `{state}`"
        )))
    })
}

/// An outbox row with its violation's record from `records`.
fn outbox_from_row(
    row: &AnyRow,
    records: &HashMap<i64, ViolationRecord>,
) -> Result<OutboxAction, StoreError> {
    let violation = col(row, "violation_id")?;
    let record = records.get(&violation).cloned().ok_or_else(|| {
        StoreError::backend(std::io::Error::other(format!(
            "corrupt outbox: violation {violation} is missing"
        )))
    })?;
    Ok(OutboxAction {
        id: col(row, "id")?,
        violation,
        record,
        rule: col::<String>(row, "rule_id")?.into(),
        platform: parse(&col::<String>(row, "platform")?)?,
        group: col::<String>(row, "group_id")?.into(),
        member: col::<String>(row, "member")?.into(),
        message: col::<Option<String>>(row, "message_id")?.map(MessageId::from),
        action: from_json(&col::<String>(row, "action")?)?,
        key: IdempotencyKey::from_stored(col::<String>(row, "idem_key")?),
        state: state_from(&col::<String>(row, "state")?, col(row, "detail")?)?,
        attempts: col::<i64>(row, "attempts")? as u32,
    })
}

#[async_trait]
impl ViolationStore for SqlStore {
    async fn record(&self, verdict: &Verdict) -> Result<Recorded, StoreError> {
        let mut recorded = self.record_all(std::slice::from_ref(verdict)).await?;
        Ok(recorded.remove(0))
    }

    async fn record_all(&self, verdicts: &[Verdict]) -> Result<Vec<Recorded>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        let recorded = record_batch(&mut tx, self.backend, verdicts).await?;
        tx.commit().await.map_err(db)?;
        Ok(recorded)
    }

    async fn seen_among(
        &self,
        events: &[(Platform, String)],
    ) -> Result<HashSet<(Platform, String)>, StoreError> {
        let mut connection = self.pool.acquire().await.map_err(db)?;
        stored_among(&mut connection, self.backend, events).await
    }

    async fn seen(&self, platform: Platform, event: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS found FROM processed_events WHERE platform = $1 AND event_id = $2",
        )
        .bind(platform.as_str())
        .bind(event.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(row.is_some())
    }

    async fn verdict(&self, platform: Platform, id: &str) -> Result<Option<Verdict>, StoreError> {
        let row = sqlx::query(
            "SELECT verdict FROM processed_events WHERE platform = $1 AND (event_id = $2 OR message_id = $2) \
             AND verdict IS NOT NULL ORDER BY at DESC LIMIT 1",
        )
        .bind(platform.as_str())
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(|row| from_json(&col::<String>(&row, "verdict")?))
            .transpose()
    }

    async fn claim_actions(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<OutboxAction>, StoreError> {
        // PostgreSQL: concurrent claimers skip each other's rows. SQLite has one writer.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET lease_until = $1, attempts = attempts + 1 WHERE id IN \
             (SELECT id FROM outbox WHERE state = 'pending' AND due_at <= $2 AND lease_until < $2 \
             ORDER BY id LIMIT $3{lock}) RETURNING {OUTBOX_COLUMNS}"
        );
        let mut tx = self.writer.begin().await.map_err(db)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_until.millis())
            .bind(now.millis())
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        // The violations behind them, each read once.
        let wanted: Vec<i64> = rows
            .iter()
            .map(|row| col::<i64>(row, "violation_id"))
            .collect::<Result<HashSet<_>, _>>()?
            .into_iter()
            .collect();
        let mut records = HashMap::with_capacity(wanted.len());
        for chunk in runs(&wanted, ROWS) {
            let mut select = Statement::new(
                self.backend,
                &format!("SELECT {VIOLATION_COLUMNS} FROM violations WHERE id IN "),
            );
            select.tuple(chunk.iter().map(|id| Value::from(*id)));
            for row in select.query().fetch_all(&mut *tx).await.map_err(db)? {
                let (id, record) = violation_from_row(&row)?;
                records.insert(id, record);
            }
        }
        tx.commit().await.map_err(db)?;
        let mut claimed = rows
            .iter()
            .map(|row| outbox_from_row(row, &records))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|a| a.id);
        Ok(claimed)
    }

    async fn finish_actions(
        &self,
        results: &[(ActionId, ActionResult)],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        // Most attempts succeed: those are marked done in one statement per chunk.
        let mut done_now = HashSet::new();
        let done: Vec<ActionId> = results
            .iter()
            .filter(|(_, r)| *r == ActionResult::Done)
            .map(|(id, _)| *id)
            .collect();
        for chunk in runs(&done, ROWS) {
            let mut statement = Statement::new(
                self.backend,
                "UPDATE outbox SET state = 'done', detail = NULL, lease_until = ",
            );
            statement
                .bind(i64::MIN)
                .push(" WHERE state = 'pending' AND id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    statement.push(", ");
                }
                statement.bind(*id);
            }
            statement.push(") RETURNING id");
            for row in statement.query().fetch_all(&mut *tx).await.map_err(db)? {
                done_now.insert(col::<i64>(&row, "id")?);
            }
        }
        let mut finished = Vec::with_capacity(results.len());
        for (id, result) in results {
            finished.push(if done_now.remove(id) {
                Ok(())
            } else {
                finish_in(&mut tx, *id, result.clone()).await?
            });
        }
        tx.commit().await.map_err(db)?;
        Ok(finished)
    }

    async fn outbox_depth(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(col::<i64>(&row, "n")? as u64)
    }

    async fn violations(&self, query: &ViolationQuery) -> Result<Vec<StoredViolation>, StoreError> {
        let mut select = Statement::new(
            self.backend,
            &format!("SELECT {VIOLATION_COLUMNS} FROM violations WHERE 1 = 1"),
        );
        if let Some(g) = &query.group {
            select.push(" AND platform = ").bind(g.platform.as_str());
            select.push(" AND group_id = ").bind(g.id.to_string());
        }
        if let Some(m) = &query.member {
            select.push(" AND platform = ").bind(m.platform.as_str());
            select.push(" AND member = ").bind(m.id.to_string());
        }
        if let Some(r) = &query.rule {
            select.push(" AND rule_id = ").bind(r.to_string());
        }
        if let Some(t) = query.from {
            select.push(" AND at >= ").bind(t.millis());
        }
        if let Some(t) = query.to {
            select.push(" AND at < ").bind(t.millis());
        }
        if let Some(id) = query.before_id {
            select.push(" AND id < ").bind(id);
        }
        select
            .push(" ORDER BY id DESC LIMIT ")
            .bind(i64::from(query.page_size()));
        let rows = select.query().fetch_all(&self.pool).await.map_err(db)?;
        let found = rows
            .iter()
            .map(violation_from_row)
            .collect::<Result<Vec<_>, _>>()?;

        let mut outcomes: HashMap<i64, Vec<(Action, ActionState)>> = HashMap::new();
        let enforced: Vec<i64> = found
            .iter()
            .filter(|(_, r)| r.mode == Mode::Enforce)
            .map(|(id, _)| *id)
            .collect();
        if !enforced.is_empty() {
            let mut select = Statement::new(
                self.backend,
                "SELECT violation_id, action, state, detail FROM outbox WHERE violation_id IN ",
            );
            select.tuple(enforced.iter().map(|id| Value::from(*id)));
            select.push(" ORDER BY id");
            for row in select.query().fetch_all(&self.pool).await.map_err(db)? {
                outcomes
                    .entry(col(&row, "violation_id")?)
                    .or_default()
                    .push((
                        from_json(&col::<String>(&row, "action")?)?,
                        state_from(&col::<String>(&row, "state")?, col(&row, "detail")?)?,
                    ));
            }
        }
        Ok(found
            .into_iter()
            .map(|(id, record)| {
                let outcomes = match record.mode {
                    Mode::Shadow => record
                        .actions
                        .iter()
                        .map(|a| (a.clone(), ActionState::Shadow))
                        .collect(),
                    Mode::Enforce => outcomes.remove(&id).unwrap_or_default(),
                };
                StoredViolation {
                    id,
                    record,
                    outcomes,
                }
            })
            .collect())
    }

    async fn day_stats(
        &self,
        group: Option<&GroupRef>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<DayStats>, StoreError> {
        let mut select = Statement::new(
            self.backend,
            &format!(
                "SELECT at / {DAY_MS} AS day_number, platform, group_id, COUNT(*) AS violations, \
             COUNT(DISTINCT member) AS violators, \
             COUNT(DISTINCT CASE WHEN member_joined_at IS NOT NULL AND member_joined_at <= at \
             AND at - member_joined_at < {DAY_MS} THEN member END) AS new_violators \
             FROM violations WHERE at >= "
            ),
        );
        select
            .bind(from.millis())
            .push(" AND at < ")
            .bind(to.millis());
        if let Some(g) = group {
            select.push(" AND platform = ").bind(g.platform.as_str());
            select.push(" AND group_id = ").bind(g.id.to_string());
        }
        select.push(&format!(
            " GROUP BY at / {DAY_MS}, platform, group_id ORDER BY day_number, platform, group_id"
        ));
        let rows = select.query().fetch_all(&self.pool).await.map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(DayStats {
                    day: col(row, "day_number")?,
                    group: platform_ref::<GroupRef>(row, "group_id")?,
                    violations: col::<i64>(row, "violations")? as u64,
                    violators: col::<i64>(row, "violators")? as u64,
                    new_violators: col::<i64>(row, "new_violators")? as u64,
                })
            })
            .collect()
    }

    async fn top_checks(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<(CheckKind, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT check_kind, COUNT(*) AS n FROM violations WHERE at >= $1 AND at < $2 \
             GROUP BY check_kind ORDER BY n DESC, check_kind LIMIT $3",
        )
        .bind(from.millis())
        .bind(to.millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok((
                    parse(&col::<String>(row, "check_kind")?)?,
                    col::<i64>(row, "n")? as u64,
                ))
            })
            .collect()
    }

    async fn ladder_history(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(MemberRef, RuleId, Timestamp)>, StoreError> {
        let rows = sqlx::query(
            "SELECT platform, member, rule_id, at FROM violations WHERE at >= $1 ORDER BY at, id",
        )
        .bind(since.millis())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok((
                    platform_ref::<MemberRef>(row, "member")?,
                    RuleId::from(col::<String>(row, "rule_id")?),
                    Timestamp(col(row, "at")?),
                ))
            })
            .collect()
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM processed_events WHERE at < $1")
            .bind(before.millis())
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

/// Records how an attempt ended inside `tx`; the inner error says why it was not.
async fn finish_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: ActionId,
    result: ActionResult,
) -> Result<Result<(), StoreError>, StoreError> {
    let (state, detail, due) = match result {
        ActionResult::Done => (ActionState::Done.name(), None, None),
        ActionResult::Retry { error, at } => {
            (ActionState::Pending.name(), Some(error), Some(at.millis()))
        }
        ActionResult::Failed { error } => ("failed", Some(error), None),
        ActionResult::Replaced { note } => ("replaced", Some(note), None),
    };
    let updated = sqlx::query(
        "UPDATE outbox SET state = $1, detail = $2, due_at = COALESCE($3, due_at), lease_until = $4 \
         WHERE id = $5 AND state = 'pending'",
    )
    .bind(state)
    .bind(detail)
    .bind(due)
    .bind(i64::MIN)
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    if updated.rows_affected() == 1 {
        return Ok(Ok(()));
    }
    let exists = sqlx::query("SELECT id FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db)?;
    Ok(Err(match exists {
        Some(_) => StoreError::Refused(format!("action {id} is already finished")),
        None => StoreError::not_found("action", id),
    }))
}

/// Which of `events` are recorded: a join against the list of keys, one primary-key lookup
/// each. PostgreSQL plans it for the keys at hand every time (an unnamed statement): a
/// prepared statement moves to one generic plan after five runs, and one made while the
/// table was nearly empty scans all of it once it has grown (and `event_id IN (…)` is
/// planned as such a scan while the table has no statistics).
async fn stored_among(
    connection: &mut sqlx::AnyConnection,
    backend: Backend,
    events: &[(Platform, String)],
) -> Result<HashSet<(Platform, String)>, StoreError> {
    let mut seen = HashSet::new();
    // Bound the statement's parameters (SQLite allows 32,766; PostgreSQL 65,535).
    for chunk in runs(events, ROWS) {
        let mut statement = Statement::new(
            backend,
            "SELECT platform, event_id FROM processed_events WHERE (platform, event_id) IN (VALUES ",
        );
        event_keys(&mut statement, chunk);
        statement.push(")");
        for row in statement
            .query()
            .persistent(backend == Backend::Sqlite)
            .fetch_all(&mut *connection)
            .await
            .map_err(db)?
        {
            let platform: String = col(&row, "platform")?;
            if let Ok(platform) = platform.parse::<Platform>() {
                seen.insert((platform, col(&row, "event_id")?));
            }
        }
    }
    Ok(seen)
}

/// Appends `(platform, event_id), …` for `keys`.
fn event_keys(statement: &mut Statement, keys: &[(Platform, String)]) {
    for (i, (platform, event)) in keys.iter().enumerate() {
        if i > 0 {
            statement.push(", ");
        }
        statement.tuple([
            Value::from(platform.as_str().to_owned()),
            Value::from(event.clone()),
        ]);
    }
}

/// Verdicts written inside `tx`: their processed events in a few multi-row statements, then
/// the violations and enforce actions of the new ones (those not recorded before).
async fn record_batch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    verdicts: &[Verdict],
) -> Result<Vec<Recorded>, StoreError> {
    let mut inserted = HashSet::new();
    // Five parameters a row.
    for chunk in runs(verdicts, ROWS) {
        let keys: Vec<(Platform, String)> = chunk
            .iter()
            .map(|v| (v.platform, v.event.to_string()))
            .collect();
        // SQLite: this transaction is the only writer, so the events not stored before are
        // those not found now; reading them back from the insert would cost a hand-off
        // between threads per row. PostgreSQL: another instance may be inserting the same
        // events, so the insert itself says which rows it wrote.
        let before = match backend {
            Backend::Sqlite => stored_among(tx, backend, &keys).await?,
            Backend::Postgres => HashSet::new(),
        };
        let mut statement = Statement::new(
            backend,
            "INSERT INTO processed_events (platform, event_id, at, message_id, verdict) VALUES ",
        );
        for (i, verdict) in chunk.iter().enumerate() {
            if i > 0 {
                statement.push(", ");
            }
            statement.tuple([
                Value::from(verdict.platform.as_str().to_owned()),
                Value::from(verdict.event.to_string()),
                Value::from(verdict.at.millis()),
                // Only a message id that differs from its event's is indexed.
                Value::from(
                    verdict
                        .message
                        .as_ref()
                        .filter(|m| m.as_str() != verdict.event.as_str())
                        .map(ToString::to_string),
                ),
                Value::from(to_json(verdict)?),
            ]);
        }
        statement.push(" ON CONFLICT (platform, event_id) DO NOTHING");
        match backend {
            Backend::Sqlite => {
                statement.query().execute(&mut **tx).await.map_err(db)?;
                inserted.extend(keys.into_iter().filter(|key| !before.contains(key)));
            }
            Backend::Postgres => {
                statement.push(" RETURNING platform, event_id");
                for row in statement.query().fetch_all(&mut **tx).await.map_err(db)? {
                    let platform: String = col(&row, "platform")?;
                    if let Ok(platform) = platform.parse::<Platform>() {
                        inserted.insert((platform, col(&row, "event_id")?));
                    }
                }
            }
        }
    }
    // The first of repeats in the batch is the one inserted.
    let new: Vec<Option<&Verdict>> = verdicts
        .iter()
        .map(|v| {
            inserted
                .remove(&(v.platform, v.event.to_string()))
                .then_some(v)
        })
        .collect();
    let mut violation_ids = insert_violations(tx, backend, new.iter().flatten().copied()).await?;
    // Each new verdict's outbox rows, keys hashed once.
    let planned: Vec<Vec<ActionRow>> = new
        .iter()
        .map(|verdict| {
            verdict.map_or_else(Vec::new, |v| enforce_actions(v, &violation_ids).collect())
        })
        .collect();
    let rows: Vec<&ActionRow> = planned.iter().flatten().collect();
    let mut action_ids = insert_actions(tx, backend, &rows).await?;
    Ok(new
        .iter()
        .zip(&planned)
        .map(|(verdict, rows)| match verdict {
            None => Recorded::Duplicate,
            Some(verdict) => {
                let actions = rows
                    .iter()
                    .filter_map(|row| action_ids.remove(&(row.platform.clone(), row.key.clone())))
                    .collect();
                let violations = verdict
                    .violations
                    .iter()
                    .filter_map(|r| violation_ids.remove(&violation_key(verdict, &r.rule)))
                    .collect();
                Recorded::New {
                    violations,
                    actions,
                }
            }
        })
        .collect())
}

/// A violation row's key: its platform, event and rule (a rule matches an event once).
type ViolationKey = (String, String, String);

fn violation_key(verdict: &Verdict, rule: &RuleId) -> ViolationKey {
    (
        verdict.platform.as_str().to_owned(),
        verdict.event.to_string(),
        rule.to_string(),
    )
}

/// Rows per multi-row INSERT of violations and actions (13 and 10 parameters a row).
const RECORD_ROWS: usize = 256;

/// Inserts the violation records of `verdicts`; their ids by platform, event and rule.
async fn insert_violations<'v>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    verdicts: impl Iterator<Item = &'v Verdict>,
) -> Result<HashMap<ViolationKey, i64>, StoreError> {
    let records: Vec<&ViolationRecord> = verdicts.flat_map(|v| &v.violations).collect();
    let mut ids = HashMap::with_capacity(records.len());
    for chunk in runs(&records, RECORD_ROWS) {
        let mut statement = Statement::new(
            backend,
            "INSERT INTO violations (event_id, at, platform, group_id, member, member_name, \
             member_joined_at, rule_id, check_kind, evidence, excerpt, mode, actions) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                statement.push(", ");
            }
            statement.tuple([
                Value::from(r.event.to_string()),
                Value::from(r.at.millis()),
                Value::from(r.platform.as_str()),
                Value::from(r.group.to_string()),
                Value::from(r.member.to_string()),
                Value::from(r.member_name.clone()),
                Value::from(r.member_joined_at.map(Timestamp::millis)),
                Value::from(r.rule.to_string()),
                Value::from(r.check.as_str()),
                Value::from(to_json(&r.evidence)?),
                Value::from(r.excerpt.clone()),
                Value::from(r.mode.as_str()),
                Value::from(to_json(&r.actions)?),
            ]);
        }
        statement.push(" RETURNING id, platform, event_id, rule_id");
        for row in statement.query().fetch_all(&mut **tx).await.map_err(db)? {
            let key = (
                col(&row, "platform")?,
                col(&row, "event_id")?,
                col(&row, "rule_id")?,
            );
            ids.insert(key, col(&row, "id")?);
        }
    }
    Ok(ids)
}

/// An enforce action of a new verdict, as its outbox row.
struct ActionRow<'v> {
    violation: i64,
    verdict: &'v Verdict,
    planned: &'v PlannedAction,
    platform: String,
    key: String,
}

/// The enforce actions of `verdict` whose rule's violation is in `violations`, with their
/// idempotency keys: the planned action's own, else [`IdempotencyKey::for_action`] of its
/// place in the verdict.
fn enforce_actions<'v>(
    verdict: &'v Verdict,
    violations: &HashMap<ViolationKey, i64>,
) -> impl Iterator<Item = ActionRow<'v>> {
    verdict
        .actions
        .iter()
        .enumerate()
        .filter(|(_, planned)| planned.mode == Mode::Enforce)
        .filter_map(move |(index, planned)| {
            let violation = *violations.get(&violation_key(verdict, &planned.rule))?;
            let key = planned.key.clone().unwrap_or_else(|| {
                IdempotencyKey::for_action(verdict.platform, &verdict.event, index)
            });
            Some(ActionRow {
                violation,
                verdict,
                planned,
                platform: planned.platform.as_str().to_owned(),
                key: key.as_str().to_owned(),
            })
        })
}

/// Queues `rows` in the outbox; the ids of those queued, by platform and key (a key in the
/// outbox already is not queued again).
async fn insert_actions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    rows: &[&ActionRow<'_>],
) -> Result<HashMap<(String, String), i64>, StoreError> {
    let mut ids = HashMap::with_capacity(rows.len());
    for chunk in runs(rows, RECORD_ROWS) {
        let mut statement = Statement::new(
            backend,
            "INSERT INTO outbox (violation_id, rule_id, platform, group_id, member, message_id, \
             action, idem_key, state, attempts, due_at, lease_until) VALUES ",
        );
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                statement.push(", ");
            }
            let planned = row.planned;
            statement.push("(");
            for value in [
                Value::from(row.violation),
                Value::from(planned.rule.to_string()),
                Value::from(row.platform.clone()),
                Value::from(planned.group.to_string()),
                Value::from(planned.member.to_string()),
                Value::from(row.verdict.message.as_ref().map(ToString::to_string)),
                Value::from(to_json(&planned.action)?),
                Value::from(row.key.clone()),
            ] {
                statement.bind(value).push(", ");
            }
            statement.push("'pending', 0, ");
            statement.bind(row.verdict.at.millis()).push(", ");
            statement.bind(i64::MIN).push(")");
        }
        statement
            .push(" ON CONFLICT (platform, idem_key) DO NOTHING RETURNING id, platform, idem_key");
        for row in statement.query().fetch_all(&mut **tx).await.map_err(db)? {
            ids.insert(
                (col(&row, "platform")?, col(&row, "idem_key")?),
                col(&row, "id")?,
            );
        }
    }
    Ok(ids)
}
