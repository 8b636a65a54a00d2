-- Where a group's admin notices go when not to its owner and admins: a Discord channel id.
ALTER TABLE groups ADD COLUMN notices TEXT;
