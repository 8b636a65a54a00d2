//! The inbound journal: events handed over by the platforms and not yet recorded.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use groupguard_core::model::{Event, Platform};
use groupguard_core::ports::{JournalStore, StoreError};

use crate::violations::event_keys;
use crate::{CHUNK, SqlStore, Statement, Value, col, db, from_json, to_json};

impl SqlStore {
    /// The first of `count` journal sequence numbers: rising within the process, and across
    /// restarts with the clock (a million a millisecond), so a restart reads events back in
    /// the order they came without a counter row every write would contend for.
    fn journal_seq(&self, count: usize) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let floor = now.saturating_mul(1_000_000);
        let mut last = self.journal_seq.load(Ordering::Relaxed);
        loop {
            let first = (last + 1).max(floor);
            match self.journal_seq.compare_exchange_weak(
                last,
                first + count as i64 - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return first,
                Err(actual) => last = actual,
            }
        }
    }
}

#[async_trait]
impl JournalStore for SqlStore {
    async fn journal(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await.map_err(db)?;
        for chunk in events.chunks(CHUNK) {
            let mut statement = Statement::new(
                self.backend,
                "INSERT INTO inbound_journal (platform, event_id, seq, at, event) VALUES ",
            );
            let first = self.journal_seq(chunk.len());
            for (i, event) in chunk.iter().enumerate() {
                if i > 0 {
                    statement.push(", ");
                }
                statement.tuple([
                    Value::from(event.platform.as_str()),
                    Value::from(event.id.to_string()),
                    Value::from(first + i as i64),
                    Value::from(event.at.millis()),
                    Value::from(to_json(event)?),
                ]);
            }
            statement.push(" ON CONFLICT (platform, event_id) DO NOTHING");
            statement.query().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn journaled(&self) -> Result<Vec<Result<Event, StoreError>>, StoreError> {
        let rows = sqlx::query(
            "SELECT event FROM inbound_journal j WHERE NOT EXISTS (SELECT 1 FROM processed_events p \
             WHERE p.platform = j.platform AND p.event_id = j.event_id) ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .iter()
            .map(|row| from_json(&col::<String>(row, "event")?))
            .collect())
    }

    async fn unjournal(&self, events: &[(Platform, String)]) -> Result<(), StoreError> {
        for chunk in events.chunks(CHUNK) {
            let mut statement = Statement::new(
                self.backend,
                "DELETE FROM inbound_journal WHERE (platform, event_id) IN (VALUES ",
            );
            event_keys(&mut statement, chunk);
            statement.push(")");
            statement.query().execute(&self.writer).await.map_err(db)?;
        }
        Ok(())
    }
}
