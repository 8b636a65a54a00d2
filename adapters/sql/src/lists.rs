//! Blacklists.

use std::borrow::Cow;

use async_trait::async_trait;
use std::sync::Arc;

use groupguard_core::lists::{IndexedEntry, ListMeta};
use groupguard_core::model::{MemberRef, Platform, UserId};
use groupguard_core::ports::{AuditId, Change, Edit, ListStore, StoreError, split_offsets};
use groupguard_core::rule::{BlacklistEntry, Source};
use groupguard_core::time::Timestamp;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::{Backend, CHUNK, SqlStore, Statement, Value, audit, col, db, parse, platform_ref};

const COLUMNS: &str = "platform, member, owner, reason, source, created_at, expires_at";

/// A page of the blacklist as one JSON text: an array of entries, each an array built by
/// `$array`, aggregated by `$aggregate` in `$order` then cast by `$cast` (each differs
/// between SQLite and PostgreSQL).
macro_rules! page_query {
    ($aggregate:literal, $array:literal, $order:literal, $cast:literal) => {
        concat!(
            "SELECT ",
            $aggregate,
            "(",
            $array,
            "(platform, member, owner, reason, source, created_at, expires_at)",
            $order,
            ")",
            $cast,
            " AS page FROM \
             (SELECT platform, member, owner, reason, source, created_at, expires_at \
              FROM blacklist WHERE (platform, member, owner) > ($1, $2, $3) \
              ORDER BY platform, member, owner LIMIT $4) AS page"
        )
    };
}

/// What the index keeps of a page of one platform's entries, as one JSON text (see
/// [`page_query`]): no platform (the query names it) and no creation time, which cost the
/// database more to write than reading the rows.
macro_rules! index_page_query {
    ($aggregate:literal, $array:literal, $order:literal, $cast:literal) => {
        concat!(
            "SELECT ",
            $aggregate,
            "(",
            $array,
            "(member, owner, reason, source, expires_at)",
            $order,
            ")",
            $cast,
            " AS page FROM \
             (SELECT member, owner, reason, source, expires_at \
              FROM blacklist WHERE platform = $1 AND (member, owner) > ($2, $3) \
              ORDER BY member, owner LIMIT $4) AS page"
        )
    };
}

/// An entry as the index page query writes it.
#[derive(serde::Deserialize)]
struct IndexPageEntry<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    Option<i64>,
);

/// A blacklist entry as the page query writes it.
#[derive(serde::Deserialize)]
struct PageEntry<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    i64,
    Option<i64>,
);

fn entry_from_row(row: &AnyRow) -> Result<BlacklistEntry, StoreError> {
    let (member, owner) = key_from_row(row)?;
    Ok(BlacklistEntry {
        member,
        owner,
        reason: col(row, "reason")?,
        source: parse::<Source>(&col::<String>(row, "source")?)?,
        created_at: Timestamp(col(row, "created_at")?),
        expires_at: col::<Option<i64>>(row, "expires_at")?.map(Timestamp),
    })
}

/// An entry's key (member, owner) from its `platform`, `member` and `owner` columns.
fn key_from_row(row: &AnyRow) -> Result<(MemberRef, Option<UserId>), StoreError> {
    let owner: String = col(row, "owner")?;
    Ok((
        platform_ref(row, "member")?,
        (!owner.is_empty()).then(|| UserId::from(owner)),
    ))
}

/// The table's key order: platform as stored, member, owner ('' for none).
fn table_order(e: &BlacklistEntry) -> (&str, &str, &str) {
    let owner = e.owner.as_ref().map_or("", |o| o.as_str());
    (e.member.platform.as_str(), e.member.id.as_str(), owner)
}

fn index_order(e: &IndexedEntry) -> (&str, &str) {
    let owner = e.meta.owner.as_ref().map_or("", |o| o.as_str());
    (e.member.id.as_str(), owner)
}

fn owner_key(owner: Option<&UserId>) -> String {
    owner.map(ToString::to_string).unwrap_or_default()
}

