-- groupguard schema, SQLite. Times are epoch milliseconds (INTEGER); JSON bodies are TEXT.

CREATE TABLE config_revision (
    -- one row, bumped by every configuration change: serializes concurrent changes and tells
    -- running instances that they must reload
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO config_revision (id, revision) VALUES (1, 0);

CREATE TABLE settings (
    -- a single row holding the rule-set settings as JSON
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL
);

CREATE TABLE rules (
    -- current rules; the body is the rule as JSON without its explicit scope groups
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);

CREATE TABLE rule_groups (
    -- explicit groups of a rule's scope, in the order given
    rule_id TEXT NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    platform TEXT NOT NULL,
    group_id TEXT NOT NULL,
    PRIMARY KEY (rule_id, position)
);

CREATE TABLE rule_versions (
    -- every saved version of every rule, kept after deletion
    rule_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    at INTEGER NOT NULL,
    by_source TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (rule_id, version)
);

CREATE TABLE groups (
    -- groups the operator described; tags as a JSON array
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT,
    tags TEXT NOT NULL,
    home_org TEXT,
    owner TEXT,
    PRIMARY KEY (platform, id)
);

CREATE TABLE whitelist (
    -- whitelisted members; rules as a JSON array, empty for all rules
    platform TEXT NOT NULL,
    member TEXT NOT NULL,
    reason TEXT NOT NULL,
    rules TEXT NOT NULL,
    PRIMARY KEY (platform, member)
);

CREATE TABLE blacklist (
    -- org-wide entries have owner = ''; personal entries name the group owner
    platform TEXT NOT NULL,
    member TEXT NOT NULL,
    owner TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (platform, member, owner),
    CONSTRAINT blacklist_expiry CHECK (expires_at IS NULL OR expires_at > created_at)
) WITHOUT ROWID;

CREATE TABLE audit_log (
    -- every configuration change with the state before and after (JSON)
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    by_source TEXT NOT NULL,
    change TEXT NOT NULL,
    undone_by INTEGER
);

CREATE TABLE processed_events (
    -- event ids already recorded, so redelivered events are ignored
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (platform, event_id)
) WITHOUT ROWID;
CREATE INDEX processed_events_at ON processed_events (at);

CREATE TABLE violations (
    -- one row per matched rule per event; evidence and planned actions as JSON
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    platform TEXT NOT NULL,
    group_id TEXT NOT NULL,
    member TEXT NOT NULL,
    member_name TEXT,
    member_joined_at INTEGER,
    rule_id TEXT NOT NULL,
    check_kind TEXT NOT NULL,
    evidence TEXT NOT NULL,
    excerpt TEXT NOT NULL,
    mode TEXT NOT NULL,
    actions TEXT NOT NULL
);
CREATE INDEX violations_group ON violations (platform, group_id, id);
CREATE INDEX violations_member ON violations (platform, member, id);
CREATE INDEX violations_rule ON violations (rule_id, id);
CREATE INDEX violations_at ON violations (at);

CREATE TABLE outbox (
    -- enforce actions, written with their violation, then done, failed or replaced
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    violation_id INTEGER NOT NULL REFERENCES violations (id),
    rule_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    group_id TEXT NOT NULL,
    member TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    attempts INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL
);
CREATE INDEX outbox_pending ON outbox (state, due_at);
CREATE INDEX outbox_violation ON outbox (violation_id);
