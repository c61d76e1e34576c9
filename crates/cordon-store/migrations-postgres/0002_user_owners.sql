-- Several instances on one database: which instance owns each user's engine (the user's seq,
-- thread lanes and limits). An owner counts only while it is live, that is while its session
-- holds the instance's advisory lock (key 1668248178, hashtext(instance_id)); a row naming a
-- dead instance is taken over by the next instance that claims the user.
CREATE TABLE user_owners (
    user_id     TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    claimed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX user_owners_by_instance ON user_owners (instance_id);
