-- The history-search index moves to its own file (search.db, kept by the
-- indexer thread: crates/cordon-store/src/indexer.rs). Indexing a long
-- message inside the writer's transaction held every tenant's commit behind
-- it. The new index is rebuilt from `messages` on first start.
DROP TRIGGER IF EXISTS messages_fts_insert;
DROP TRIGGER IF EXISTS messages_fts_delete;
DROP TABLE IF EXISTS messages_fts;
