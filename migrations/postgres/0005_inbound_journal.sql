-- Events a platform handed over and may forget (a WeCom callback answered, a Matrix sync
-- position advanced), kept until their verdicts are recorded: a crash in between loses
-- none of them. Rows leave in the transaction that records their events.
CREATE TABLE inbound_journal (
    seq BIGSERIAL PRIMARY KEY,
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL
);
CREATE UNIQUE INDEX inbound_journal_event ON inbound_journal (platform, event_id);
