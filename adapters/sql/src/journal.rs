//! The inbound journal: events handed over by the platforms and not yet recorded.

use async_trait::async_trait;
use groupguard_core::model::{Event, Platform};
use groupguard_core::ports::{JournalStore, StoreError};

use crate::violations::event_keys;
use crate::{CHUNK, SqlStore, Statement, Value, col, db, from_json, to_json};

#[async_trait]
impl JournalStore for SqlStore {
    async fn journal(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        for chunk in events.chunks(CHUNK) {
            let mut statement = Statement::new(
                self.backend,
                "INSERT INTO inbound_journal (platform, event_id, at, event) VALUES ",
            );
            for (i, event) in chunk.iter().enumerate() {
                if i > 0 {
                    statement.push(", ");
                }
                statement.tuple([
                    Value::from(event.platform.as_str()),
                    Value::from(event.id.to_string()),
                    Value::from(event.at.millis()),
                    Value::from(to_json(event)?),
                ]);
            }
            statement.push(" ON CONFLICT (platform, event_id) DO NOTHING");
            statement.query().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn journaled(&self) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT event FROM inbound_journal j WHERE NOT EXISTS (SELECT 1 FROM processed_events p \
             WHERE p.platform = j.platform AND p.event_id = j.event_id) ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| from_json(&col::<String>(row, "event")?))
            .collect()
    }

    async fn unjournal(&self, events: &[(Platform, String)]) -> Result<(), StoreError> {
        for chunk in events.chunks(CHUNK) {
            let mut statement = Statement::new(
                self.backend,
                "DELETE FROM inbound_journal WHERE (platform, event_id) IN (VALUES ",
            );
            event_keys(&mut statement, chunk);
            statement.push(")");
            statement.query().execute(&self.pool).await.map_err(db)?;
        }
        Ok(())
    }
}
