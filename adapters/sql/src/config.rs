//! Rules, groups, settings, whitelist and the audit log.

use std::collections::HashMap;

use async_trait::async_trait;
use groupguard_core::model::{GroupRef, MemberRef, OrgId, RuleId, UserId};
use groupguard_core::ports::{
    AuditEntry, AuditId, AuditStore, Change, ConfigStore, Edit, RuleVersion, StoreError,
};
use groupguard_core::rule::{GroupConfig, Rule, RuleSet, Settings, WhitelistEntry};
use groupguard_core::time::Timestamp;
use sqlx::AnyConnection;

use crate::chunks;
use crate::lists::{add_blacklist_tx, remove_blacklist_tx, upsert_blacklist};
use crate::{
    Backend, CHUNK, SqlStore, Statement, Value, audit, audit_entry, col, db, from_json, parse,
    platform_ref, to_json,
};

async fn settings_tx(conn: &mut AnyConnection) -> Result<Settings, StoreError> {
    let row = sqlx::query("SELECT body FROM settings WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    match row {
        Some(row) => from_json(&col::<String>(&row, "body")?),
        None => Ok(Settings::default()),
    }
}

async fn put_settings_tx(
    conn: &mut AnyConnection,
    settings: Settings,
    edit: &Edit,
) -> Result<AuditId, StoreError> {
    let before = settings_tx(conn).await?;
    write_settings(conn, &settings).await?;
    audit(
        conn,
        edit,
        &Change::Settings {
            before,
            after: settings,
        },
    )
    .await
}

async fn write_settings(conn: &mut AnyConnection, settings: &Settings) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO settings (id, body) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET body = excluded.body")
        .bind(to_json(settings)?)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(())
}

/// A rule's explicit groups live in `rule_groups`, so its body is stored without them.
async fn rule_body(conn: &mut AnyConnection, rule: &Rule) -> Result<String, StoreError> {
    let mut body = rule.clone();
    body.scope.groups = Vec::new();
    chunks::to_stored_json(conn, &body).await
}

