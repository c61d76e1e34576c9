-- Admins (`cordon admin grant`), users' own budget limits (NULL: no limit),
-- and the index budgets sum a user's calls of a day or month by.
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;

CREATE TABLE user_budgets (
    user_id        TEXT PRIMARY KEY,
    daily_usd      REAL,
    monthly_usd    REAL,
    daily_tokens   INTEGER,
    monthly_tokens INTEGER,
    updated_at     INTEGER NOT NULL
);

CREATE INDEX llm_calls_by_time ON llm_calls (user_id, created_at);
