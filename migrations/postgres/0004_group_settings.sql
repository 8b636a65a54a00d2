-- Where a group's admin notices go when not to its owner and admins: a Discord channel id.
ALTER TABLE groups ADD COLUMN notices TEXT;
-- Whether the group's keyword rules are mirrored into the platform's own filter (Discord
-- AutoMod): 1 or 0.
ALTER TABLE groups ADD COLUMN native_filter BIGINT NOT NULL DEFAULT 0;
