-- Several instances on one database: every open socket, so the per-user socket cap holds across
-- instances. A row counts only while the instance it names is live (holds its advisory lock,
-- key 1668248164 ("cord"), hashtext(instance_id)); a dead instance's rows are ignored, then
-- deleted. Claims for one user are serialized by a transaction-scoped advisory lock.
CREATE TABLE user_sockets (
    connection_id TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    instance_id   TEXT NOT NULL,
    opened_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX user_sockets_by_user ON user_sockets (user_id);
CREATE INDEX user_sockets_by_instance ON user_sockets (instance_id);