/// Writes entries with multi-row upserts. The table's CHECK constraint rejects an entry that
/// expires before it was created; inside the caller's transaction that undoes everything.
pub(crate) async fn upsert_blacklist(
    conn: &mut AnyConnection,
    entries: &[BlacklistEntry],
) -> Result<(), StoreError> {
    for chunk in entries.chunks(CHUNK) {
        let mut insert = Statement::new(
            Backend::of(conn),
            &format!("INSERT INTO blacklist ({COLUMNS}) VALUES "),
        );
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                insert.push(", ");
            }
            insert.tuple([
                Value::from(e.member.platform.as_str()),
                Value::from(e.member.id.to_string()),
                Value::from(owner_key(e.owner.as_ref())),
                Value::from(e.reason.clone()),
                Value::from(e.source.to_string()),
                Value::from(e.created_at.millis()),
                Value::from(e.expires_at.map(Timestamp::millis)),
            ]);
        }
        insert.push(
            " ON CONFLICT (platform, member, owner) DO UPDATE SET reason = excluded.reason, \
             source = excluded.source, created_at = excluded.created_at, expires_at = excluded.expires_at",
        );
        insert.query().execute(&mut *conn).await.map_err(|e| {
            let expiry = e.as_database_error().is_some_and(|d| {
                d.message().contains("blacklist_expiry")
                    || d.constraint() == Some("blacklist_expiry")
            });
            if expiry {
                StoreError::Refused("a blacklist entry expires before it was created".to_owned())
            } else {
                db(e)
            }
        })?;
    }
    Ok(())
}

async fn load(
    conn: &mut AnyConnection,
    member: &MemberRef,
    owner: Option<&UserId>,
) -> Result<Option<BlacklistEntry>, StoreError> {
    let row = sqlx::query(
        "SELECT platform, member, owner, reason, source, created_at, expires_at FROM blacklist \
         WHERE platform = $1 AND member = $2 AND owner = $3",
    )
    .bind(member.platform.as_str())
    .bind(member.id.to_string())
    .bind(owner_key(owner))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.as_ref().map(entry_from_row).transpose()
}

pub(crate) async fn add_blacklist_tx(
    conn: &mut AnyConnection,
    entry: BlacklistEntry,
    edit: &Edit,
) -> Result<AuditId, StoreError> {
    entry.validate()?;
    let before = load(conn, &entry.member, entry.owner.as_ref()).await?;
    upsert_blacklist(conn, std::slice::from_ref(&entry)).await?;
    let change = Change::Blacklist {
        member: entry.member.clone(),
        owner: entry.owner.clone(),
        before,
        after: Some(entry),
    };
    audit(conn, edit, &change).await
}

pub(crate) async fn remove_blacklist_tx(
    conn: &mut AnyConnection,
    member: &MemberRef,
    owner: Option<&UserId>,
    edit: &Edit,
) -> Result<AuditId, StoreError> {
    let before = load(conn, member, owner)
        .await?
        .ok_or_else(|| StoreError::not_found("blacklist entry", member))?;
    sqlx::query("DELETE FROM blacklist WHERE platform = $1 AND member = $2 AND owner = $3")
        .bind(member.platform.as_str())
        .bind(member.id.to_string())
        .bind(owner_key(owner))
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let change = Change::Blacklist {
        member: member.clone(),
        owner: owner.cloned(),
        before: Some(before),
        after: None,
    };
    audit(conn, edit, &change).await
}

#[async_trait]
impl ListStore for SqlStore {
    async fn add_blacklist(&self, entry: BlacklistEntry, edit: &Edit) -> Result<(), StoreError> {
        let mut tx = self.begin_change().await?;
        add_blacklist_tx(&mut tx, entry, edit).await?;
        tx.commit().await.map_err(db)
    }

    async fn remove_blacklist(
        &self,
        member: &MemberRef,
        owner: Option<&UserId>,
        edit: &Edit,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_change().await?;
        remove_blacklist_tx(&mut tx, member, owner, edit).await?;
        tx.commit().await.map_err(db)
    }

    async fn import_blacklist(
        &self,
        entries: Vec<BlacklistEntry>,
        edit: &Edit,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_change().await?;
        upsert_blacklist(&mut tx, &entries).await?;
        let count = entries.len() as u64;
        audit(&mut tx, edit, &Change::BlacklistImport { count }).await?;
        tx.commit().await.map_err(db)?;
        Ok(count)
    }

