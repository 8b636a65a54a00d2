//! groupguard-sql: the store on SQLite (one file, the embedded default) and PostgreSQL.
//!
//! One code path serves both through `sqlx::Any`; the few statements that differ (row
//! locking when claiming outbox actions) are chosen by [`Backend`]. Times are stored as epoch
//! milliseconds and structured values as JSON text, which both databases carry unchanged.
//! Migrations (`migrations/sqlite`, `migrations/postgres`) are applied when the store opens.

mod chunks;
mod config;
mod lists;
mod violations;

use std::str::FromStr;
use std::time::Duration;

use groupguard_core::ports::{AuditEntry, Change, Edit, StoreError};
use groupguard_core::rule::Source;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Executor, Row};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, one file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL names no supported database.
    #[error("unsupported database URL: use sqlite://PATH or postgres://USER@HOST/DB")]
    Scheme,
    /// The database refused or could not be reached.
    #[error("cannot open the database")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("cannot bring the database schema up to date")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// The longest wait for a database connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pool settings both databases share. A database that is down fails a request within
/// seconds (the callers retry, and WeCom is told to try again) rather than holding it for
/// sqlx's default 30.
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT)
}

/// The writer checkpoints the WAL itself only when it grows past ~400 MB (4 KiB pages): a
/// reader connection does it in the background ([`checkpoint_in_background`]), so the one
/// writer does not stop for the copying and the fsync.
const WRITER_CHECKPOINTS: &str = "PRAGMA wal_autocheckpoint = 100000;";

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoints the WAL without blocking the writer (PASSIVE: it copies what no reader still
/// needs), until the pool closes.
async fn checkpoint_in_background(readers: AnyPool) {
    while !readers.is_closed() {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&readers)
            .await
        {
            if readers.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

/// A pool of `size` SQLite connections in WAL mode, each with 32 MiB of page cache so a large
/// processed-event index stays in memory, and `pragmas` of its own.
async fn sqlite_pool(
    size: u32,
    options: AnyConnectOptions,
    pragmas: &'static str,
) -> Result<AnyPool, OpenError> {
    pool_options()
        .max_connections(size)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                     PRAGMA cache_size = -32768;",
                )
                .await?;
                if !pragmas.is_empty() {
                    conn.execute(pragmas).await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(OpenError::Connect)
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The SQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// For reading.
    pool: AnyPool,
    /// For writing: with SQLite, one connection.
    writer: AnyPool,
    backend: Backend,
}

impl SqlStore {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`:
    /// `sqlite://path/to/groupguard.db` or `postgres://user:password@host:port/db`.
    pub async fn open(url: &str) -> Result<SqlStore, OpenError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(OpenError::Scheme);
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(OpenError::Connect)?;
        let (pool, writer) = match backend {
            Backend::Postgres => {
                let pool = pool_options()
                    .connect_with(options)
                    .await
                    .map_err(OpenError::Connect)?;
                (pool.clone(), pool)
            }
            // SQLite takes one writer at a time, and a second one waits in its busy handler
            // (sleeping up to 100 ms a turn): so every write goes through one connection,
            // queued in the process instead; readers use the others.
            Backend::Sqlite => (
                sqlite_pool(4, options.clone(), "").await?,
                sqlite_pool(1, options, WRITER_CHECKPOINTS).await?,
            ),
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&writer).await.map_err(OpenError::Migrate)?;
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoint_in_background(pool.clone()));
        }
        Ok(SqlStore {
            pool,
            writer,
            backend,
        })
    }

    /// Begins a configuration change: bumping the revision row first makes concurrent
    /// changes (from other instances too) wait for each other, and tells readers to reload.
    pub(crate) async fn begin_change(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(db)?;
        sqlx::query("UPDATE config_revision SET revision = revision + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Ok(tx)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// A database error, kept for logs, shown to users as a generic message.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::backend)
}

pub(crate) fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(StoreError::backend)
}

/// Reads a column, turning a decoding failure into a store error.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(db)
}

