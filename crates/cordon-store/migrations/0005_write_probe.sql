-- One row the writer rewrites while writes are failing (a full disk): once
-- that write commits again, the store takes writes again.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    pad BLOB NOT NULL
);
