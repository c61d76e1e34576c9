-- Admins (`cordon admin grant`; 0 or 1, read like SQLite's), users' own
-- budget limits (NULL: no limit), and the index budgets sum a user's calls
-- of a day or month by.
ALTER TABLE users ADD COLUMN admin BIGINT NOT NULL DEFAULT 0;

CREATE TABLE user_budgets (
    user_id        TEXT PRIMARY KEY,
    daily_usd      DOUBLE PRECISION,
    monthly_usd    DOUBLE PRECISION,
    daily_tokens   BIGINT,
    monthly_tokens BIGINT,
    updated_at     BIGINT NOT NULL
);

CREATE INDEX llm_calls_by_time ON llm_calls (user_id, created_at);
