-- Token usage and cost of every model call, per user and run.
-- A run's usage and a user's totals are sums over these rows; every read filters on user_id.

CREATE TABLE llm_calls (
    user_id       TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    model         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX llm_calls_by_run ON llm_calls (user_id, run_id);
