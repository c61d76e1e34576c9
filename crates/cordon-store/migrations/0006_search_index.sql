-- search_history's index: the users' own messages, by trigram, so a
-- substring search costs the size of its matches, not of the text (LIKE
-- '%...%' over long messages was quadratic and stalled every tenant's
-- reads). `user_key` scopes a query to one user inside the index itself,
-- so a search never walks another tenant's matches. Contentless: the text
-- is read from `messages` by rowid.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    user_key,
    content,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram'
);

INSERT INTO messages_fts (rowid, user_key, content)
    SELECT rowid, user_id, content FROM messages WHERE role = 'user';

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.role = 'user'
BEGIN
    INSERT INTO messages_fts (rowid, user_key, content) VALUES (new.rowid, new.user_id, new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.role = 'user'
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.rowid;
END;
