-- Platform port v2.
-- Every outbox action carries an idempotency key that the platform edge uses to carry out a
-- retried action once (Matrix transaction ids, Discord nonces): derived from the event and
-- the action's place in its verdict, or from group and window for raid alerts. Unique per
-- platform, so a second raid alert for the same window is not queued twice. Existing rows
-- get a key from their id.
ALTER TABLE outbox ADD COLUMN idem_key TEXT;
UPDATE outbox SET idem_key = 'a' || id;
CREATE UNIQUE INDEX outbox_key ON outbox (platform, idem_key);
-- The message the action is about (a warning replies to it; a delete needs its channel).
ALTER TABLE outbox ADD COLUMN message_id TEXT;
UPDATE outbox SET message_id = (
    SELECT p.message_id FROM violations v
    JOIN processed_events p ON p.platform = v.platform AND p.event_id = v.event_id
    WHERE v.id = outbox.violation_id
);
-- A group's administrators besides the owner (JSON array): who admin notices go to.
ALTER TABLE groups ADD COLUMN admins TEXT NOT NULL DEFAULT '[]';
