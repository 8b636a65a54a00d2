-- Events a platform handed over and may forget (a WeCom callback answered, a Matrix sync
-- position advanced), kept until their verdicts are recorded: a crash in between loses
-- none of them. Rows leave in the transaction that records their events. The order they
-- came in (seq) is read only at start-up.
CREATE TABLE inbound_journal (
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (platform, event_id)
);
