-- Durable runs: recovery finds unfinished runs by status, runs are listed per
-- user newest first, and retention records how much of each user's log it
-- deleted (so `seq` never restarts and an expired cursor is recognised).

CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('queued', 'running');
CREATE INDEX runs_by_user_created ON runs (user_id, created_at DESC);
DROP INDEX runs_by_user;

CREATE TABLE event_log_floor (
    user_id        TEXT PRIMARY KEY,
    pruned_through INTEGER NOT NULL
) WITHOUT ROWID;