async fn load_rule(conn: &mut AnyConnection, id: &RuleId) -> Result<Option<Rule>, StoreError> {
    let Some(row) = sqlx::query("SELECT body FROM rules WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    let mut rule: Rule = chunks::from_stored_json(conn, &col::<String>(&row, "body")?).await?;
    let rows = sqlx::query(
        "SELECT platform, group_id FROM rule_groups WHERE rule_id = $1 ORDER BY position",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    for row in rows {
        rule.scope
            .groups
            .push(platform_ref::<GroupRef>(&row, "group_id")?);
    }
    Ok(Some(rule))
}

async fn insert_rule_groups(conn: &mut AnyConnection, rule: &Rule) -> Result<(), StoreError> {
    let id = rule.id.to_string();
    for (c, chunk) in rule.scope.groups.chunks(CHUNK).enumerate() {
        let mut insert = Statement::new(
            Backend::of(conn),
            "INSERT INTO rule_groups (rule_id, position, platform, group_id) VALUES ",
        );
        for (i, group) in chunk.iter().enumerate() {
            if i > 0 {
                insert.push(", ");
            }
            insert.tuple([
                Value::from(id.clone()),
                Value::from((c * CHUNK + i) as i64),
                Value::from(group.platform.as_str()),
                Value::from(group.id.to_string()),
            ]);
        }
        insert.query().execute(&mut *conn).await.map_err(db)?;
    }
    Ok(())
}

/// Saves a rule and its new version; returns the version number.
async fn save_rule(
    conn: &mut AnyConnection,
    rule: &Rule,
    exists: bool,
    edit: &Edit,
) -> Result<u64, StoreError> {
    let id = rule.id.to_string();
    let row = sqlx::query(
        "SELECT COALESCE(MAX(version), 0) + 1 AS next FROM rule_versions WHERE rule_id = $1",
    )
    .bind(id.clone())
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let version: i64 = col(&row, "next")?;
    if exists {
        sqlx::query("UPDATE rules SET version = $2, body = $3 WHERE id = $1")
            .bind(id.clone())
            .bind(version)
            .bind(rule_body(conn, rule).await?)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM rule_groups WHERE rule_id = $1")
            .bind(id.clone())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    } else {
        sqlx::query(
            "INSERT INTO rules (id, position, version, body) \
             VALUES ($1, (SELECT COALESCE(MAX(position), 0) + 1 FROM rules), $2, $3)",
        )
        .bind(id.clone())
        .bind(version)
        .bind(rule_body(conn, rule).await?)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    insert_rule_groups(conn, rule).await?;
    sqlx::query("INSERT INTO rule_versions (rule_id, version, at, by_source, body) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(version)
        .bind(edit.at.millis())
        .bind(edit.by.to_string())
        .bind(chunks::to_stored_json(conn, rule).await?)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    Ok(version as u64)
}

/// Saves a rule; returns its version and the audit entry.
async fn put_rule_tx(
    conn: &mut AnyConnection,
    rule: Rule,
    edit: &Edit,
) -> Result<(u64, AuditId), StoreError> {
    let before = load_rule(conn, &rule.id).await?;
    let version = save_rule(conn, &rule, before.is_some(), edit).await?;
    let change = Change::Rule {
        id: rule.id.clone(),
        before: before.map(Box::new),
        after: Some(Box::new(rule)),
    };
    Ok((version, audit(conn, edit, &change).await?))
}

async fn delete_rule_tx(
    conn: &mut AnyConnection,
    id: &RuleId,
    edit: &Edit,
) -> Result<AuditId, StoreError> {
    let before = load_rule(conn, id)
        .await?
        .ok_or_else(|| StoreError::not_found("rule", id))?;
    for statement in [
        "DELETE FROM rule_groups WHERE rule_id = $1",
        "DELETE FROM rules WHERE id = $1",
    ] {
        sqlx::query(statement)
            .bind(id.to_string())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    let change = Change::Rule {
        id: id.clone(),
        before: Some(Box::new(before)),
        after: None,
    };
    audit(conn, edit, &change).await
}

/// A group's row as the configuration query writes it in JSON.
#[derive(serde::Deserialize)]
struct StoredGroup(
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
);

impl StoredGroup {
    fn into_config(self) -> Result<GroupConfig, StoreError> {
        let StoredGroup(platform, id, name, tags, home_org, owner, admins, notices, native) = self;
        Ok(GroupConfig {
            id: GroupRef::new(parse(&platform)?, id),
            name,
            tags: from_json(&tags)?,
            home_org: home_org.map(OrgId::from),
            owner: owner.map(UserId::from),
            admins: from_json(&admins)?,
            notices,
            native_filter: native != 0,
        })
    }
}

fn group_from_row(row: &sqlx::any::AnyRow) -> Result<GroupConfig, StoreError> {
    Ok(GroupConfig {
        id: platform_ref::<GroupRef>(row, "id")?,
        name: col(row, "name")?,
        tags: from_json(&col::<String>(row, "tags")?)?,
        home_org: col::<Option<String>>(row, "home_org")?.map(OrgId::from),
        owner: col::<Option<String>>(row, "owner")?.map(UserId::from),
        admins: from_json(&col::<String>(row, "admins")?)?,
        notices: col(row, "notices")?,
        native_filter: col::<i64>(row, "native_filter")? != 0,
    })
}

async fn load_group(
    conn: &mut AnyConnection,
    id: &GroupRef,
) -> Result<Option<GroupConfig>, StoreError> {
    let row = sqlx::query("SELECT platform, id, name, tags, home_org, owner, admins, notices, native_filter FROM groups WHERE platform = $1 AND id = $2")
        .bind(id.platform.as_str())
        .bind(id.id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    row.as_ref().map(group_from_row).transpose()
}

async fn write_group(conn: &mut AnyConnection, group: &GroupConfig) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO groups (platform, id, name, tags, home_org, owner, admins, notices, native_filter) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (platform, id) DO UPDATE SET name = excluded.name, tags = excluded.tags, \
         home_org = excluded.home_org, owner = excluded.owner, admins = excluded.admins, \
         notices = excluded.notices, native_filter = excluded.native_filter",
    )
    .bind(group.id.platform.as_str())
    .bind(group.id.id.to_string())
    .bind(group.name.clone())
    .bind(to_json(&group.tags)?)
    .bind(group.home_org.as_ref().map(ToString::to_string))
    .bind(group.owner.as_ref().map(ToString::to_string))
    .bind(to_json(&group.admins)?)
    .bind(group.notices.clone())
    .bind(i64::from(group.native_filter))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn put_group_tx(
    conn: &mut AnyConnection,
    group: GroupConfig,
    edit: &Edit,
) -> Result<AuditId, StoreError> {
    let before = load_group(conn, &group.id).await?;
    write_group(conn, &group).await?;
    let change = Change::Group {
        id: group.id.clone(),
        before,
        after: Some(group),
    };
    audit(conn, edit, &change).await
}

async fn delete_group_tx(
    conn: &mut AnyConnection,
    id: &GroupRef,
    edit: &Edit,
) -> Result<AuditId, StoreError> {
    let before = load_group(conn, id)
        .await?
        .ok_or_else(|| StoreError::not_found("group", id))?;
    sqlx::query("DELETE FROM groups WHERE platform = $1 AND id = $2")
        .bind(id.platform.as_str())
        .bind(id.id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let change = Change::Group {
        id: id.clone(),
        before: Some(before),
        after: None,
    };
    audit(conn, edit, &change).await
}

fn whitelist_from_row(row: &sqlx::any::AnyRow) -> Result<WhitelistEntry, StoreError> {
    Ok(WhitelistEntry {
        member: platform_ref::<MemberRef>(row, "member")?,
        reason: col(row, "reason")?,
        rules: from_json(&col::<String>(row, "rules")?)?,
    })
}

async fn load_whitelist(
    conn: &mut AnyConnection,
    member: &MemberRef,
) -> Result<Option<WhitelistEntry>, StoreError> {
    let row = sqlx::query(
        "SELECT platform, member, reason, rules FROM whitelist WHERE platform = $1 AND member = $2",
    )
    .bind(member.platform.as_str())
    .bind(member.id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.as_ref().map(whitelist_from_row).transpose()
}

async fn write_whitelist(
    conn: &mut AnyConnection,
    entry: &WhitelistEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO whitelist (platform, member, reason, rules) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (platform, member) DO UPDATE SET reason = excluded.reason, rules = excluded.rules",
    )
    .bind(entry.member.platform.as_str())
    .bind(entry.member.id.to_string())
    .bind(entry.reason.clone())
    .bind(to_json(&entry.rules)?)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

async fn put_whitelist_tx(
    conn: &mut AnyConnection,
    entry: WhitelistEntry,
    edit: &Edit,
) -> Result<AuditId, StoreError> {
    let before = load_whitelist(conn, &entry.member).await?;
    write_whitelist(conn, &entry).await?;
    let change = Change::Whitelist {
        member: entry.member.clone(),
        before,
        after: Some(entry),
    };
    audit(conn, edit, &change).await
}

async fn remove_whitelist_tx(
    conn: &mut AnyConnection,
    member: &MemberRef,
    edit: &Edit,
) -> Result<AuditId, StoreError> {
    let before = load_whitelist(conn, member)
        .await?
        .ok_or_else(|| StoreError::not_found("whitelist entry", member))?;
    sqlx::query("DELETE FROM whitelist WHERE platform = $1 AND member = $2")
        .bind(member.platform.as_str())
        .bind(member.id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let change = Change::Whitelist {
        member: member.clone(),
        before: Some(before),
        after: None,
    };
    audit(conn, edit, &change).await
}

/// Applies a change (an undo) as a new audited edit; returns the new audit entry's id.
async fn apply(
    conn: &mut AnyConnection,
    change: Change,
    edit: &Edit,
) -> Result<AuditId, StoreError> {
    match change {
        Change::Settings { after, .. } => put_settings_tx(conn, after, edit).await,
        Change::Rule {
            after: Some(rule), ..
        } => Ok(put_rule_tx(conn, *rule, edit).await?.1),
        Change::Rule {
            id, after: None, ..
        } => delete_rule_tx(conn, &id, edit).await,
        Change::Group {
            after: Some(group), ..
        } => put_group_tx(conn, group, edit).await,
        Change::Group {
            id, after: None, ..
        } => delete_group_tx(conn, &id, edit).await,
        Change::Whitelist {
            after: Some(entry), ..
        } => put_whitelist_tx(conn, entry, edit).await,
        Change::Whitelist {
            member,
            after: None,
            ..
        } => remove_whitelist_tx(conn, &member, edit).await,
        Change::Blacklist {
            after: Some(entry), ..
        } => add_blacklist_tx(conn, entry, edit).await,
        Change::Blacklist {
            member,
            owner,
            after: None,
            ..
        } => remove_blacklist_tx(conn, &member, owner.as_ref(), edit).await,
        Change::BlacklistImport { .. } | Change::ConfigImport { .. } => Err(StoreError::Refused(
            "this change cannot be applied again".to_owned(),
        )),
    }
}

#[async_trait]
impl ConfigStore for SqlStore {
    async fn config(&self) -> Result<RuleSet, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let settings = settings_tx(&mut conn).await?;
        // Tens of thousands of groups and explicit scope entries come back as a few rows of
        // JSON: the database driver hands rows over one at a time, slowly.
        let (scopes, all_groups) = match self.backend {
            Backend::Sqlite => (
                "SELECT rule_id, json_group_array(json_array(platform, group_id) ORDER BY position) \
                 AS scope FROM rule_groups GROUP BY rule_id",
                "SELECT json_group_array(json_array(platform, id, name, tags, home_org, owner, \
                 admins, notices, native_filter) ORDER BY platform, id) AS list FROM groups",
            ),
            Backend::Postgres => (
                "SELECT rule_id, json_agg(json_build_array(platform, group_id) ORDER BY position)::text \
                 AS scope FROM rule_groups GROUP BY rule_id",
                "SELECT json_agg(json_build_array(platform, id, name, tags, home_org, owner, \
                 admins, notices, native_filter) ORDER BY platform, id)::text AS list FROM groups",
            ),
        };
        let mut groups_of: HashMap<String, Vec<GroupRef>> = HashMap::new();
        for row in sqlx::query(scopes)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
        {
            let scope: Vec<(String, String)> = from_json(&col::<String>(&row, "scope")?)?;
            let scope = scope
                .into_iter()
                .map(|(platform, id)| Ok(GroupRef::new(parse(&platform)?, id)))
                .collect::<Result<_, StoreError>>()?;
            groups_of.insert(col(&row, "rule_id")?, scope);
        }
        let mut rules = Vec::new();
        for row in sqlx::query("SELECT id, body FROM rules ORDER BY position")
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
        {
            let mut rule: Rule =
                chunks::from_stored_json(&mut conn, &col::<String>(&row, "body")?).await?;
            rule.scope.groups = groups_of
                .remove(&col::<String>(&row, "id")?)
                .unwrap_or_default();
            rules.push(rule);
        }
        let list = sqlx::query(all_groups)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        // PostgreSQL aggregates no rows into NULL.
        let groups: Vec<StoredGroup> = match col::<Option<String>>(&list, "list")? {
            Some(list) => from_json(&list)?,
            None => Vec::new(),
        };
        let groups = groups
            .into_iter()
            .map(StoredGroup::into_config)
            .collect::<Result<_, _>>()?;
        let whitelist = sqlx::query(
            "SELECT platform, member, reason, rules FROM whitelist ORDER BY platform, member",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?
        .iter()
        .map(whitelist_from_row)
        .collect::<Result<_, _>>()?;
        Ok(RuleSet {
            settings,
            groups,
            rules,
            blacklist: Vec::new(),
            whitelist,
        })
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT revision FROM config_revision WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(col::<i64>(&row, "revision")? as u64)
    }

    async fn put_settings(&self, settings: Settings, edit: &Edit) -> Result<(), StoreError> {
        let mut tx = self.begin_change().await?;
        put_settings_tx(&mut tx, settings, edit).await?;
        tx.commit().await.map_err(db)
    }

    async fn put_rule(&self, rule: Rule, edit: &Edit) -> Result<u64, StoreError> {
        let mut tx = self.begin_change().await?;
        let (version, _) = put_rule_tx(&mut tx, rule, edit).await?;
        tx.commit().await.map_err(db)?;
        Ok(version)
    }

    async fn delete_rule(&self, id: &RuleId, edit: &Edit) -> Result<(), StoreError> {
        let mut tx = self.begin_change().await?;
        delete_rule_tx(&mut tx, id, edit).await?;
        tx.commit().await.map_err(db)
    }

    async fn rule_versions(&self, id: &RuleId) -> Result<Vec<RuleVersion>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let rows = sqlx::query("SELECT version, at, by_source, body FROM rule_versions WHERE rule_id = $1 ORDER BY version")
            .bind(id.to_string())
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        let mut versions = Vec::with_capacity(rows.len());
        for row in &rows {
            versions.push(RuleVersion {
                version: col::<i64>(row, "version")? as u64,
                at: Timestamp(col(row, "at")?),
                by: parse(&col::<String>(row, "by_source")?)?,
                rule: chunks::from_stored_json(&mut conn, &col::<String>(row, "body")?).await?,
            });
        }
        Ok(versions)
    }

    async fn put_group(&self, group: GroupConfig, edit: &Edit) -> Result<(), StoreError> {
        let mut tx = self.begin_change().await?;
        put_group_tx(&mut tx, group, edit).await?;
        tx.commit().await.map_err(db)
    }

    async fn delete_group(&self, id: &GroupRef, edit: &Edit) -> Result<(), StoreError> {
        let mut tx = self.begin_change().await?;
        delete_group_tx(&mut tx, id, edit).await?;
        tx.commit().await.map_err(db)
    }

    async fn put_whitelist(&self, entry: WhitelistEntry, edit: &Edit) -> Result<(), StoreError> {
        let mut tx = self.begin_change().await?;
        put_whitelist_tx(&mut tx, entry, edit).await?;
        tx.commit().await.map_err(db)
    }

    async fn remove_whitelist(&self, member: &MemberRef, edit: &Edit) -> Result<(), StoreError> {
        let mut tx = self.begin_change().await?;
        remove_whitelist_tx(&mut tx, member, edit).await?;
        tx.commit().await.map_err(db)
    }

    async fn replace_config(&self, set: RuleSet, edit: &Edit) -> Result<(), StoreError> {
        let mut tx = self.begin_change().await?;
        for statement in [
            "DELETE FROM rule_groups",
            "DELETE FROM rules",
            "DELETE FROM groups",
            "DELETE FROM whitelist",
            "DELETE FROM settings",
        ] {
            sqlx::query(statement).execute(&mut *tx).await.map_err(db)?;
        }
        write_settings(&mut tx, &set.settings).await?;
        for group in &set.groups {
            write_group(&mut tx, group).await?;
        }
        for entry in &set.whitelist {
            write_whitelist(&mut tx, entry).await?;
        }
        for rule in &set.rules {
            save_rule(&mut tx, rule, false, edit).await?;
        }
        upsert_blacklist(&mut tx, &set.blacklist).await?;
        let change = Change::ConfigImport {
            rules: set.rules.len() as u64,
            groups: set.groups.len() as u64,
        };
        audit(&mut tx, edit, &change).await?;
        tx.commit().await.map_err(db)
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn audit_page(
        &self,
        before: Option<AuditId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let rows = sqlx::query(
            "SELECT id, at, by_source, change, undone_by FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            entries.push(audit_entry(&mut conn, row).await?);
        }
        Ok(entries)
    }

    async fn undo(&self, id: AuditId, edit: &Edit) -> Result<AuditEntry, StoreError> {
        let mut tx = self.begin_change().await?;
        let row =
            sqlx::query("SELECT id, at, by_source, change, undone_by FROM audit_log WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                .ok_or_else(|| StoreError::not_found("audit entry", id))?;
        let change = audit_entry(&mut tx, &row).await?.undo_plan(edit.at)?;
        let undo_id = apply(&mut tx, change, edit).await?;
        let row =
            sqlx::query("SELECT id, at, by_source, change, undone_by FROM audit_log WHERE id = $1")
                .bind(undo_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
        let undo = audit_entry(&mut tx, &row).await?;
        sqlx::query("UPDATE audit_log SET undone_by = $1 WHERE id = $2")
            .bind(undo.id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(undo)
    }
}