/// A `platform:id` reference stored as a `platform` column and an id column.
pub(crate) fn platform_ref<T: From<(groupguard_core::model::Platform, String)>>(
    row: &AnyRow,
    id: &str,
) -> Result<T, StoreError> {
    Ok(T::from((
        parse(&col::<String>(row, "platform")?)?,
        col::<String>(row, id)?,
    )))
}

/// Parses a value stored as text with `FromStr`.
pub(crate) fn parse<T: FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| {
        StoreError::backend(std::io::Error::other(format!(
            "corrupt stored value `{text}`: {e}"
        )))
    })
}

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Value {
        Value::OptText(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        Value::OptInt(v)
    }
}

/// SQL built piece by piece with each database's own placeholders: `$n` for PostgreSQL,
/// `?` for SQLite, where looking up numbered parameters by name costs quadratic time in a
/// statement with thousands of them.
#[derive(Debug)]
pub(crate) struct Statement {
    backend: Backend,
    sql: String,
    values: Vec<Value>,
}

impl Backend {
    /// The backend behind a connection.
    pub(crate) fn of(conn: &AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("postgresql") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

impl Statement {
    pub(crate) fn new(backend: Backend, sql: &str) -> Statement {
        Statement {
            backend,
            sql: sql.to_owned(),
            values: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Statement {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Statement {
        self.values.push(value.into());
        match self.backend {
            Backend::Sqlite => self.sql.push('?'),
            Backend::Postgres => {
                self.sql.push('$');
                self.sql.push_str(&self.values.len().to_string());
            }
        }
        self
    }

    /// Appends `(v1, v2, …)`.
    pub(crate) fn tuple(&mut self, values: impl IntoIterator<Item = Value>) -> &mut Statement {
        self.sql.push('(');
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.bind(value);
        }
        self.sql.push(')');
        self
    }

    pub(crate) fn query(self) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql));
        for value in self.values {
            query = match value {
                Value::Text(v) => query.bind(v),
                Value::OptText(v) => query.bind(v),
                Value::Int(v) => query.bind(v),
                Value::OptInt(v) => query.bind(v),
            };
        }
        query
    }
}

/// Rows per multi-row INSERT: well under SQLite's 32,766 bound parameters.
pub(crate) const CHUNK: usize = 500;

/// `items` in runs whose lengths are powers of two up to `max` (itself one), longest first.
/// A multi-row statement's text depends on its row count and each text is prepared once per
/// connection: with these lengths, batches of any size share a dozen statements.
pub(crate) fn runs<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max.is_power_of_two());
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = max.min(1 << rest.len().ilog2());
        let (run, after) = rest.split_at(len);
        rest = after;
        Some(run)
    })
}

/// Appends an audit entry inside the caller's transaction.
pub(crate) async fn audit(
    conn: &mut AnyConnection,
    edit: &Edit,
    change: &Change,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO audit_log (at, by_source, change) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(edit.at.millis())
    .bind(edit.by.to_string())
    .bind(chunks::to_stored_json(conn, change).await?)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    col(&row, "id")
}

pub(crate) async fn audit_entry(
    conn: &mut AnyConnection,
    row: &AnyRow,
) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: col(row, "id")?,
        at: groupguard_core::time::Timestamp(col(row, "at")?),
        by: parse::<Source>(&col::<String>(row, "by_source")?)?,
        change: chunks::from_stored_json(conn, &col::<String>(row, "change")?).await?,
        undone_by: col(row, "undone_by")?,
    })
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_cover_every_item_in_order_with_few_lengths() {
        let items: Vec<u32> = (0..1_000).collect();
        let lengths: Vec<usize> = runs(&items, 512).map(<[u32]>::len).collect();
        assert_eq!(lengths, [512, 256, 128, 64, 32, 8]);
        let joined: Vec<u32> = runs(&items, 512).flatten().copied().collect();
        assert_eq!(joined, items);
        let long: Vec<u32> = (0..1_300).collect();
        let lengths: Vec<usize> = runs(&long, 256).map(<[u32]>::len).collect();
        assert_eq!(lengths, [256, 256, 256, 256, 256, 16, 4]);
        assert_eq!(runs::<u32>(&[], 512).count(), 0);
    }
}
