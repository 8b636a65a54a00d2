-- Processed events become an ordinary (rowid) table. Without a rowid, every row, its stored
-- verdict included, lived inside the primary-key tree: rows spilled onto overflow pages, and
-- each key comparison of a redelivery check or insert read those pages back. Now the key
-- (platform, event_id) is a small separate index and rows are appended in arrival order.
CREATE TABLE processed_events_by_rowid (
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    message_id TEXT,
    verdict TEXT,
    PRIMARY KEY (platform, event_id)
);
INSERT INTO processed_events_by_rowid (platform, event_id, at, message_id, verdict)
    SELECT platform, event_id, at, message_id, verdict FROM processed_events ORDER BY at;
DROP TABLE processed_events;
ALTER TABLE processed_events_by_rowid RENAME TO processed_events;
CREATE INDEX processed_events_at ON processed_events (at);
CREATE INDEX processed_events_message ON processed_events (platform, message_id)
    WHERE message_id IS NOT NULL;
