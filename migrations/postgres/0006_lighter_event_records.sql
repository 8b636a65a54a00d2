-- The inbound journal moved to segment files in the data directory (append-only, synced,
-- read back at start-up): it no longer shares the database's one writer.
DROP TABLE inbound_journal;

-- Most messages are their own events (the message id is the event id): only message ids
-- that differ are stored and indexed.
DROP INDEX processed_events_message;
UPDATE processed_events SET message_id = NULL WHERE message_id = event_id;
CREATE INDEX processed_events_message ON processed_events (platform, message_id)
    WHERE message_id IS NOT NULL;
