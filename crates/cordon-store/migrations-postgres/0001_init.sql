-- cordon on PostgreSQL: the same tables as the SQLite schema (migrations/), in one step.
-- Every table that holds user data carries user_id, and every read filters on it.
-- Timestamps are Unix microseconds (UTC), as in SQLite, so rows convert the same way.
-- `position` stands in for SQLite's rowid: insertion order, for stable paging.

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    username         TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    token_generation BIGINT NOT NULL DEFAULT 0
);
-- SQLite's COLLATE NOCASE: one account per name, whatever its case.
CREATE UNIQUE INDEX users_by_username ON users (lower(username));

CREATE TABLE threads (
    id         TEXT PRIMARY KEY,
    position   BIGINT GENERATED ALWAYS AS IDENTITY,
    user_id    TEXT NOT NULL,
    title      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX threads_by_user ON threads (user_id, updated_at DESC, position DESC);

CREATE TABLE messages (
    position   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    thread_id  TEXT NOT NULL,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    run_id     TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX messages_by_thread ON messages (thread_id, position);
CREATE INDEX messages_by_user ON messages (user_id, position);

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    position      BIGINT GENERATED ALWAYS AS IDENTITY,
    user_id       TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    agent         TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    error_code    TEXT,
    error_message TEXT
);
CREATE INDEX runs_by_user_created ON runs (user_id, created_at DESC, position DESC);
CREATE INDEX runs_unfinished ON runs (position) WHERE status IN ('queued', 'running');

-- The log is the source of truth for what a client saw; payload is the exact frame sent.
CREATE TABLE run_events (
    user_id    TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    run_id     TEXT NOT NULL,
    event_type TEXT NOT NULL,
    ts         BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX run_events_by_run ON run_events (run_id, seq);
CREATE INDEX run_events_by_ts ON run_events (ts);

CREATE TABLE event_log_floor (
    user_id        TEXT PRIMARY KEY,
    pruned_through BIGINT NOT NULL
);

CREATE TABLE llm_calls (
    user_id       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    model         TEXT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd      DOUBLE PRECISION NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX llm_calls_by_run ON llm_calls (user_id, run_id);

-- The row the writer rewrites while writes are failing: once it commits, writes are taken again.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL
);