    async fn blacklist_page(
        &self,
        after: Option<(&MemberRef, Option<&UserId>)>,
        limit: u32,
    ) -> Result<Vec<BlacklistEntry>, StoreError> {
        let (platform, member, owner) = match after {
            Some((m, o)) => (
                m.platform.as_str().to_owned(),
                m.id.to_string(),
                owner_key(o),
            ),
            // The empty key sorts before every real one.
            None => (String::new(), String::new(), String::new()),
        };
        // The page comes back as one row: handing 10,000 rows over one by one from the
        // database driver costs more than reading them.
        // SQLite sorting inside the aggregate doubles the query's time, and its pages come
        // nearly sorted; they are sorted here instead (text compares bytewise there, as in
        // Rust). PostgreSQL sorts by its own collation, which only it knows.
        let query = match self.backend {
            Backend::Sqlite => page_query!("json_group_array", "json_array", "", ""),
            Backend::Postgres => page_query!(
                "json_agg",
                "json_build_array",
                " ORDER BY platform, member, owner",
                "::text"
            ),
        };
        let row = sqlx::query(query)
            .bind(platform)
            .bind(member)
            .bind(owner)
            .bind(i64::from(limit))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        // PostgreSQL aggregates no rows into NULL.
        let Some(page) = col::<Option<String>>(&row, "page")? else {
            return Ok(Vec::new());
        };
        let page: Vec<PageEntry<'_>> = serde_json::from_str(&page).map_err(StoreError::backend)?;
        let mut page = page
            .into_iter()
            .map(
                |PageEntry(platform, member, owner, reason, source, created_at, expires_at)| {
                    Ok(BlacklistEntry {
                        member: MemberRef::new(parse(&platform)?, &*member),
                        owner: (!owner.is_empty()).then(|| UserId::from(owner.as_ref())),
                        reason: reason.into_owned(),
                        source: parse::<Source>(&source)?,
                        created_at: Timestamp(created_at),
                        expires_at: expires_at.map(Timestamp),
                    })
                },
            )
            .collect::<Result<Vec<_>, StoreError>>()?;
        if self.backend == Backend::Sqlite {
            // One pass over a page that is already sorted.
            page.sort_by(|a, b| table_order(a).cmp(&table_order(b)));
        }
        Ok(page)
    }

    async fn blacklist_index_page(
        &self,
        after: Option<(&MemberRef, Option<&UserId>)>,
        limit: u32,
    ) -> Result<Vec<IndexedEntry>, StoreError> {
        // One platform at a time, in the order the table sorts them.
        let mut platforms = Platform::ALL;
        platforms.sort_by_key(|p| p.as_str());
        let (first, mut member, mut owner) = match after {
            Some((m, o)) => (
                platforms.iter().position(|&p| p == m.platform).unwrap_or(0),
                m.id.to_string(),
                owner_key(o),
            ),
            None => (0, String::new(), String::new()),
        };
        let query = match self.backend {
            Backend::Sqlite => index_page_query!("json_group_array", "json_array", "", ""),
            Backend::Postgres => index_page_query!(
                "json_agg",
                "json_build_array",
                " ORDER BY member, owner",
                "::text"
            ),
        };
        let mut page = Vec::new();
        // Entries share reasons and owners: one copy each, while they repeat.
        let (mut reason, mut owner_id): (Option<Arc<str>>, Option<UserId>) = (None, None);
        for &platform in &platforms[first..] {
            let row = sqlx::query(query)
                .bind(platform.as_str())
                .bind(std::mem::take(&mut member))
                .bind(std::mem::take(&mut owner))
                .bind(i64::from(limit) - page.len() as i64)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
            let Some(json) = col::<Option<String>>(&row, "page")? else {
                continue;
            };
            let rows: Vec<IndexPageEntry<'_>> =
                serde_json::from_str(&json).map_err(StoreError::backend)?;
            let start = page.len();
            for IndexPageEntry(id, owner, why, source, expires_at) in rows {
                let reason = match &reason {
                    Some(known) if **known == *why => Arc::clone(known),
                    _ => reason.insert(Arc::from(why.as_ref())).clone(),
                };
                let owner = (!owner.is_empty()).then(|| match &owner_id {
                    Some(known) if known.as_str() == owner => known.clone(),
                    _ => owner_id.insert(UserId::from(owner.as_ref())).clone(),
                });
                page.push(IndexedEntry {
                    member: MemberRef::new(platform, id.as_ref()),
                    meta: ListMeta {
                        owner,
                        reason,
                        source: parse::<Source>(&source)?,
                        expires_at: expires_at.map(Timestamp),
                    },
                });
            }
            if self.backend == Backend::Sqlite {
                // One pass over rows that are already sorted (see `blacklist_page`).
                page[start..].sort_by(|a, b| index_order(a).cmp(&index_order(b)));
            }
            if page.len() == limit as usize {
                break;
            }
        }
        Ok(page)
    }

    async fn blacklist_len(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM blacklist")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(col::<i64>(&row, "n")? as u64)
    }

    async fn blacklist_splits(
        &self,
        parts: u32,
    ) -> Result<Vec<(MemberRef, Option<UserId>)>, StoreError> {
        let len = self.blacklist_len().await?;
        let mut splits = Vec::new();
        // Each a walk along the primary key: about 40 ms per million entries with SQLite.
        for offset in split_offsets(len, parts) {
            let row = sqlx::query(
                "SELECT platform, member, owner FROM blacklist \
                 ORDER BY platform, member, owner LIMIT 1 OFFSET $1",
            )
            .bind(offset as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            // Entries removed meanwhile: fewer splits.
            let Some(row) = row else { break };
            splits.push(key_from_row(&row)?);
        }
        Ok(splits)
    }
}
