-- Runs paused until a person approves or rejects a tool call: the engine's
-- checkpoint (JSON), kept across restarts, and when the unanswered calls expire.
CREATE TABLE run_pauses (
    user_id    TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    thread_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, run_id)
);
CREATE INDEX run_pauses_by_expiry ON run_pauses (expires_at);
