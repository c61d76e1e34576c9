-- Users, threads, messages, runs and the append-only run event log.
-- Every table that holds user data carries user_id, and every read filters on it.
-- Timestamps are Unix microseconds (UTC).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE threads (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    title      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX threads_by_user ON threads (user_id, updated_at DESC);

CREATE TABLE messages (
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    thread_id  TEXT NOT NULL,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    run_id     TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX messages_by_thread ON messages (thread_id);
CREATE INDEX messages_by_user ON messages (user_id);

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    agent         TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    error_code    TEXT,
    error_message TEXT
);
CREATE INDEX runs_by_user ON runs (user_id);

-- The persisted event log is the source of truth for what a client saw;
-- payload is the exact JSON frame that was sent.
CREATE TABLE run_events (
    user_id    TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    run_id     TEXT NOT NULL,
    event_type TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    payload    TEXT NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE INDEX run_events_by_run ON run_events (run_id, seq);
