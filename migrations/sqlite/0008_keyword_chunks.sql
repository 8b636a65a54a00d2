-- Long keyword lists are stored in pieces, each once however many rule versions and audit
-- entries hold it: those refer to pieces by hash, so a daily edit of a 100,000-keyword list
-- stores one new piece and a list of references, not the list again.
CREATE TABLE keyword_chunks (
    hash TEXT PRIMARY KEY,
    -- a JSON array of keywords
    body TEXT NOT NULL
) WITHOUT ROWID;
