-- Keep the full verdict of every recorded event (every rule's outcome), found by event or
-- message id, so moderators can ask `why`. Pruned with the event ids.
ALTER TABLE processed_events ADD COLUMN message_id TEXT COLLATE "C";
ALTER TABLE processed_events ADD COLUMN verdict TEXT;
CREATE INDEX processed_events_message ON processed_events (platform, message_id);
